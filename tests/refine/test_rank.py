"""The ``rank`` strategy with the shipped embedded model, a real sandbox and real pytest runs.

Every single-edit repair of the best program is written as a ``cycle`` answer,
scored by the model, and the likeliest untested ones run; which edit the
model likes best is its business, so the tests check the mechanics: every
candidate is one enumerated edit, none runs twice, the order is the model's,
rounds that test something new are not stale, and a backend that cannot score
is refused up front.
"""

from __future__ import annotations

import pytest

from model_runtime import defaults
from model_runtime.backends import TransformersBackend, TransformersConfig
from model_runtime.backends.openai_backend import OpenAIBackend
from model_runtime.refine.loop import RefineBudget, RefineError, RefineTarget, refine
from model_runtime.run.config import ConfigError, RunConfig
from refine_models import checksum, repair_model, sandbox

LIMIT = '''\
def at_most(values, limit):
    """The values that are at most ``limit``, in order."""
    return [v for v in values if v < limit]
'''
LIMIT_TESTS = '''\
from limit import at_most


def test_keeps_the_limit():
    assert at_most([1, 5, 9], 5) == [1, 5]


def test_drops_larger():
    assert at_most([7, 8], 5) == []
'''
ZERO = '''\
def square(x):
    """x times x."""
    result = 0
    for _ in range(x):
        result += 1
    return result
'''
ZERO_TESTS = "from zero import square\n\n\ndef test_square():\n    assert square(3) == 9\n"


def _embedded() -> TransformersBackend:
    return TransformersBackend(TransformersConfig(model=defaults.EMBEDDED_MODEL, device="cpu"))


def _workspace(root, name, code, tests):
    (root / f"{name}.py").write_text(code)
    (root / f"test_{name}.py").write_text(tests)
    return RefineTarget(root, f"{name}.py", {"limit": "at_most", "zero": "square"}[name]), [f"test_{name}.py"]


def test_ranked_single_edits_turn_a_red_test_green(tmp_path):
    target, tests = _workspace(tmp_path, "limit", LIMIT, LIMIT_TESTS)
    before = checksum(tmp_path)
    result = refine(target, tests, _embedded(), sandbox=sandbox(tmp_path), budget=RefineBudget(candidates=8))
    assert checksum(tmp_path) == before

    assert result.verified and result.reason == "green"
    assert "-    return [v for v in values if v < limit]\n+    return [v for v in values if v <= limit]" in result.diff
    ran = [c for r in result.trajectory[1:] for c in r.candidates]
    assert all(r.format == "cycle" for r in result.trajectory[1:])
    assert all(c.finish_reason.startswith("ranked (log p ") and len(c.diffs) == 1 for c in ran)
    assert len({c.program for c in ran}) == len(ran)  # no program runs twice
    scores = [float(c.finish_reason.split()[-1].rstrip(")")) for c in ran]
    assert scores == sorted(scores, reverse=True)  # likeliest first, across rounds from the same program


def test_rounds_that_test_new_edits_are_not_stale_and_the_budget_holds(tmp_path):
    target, tests = _workspace(tmp_path, "zero", ZERO, ZERO_TESTS)  # no single edit fixes it
    result = refine(target, tests, _embedded(), sandbox=sandbox(tmp_path),
                    budget=RefineBudget(rounds=3, candidates=2, patience=1, strategy="rank"))
    assert not result.verified and result.reason == "rounds" and result.rounds == 3
    assert [len(r.candidates) for r in result.trajectory] == [1, 2, 2, 2]


def test_auto_follows_the_manifest_and_a_model_without_one_generates():
    assert _embedded().profile().strategy == "rank"
    plain = TransformersBackend(TransformersConfig(model=str(repair_model()), device="cpu"))
    assert plain.profile().strategy == "generate"


def test_a_backend_that_cannot_score_cannot_rank(tmp_path):
    target, tests = _workspace(tmp_path, "zero", ZERO, ZERO_TESTS)
    with pytest.raises(RefineError, match="cannot score"):
        refine(target, tests, OpenAIBackend(), sandbox=sandbox(tmp_path), budget=RefineBudget(strategy="rank"))


def test_an_unknown_strategy_is_refused_before_anything_runs():
    with pytest.raises(ValueError, match="strategy"):
        RefineBudget(strategy="guess")
    with pytest.raises(ConfigError, match="strategy"):
        RunConfig(strategy="guess")
    assert RunConfig(strategy="rank").budget.strategy == "rank"
