"""The README's main job: `editseq refine` fixes the bug shipped in examples/inventory on the embedded
default model, on a CPU, and prints the verified diff. The model is fixed, so this is a regression test
of the whole path: shipped weights, ranking, sandbox, diff."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "inventory"


def test_the_readme_command_fixes_the_shipped_example(tmp_path):
    workspace = tmp_path / "inventory"
    shutil.copytree(EXAMPLE, workspace, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    before = (workspace / "inventory.py").read_text(encoding="utf-8")
    # The README's command, word for word, with this interpreter (no third-party pytest plugins, for speed).
    run = subprocess.run(
        [sys.executable, "-m", "model_runtime.cli", "refine", "inventory.py::restock_list",
         "--tests", "test_inventory.py", "--candidates", "8"],
        cwd=workspace, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "HF_HUB_OFFLINE": "1"},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "-        if quantity < minimum:\n+        if quantity <= minimum:" in run.stdout
    assert "verified green" in run.stderr and "3/3 tests passed" in run.stderr  # progress goes to stderr
    assert (workspace / "inventory.py").read_text(encoding="utf-8") == before  # printed, not applied
