# Source on the GPU machine, in the repository root: the checkout importable without installing,
# carried wheels (.whl/, e.g. pytest and hypothesis, which the device lacks) on the path.
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl hypothesis sortedcontainers attrs pytest pluggy iniconfig
if ls .whl/*.whl > /dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
fi
mkdir -p /tmp/pp results/logs && ln -sfn "$PWD/conformance" /tmp/pp/rrope_conformance  # tests import rrope_conformance
export PYTHONPATH=$PWD:$PWD/backends:$PWD/experiments:/tmp/pp${PYTHONPATH:+:$PYTHONPATH}
export TORCHINDUCTOR_CACHE_DIR=$PWD/results/inductor PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
