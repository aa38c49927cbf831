# The first long call of a lease: bash tools/device/start.sh JOB LEFT
# Runs JOB (a bash script) in the background, detached from the call, with DEADLINE (epoch
# seconds: now + LEFT - 60) exported for its --time-limit arithmetic; then waits like wait.sh.
# LEFT: the lease's budget_left_s from the previous (short) call. Later calls: wait.sh only.
# JOB touches results/job.done when it ends; results/ is git-ignored, so it survives between
# calls while the machine stays warm.
if [ $# -ne 2 ] || [ ! -f "$1" ] || ! [[ "$2" =~ ^[0-9]+$ ]]; then
    echo "usage: bash tools/device/start.sh JOB LEFT (got: $*): JOB a bash script, LEFT the lease's seconds left" >&2
    exit 2
fi
mkdir -p results/logs && rm -f results/job.done
export DEADLINE=$(( $(date +%s) + $2 - 60 ))
setsid nohup bash "$1" > results/job.log 2>&1 < /dev/null &
sleep 5
bash tools/device/wait.sh 565
