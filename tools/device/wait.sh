# bash tools/device/wait.sh SECONDS: wait for results/job.done (at most SECONDS), then pack.
for _ in $(seq 1 "$1"); do [ -f results/job.done ] && break; sleep 1; done
tail -5 results/job.log
bash tools/device/pack.sh
