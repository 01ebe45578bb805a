"""Verified means the failing tests pass *and* the tests that passed still pass (``verify``).

A real memorised model answers the failing test with a "fix" that breaks a
test which passed before (``area`` returns ``h * 2``: right for 2 x 5, wrong
for a square). Whether the loop notices depends on where the broken test
lives and on the scope: ``failing`` never looks, ``files`` looks in the
failing test's file, ``suite`` everywhere.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import pytest

from model_runtime.backends import TransformersBackend, TransformersConfig
from model_runtime.prompting.formats import get_format
from model_runtime.refine.loop import RefineBudget, RefineTarget, refine
from model_runtime.refine.target import locate_function
from model_runtime.run.config import ConfigError, RunConfig
from tests.refine_models import _prompt_after, sandbox  # noqa: PLC2701 - the shared prompt helper

AREA = 'def area(w, h):\n    """Area of a w by h rectangle."""\n    return w * w\n'
RECT = "from area import area\n\n\ndef test_rect():\n    assert area(2, 5) == 10\n"
SQUARE = "\n\ndef test_square():\n    assert area(3, 3) == 9\n"
ANOTHER_BUG = "\n\ndef test_another_bug():\n    assert area(0, 0) == 1\n"
BREAKS_SQUARE = "--- a\n+++ b\n@@ -3,1 +3,1 @@\n-    return w * w\n+    return h * 2"
FAILING = ["tests/test_area.py::test_rect"]


def workspace(root: Path, *, square_in: str | None) -> Path:
    """``area`` with its failing test; the square test (passing now) in the same file or another."""
    (root / "tests").mkdir(parents=True)
    (root / "area.py").write_text(AREA)
    same = square_in == "same"
    (root / "tests" / "test_area.py").write_text(RECT + (SQUARE if same else "") + ANOTHER_BUG)
    if square_in == "other":
        (root / "tests" / "test_more.py").write_text("from area import area" + SQUARE)
    return root


@functools.cache
def model() -> Path:
    from model_runtime.training.tiny_model import MemoriseSettings, train_memorised_model

    scratch = Path(tempfile.mkdtemp(prefix="editseq-verify-model-"))
    root = workspace(scratch / "ws", square_in=None)
    code = locate_function(AREA, "area", "area.py").code
    prompt = _prompt_after(root, "area.py", "area", FAILING, code)
    report = train_memorised_model(scratch / "model", [(prompt, get_format("cycle").render_answer([BREAKS_SQUARE]))],
                                   MemoriseSettings(), formats=("lintseq", "cycle"))
    assert report.final_loss < 0.05, report
    return report.folder


def run(root: Path, verify: str):
    backend = TransformersBackend(TransformersConfig(model=str(model()), device="cpu"))
    budget = RefineBudget(rounds=1, strategy="generate", max_new_tokens=64)
    return refine(RefineTarget(root, "area.py", "area"), FAILING, backend, sandbox=sandbox(root), budget=budget,
                  verify=verify)


@pytest.mark.parametrize(("square_in", "verify", "verified"), [
    ("same", "failing", True),    # never looks at the square test: the broken fix is "verified"
    ("same", "files", False),     # the default: the square test in the same file must still pass
    ("other", "files", True),     # ... but the files scope does not see another file
    ("other", "suite", False),    # the suite does
])
def test_a_fix_that_breaks_a_passing_test_is_verified_only_where_nobody_looks(tmp_path, square_in, verify, verified):
    result = run(workspace(tmp_path, square_in=square_in), verify)
    assert result.verified is verified
    # The model's answer ran in round 1 either way; the test that failed before for another bug is
    # left out of the counts (it neither blocks nor counts).
    (candidate,) = result.trajectory[1].candidates
    assert "return h * 2" in candidate.program
    kept = 0 if verify == "failing" or (square_in, verify) == ("other", "files") else 1
    assert result.checked == {"verify": verify, "failing": 1, "kept": kept}
    assert (candidate.passed, candidate.total) == (1, 1 + kept)
    if verified:
        assert "return h * 2" in result.final
    else:
        assert result.final == AREA  # the regression is never offered
        assert "area(3, 3) == 9" in candidate.feedback  # and the model is told what it broke
    words = result.checked_words
    assert words == {"failing": "the failing tests only", "files": f"1 failing + {kept} passing in their files",
                     "suite": f"1 failing + {kept} passing in the suite"}[verify]


def test_verify_is_checked_where_the_run_is_configured(tmp_path):
    with pytest.raises(ConfigError, match="verify must be one of files, suite, failing"):
        RunConfig(verify="everything")
    assert RunConfig().verify == "files"
