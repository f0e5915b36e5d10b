#!/usr/bin/env bash
# The wheels the GPU smoke check needs on a machine without network that already has torch, transformers,
# peft, accelerate, pandas, pyarrow, pyyaml and sympy (Python 3.12): versions from constraints/cpu.txt.
#   tests/gpu/wheels.sh [DIR] [PYTHON_VERSION]      (default .whl and 3.12)
# There: python3 -m pip install -q --no-index --no-deps --target /tmp/site DIR/*.whl
#        PYTHONPATH=/tmp/site:$PWD python3 tests/gpu/smoke.py
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=${1:-.whl}
PYV=${2:-3.12}
mkdir -p "$DIR"
pins=()
for name in trl datasets dill multiprocess math-verify latex2sympy2_extended antlr4-python3-runtime Pebble; do
    pin=$(grep -i "^${name}==" constraints/cpu.txt) || { echo "error: $name is not pinned in constraints/cpu.txt" >&2; exit 2; }
    pins+=("$pin")
done
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$DIR" "${pins[@]}"
du -sh "$DIR"
