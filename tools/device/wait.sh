# bash tools/device/wait.sh SECONDS: wait for results/job.done (at most SECONDS), then pack.
if ! [[ "$1" =~ ^[0-9]+$ ]]; then
    echo "usage: bash tools/device/wait.sh SECONDS (got: '$1'): the longest wait, a whole number" >&2
    exit 2
fi
for _ in $(seq 1 "$1"); do [ -f results/job.done ] && break; sleep 1; done
tail -5 results/job.log
bash tools/device/pack.sh
