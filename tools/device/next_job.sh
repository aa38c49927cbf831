# What is left for a GPU as of 2026-12-07 (docs/posgen.md "What is left", docs/benchmarks.md):
# the timing-sensitive benchmark alone first, then PosGen until DEADLINE: the fp32 check of
# paper-code (one stack of 2, ~4 H100-min), the rest of paper-code, paper-text.
source tools/device/env.sh
log=results/logs
echo "== hf_model_speed (issue 18: does (b) reach 1.00 in training with rrope_torch.table_op?)"; date
timeout 420 python3 bench/hf_model_speed.py --repeats 3 --profile > $log/hf-model-speed.log 2>&1; echo "rc=$?"
# rrope posgen on the GPU until DEADLINE; OUT the run directory, the rest its own arguments.
posgen() {
    local out=$1; shift
    python3 -m rrope_core.cli posgen "$@" --device cuda --threads 4 --no-progress \
        --time-limit $(( DEADLINE - $(date +%s) )) --out results/$out > $log/$out.log 2>&1
    echo "$out rc=$?"; date
}
echo "== posgen paper-code in plain fp32, recursive seed 0 (does TF32 keep the ordering? the code runs fp32, sweep.yaml)"; date
posgen posgen-paper-code-fp32 --protocol paper-code --tasks recursive --seeds 1 --stack 2 --precision fp32
echo "== posgen paper-code (semi_recursive seeds 1-4), then paper-text"
for preset in paper-code paper-text; do
    mkdir -p results/posgen-$preset && cp -rn docs/posgen-$preset/runs results/posgen-$preset/ 2>/dev/null  # -n: keep runs already there (resume)
    [ $(( DEADLINE - $(date +%s) )) -lt 300 ] && break
    stack=2; [ $preset = paper-text ] && stack=4
    posgen posgen-$preset --protocol $preset --seeds 5 --stack $stack --precision tf32
done
touch results/job.done
