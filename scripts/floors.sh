#!/usr/bin/env bash
# The dependency floors, tested: a separate virtual environment with the lowest torch and
# transformers pyproject.toml admits, running the backend and generation tests.
#
# The environment lives outside the clone (torch 2.6.0 from PyPI is a CUDA build: about 3 GB with
# its NVIDIA libraries, minutes to download the first time, nothing after); it is rebuilt when the
# floors below change. Usage: bash scripts/floors.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_FLOOR=2.6.0
TRANSFORMERS_FLOOR=4.56.0
CACHE="${EDITSEQ_FLOORS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/editseq-floors}"
VENV="$CACHE/venv-torch$TORCH_FLOOR-transformers$TRANSFORMERS_FLOOR"
if [ ! -x "$VENV/bin/python" ] || [ ! -f "$VENV/.complete" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q "torch==$TORCH_FLOOR" "transformers==$TRANSFORMERS_FLOOR"
  touch "$VENV/.complete"
fi
# The project itself and the test tools, with the floors held (pip must not upgrade them).
"$VENV/bin/python" -m pip install -q -e . "torch==$TORCH_FLOOR" "transformers==$TRANSFORMERS_FLOOR" \
  "pytest>=8" "pytest-asyncio>=1.0" "pytest-timeout>=2.3" "hypothesis>=6.100"
"$VENV/bin/python" - <<PY
import torch, transformers
assert torch.__version__.split("+")[0] == "$TORCH_FLOOR", torch.__version__
assert transformers.__version__ == "$TRANSFORMERS_FLOOR", transformers.__version__
print(f"floors: torch {torch.__version__}, transformers {transformers.__version__}")
PY
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/backends tests/cli/test_generate_cli.py "$@"
