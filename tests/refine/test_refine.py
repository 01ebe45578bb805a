"""The refinement loop with real tiny models, a real sandbox and real pytest runs; nothing mocked.

The proof that it reaches green uses a model trained in the tests (see
``refine_models``) to know the two fixes of ``clamp``; the budget test uses
the weak ``tiny_lintseq_model``, which never fixes anything.
"""

from __future__ import annotations

import json
import textwrap
import threading
import time

import pytest

from model_runtime.backends import TransformersBackend, TransformersConfig
from model_runtime.edits.diff_apply import apply_diff
from model_runtime.refine.loop import RefineBudget, RefineError, RefineTarget, refine, repair_prompt
from model_runtime.refine.target import locate_function
from refine_models import (
    CLAMP,
    CLAMP_FIXED,
    checksum,
    random_model,
    repair_model,
    sandbox,
    write_workspace,
)


def _backend(folder) -> TransformersBackend:
    return TransformersBackend(TransformersConfig(model=str(folder), device="cpu"))


def _run(tmp_path, name, model, **options):
    root, path, function, tests = write_workspace(tmp_path, name)
    events = []
    before = checksum(root)
    result = refine(RefineTarget(root, path, function), tests, _backend(model), sandbox=sandbox(root),
                    on_event=events.append, **options)
    assert checksum(root) == before  # the engine never writes to the workspace
    return result, events


def _kinds(events) -> list[str]:
    return [event.event for event in events]


# --------------------------------------------------------------------------- red to green


def test_reaches_green_round_by_round_with_a_model_that_knows_the_fix(tmp_path):
    result, events = _run(tmp_path, "clamp", repair_model())

    assert result.verified and result.reason == "green" and result.rounds == 2
    passed = [[c.passed for c in r.candidates] for r in result.trajectory]
    assert passed == [[1], [2], [3]]  # red, better, green
    first, second = result.trajectory[1], result.trajectory[2]
    assert first.format == second.format == "cycle"
    # Round 2 shows the model round 1's program and round 1's failure, not the original's.
    assert second.code == first.candidates[0].program and "return low\n    if x > high" in second.code
    assert second.feedback == first.candidates[0].feedback
    assert "clamp(50, 0, 10) == 10" in second.feedback and second.feedback in second.prompt
    assert "clamp(-5, 0, 10) == 0" in first.feedback

    # The file diffs replay from the original to the final text, one step per model edit.
    assert result.original == CLAMP and result.final == CLAMP_FIXED
    text = result.original
    for diff in result.diffs:
        step = apply_diff(text, diff)
        assert step.applied, step.reason
        text = step.new
    assert text == result.final and len(result.diffs) == 2
    assert apply_diff(result.original, result.diff).new == result.final

    assert _kinds(events) == [
        "round_started", "candidate", "round_finished",
        "round_started", "edit", "candidate", "round_finished",
        "round_started", "edit", "candidate", "round_finished", "done",
    ]
    done = events[-1].to_dict()
    assert done == {"event": "done", "verified": True, "rounds": 2, "reason": "green", "passed": 3,
                    "total": 3, "seconds": done["seconds"], "diff": result.diff}
    tested = [e for e in events if e.event == "candidate"]
    assert [(e.round, e.candidate, e.passed, e.total, e.green) for e in tested] == [
        (0, None, 1, 3, False), (1, 0, 2, 3, False), (2, 0, 3, 3, True)]
    data = json.loads(json.dumps(result.to_dict()))  # plain data: reusable as CYCLE training data
    assert data["trajectory"][2]["candidates"][0]["parent"] == [1, 0]
    assert data["best"]["completion"].startswith("--- a")


def test_already_green_code_is_verified_without_asking_the_model(tmp_path):
    root, path, function, tests = write_workspace(tmp_path, "clamp")
    (root / path).write_text(CLAMP_FIXED)
    events = []
    result = refine(RefineTarget(root, path, function), tests, _backend(random_model()),
                    sandbox=sandbox(root), on_event=events.append)
    assert result.verified and result.reason == "green" and result.rounds == 0
    assert result.diffs == [] and result.diff == "" and result.final == CLAMP_FIXED
    assert _kinds(events) == ["round_started", "candidate", "round_finished", "done"]


# --------------------------------------------------------------------------- not re-testing


def test_a_candidate_that_copies_the_faulty_code_back_is_not_run(tmp_path):
    result, events = _run(tmp_path, "double", repair_model())
    statuses = [[c.status for c in r.candidates] for r in result.trajectory]
    assert statuses == [["tested"], ["copy"], ["copy"]]
    assert result.reason == "no_improvement" and not result.verified and result.rounds == 2
    assert result.trajectory[1].candidates[0].diffs  # a real diff, that changes nothing
    assert sum(r.timings["pytest"] > 0 for r in result.trajectory) == 1  # only the original ran
    assert result.final == result.original and result.diffs == []
    copies = [e for e in events if e.event == "candidate" and e.status == "copy"]
    assert len(copies) == 2 and all(e.total == 0 for e in copies)


def test_a_program_already_run_is_not_run_again(tmp_path):
    result, _ = _run(tmp_path, "triple", repair_model())
    first, second = result.trajectory[1].candidates[0], result.trajectory[2].candidates[0]
    assert (first.status, second.status) == ("tested", "duplicate")
    assert "return x * 4" in first.program and second.program == first.program
    assert second.duplicate_of == [1, 0] and (second.passed, second.total) == (0, 1)
    assert result.trajectory[2].timings["pytest"] == 0
    assert result.reason == "no_improvement" and result.best.round == 0  # no better than the original


# --------------------------------------------------------------------------- weak model, budget


STUB = '''\
def mean(xs):
    """Return the arithmetic mean of the numbers in the list xs."""
'''
MEAN_TESTS = "from stats import mean\n\n\ndef test_mean():\n    assert mean([1, 2, 3]) == 2\n"


def test_a_weak_model_writes_then_stops_on_budget_and_says_so(tmp_path, tiny_lintseq_model):
    (tmp_path / "stats.py").write_text(STUB)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_stats.py").write_text(MEAN_TESTS)
    before = checksum(tmp_path)
    events = []
    # A LintSeq model without a manifest would get ``rewrite``; this one is asked for CYCLE diffs.
    budget = RefineBudget(rounds=3, candidates=2, temperature=0.8, max_new_tokens=96, patience=2,
                          strategy="generate")
    result = refine(RefineTarget(tmp_path, "stats.py", "mean"), ["tests/test_stats.py::test_mean"],
                    _backend(tiny_lintseq_model.folder), sandbox=sandbox(tmp_path), budget=budget,
                    on_event=events.append)

    assert not result.verified and result.reason in ("rounds", "no_improvement")
    assert result.rounds == 2 and result.reason == "no_improvement"  # two rounds without progress
    assert events[-1].to_dict()["reason"] == result.reason and events[-1].verified is False
    zero = result.trajectory[0]
    assert zero.format == "lintseq" and zero.prompt.endswith("<|diff|>")
    assert [c.candidate for c in zero.candidates] == [None, 0, 1]  # the stub, then 2 written
    assert all(r.format == "cycle" and r.prompt == repair_prompt(result.instruction, r.code, r.feedback)
               for r in result.trajectory[1:])
    for record in result.trajectory:
        for candidate in record.candidates:
            assert candidate.status in ("tested", "copy", "duplicate", "refused")
            assert not candidate.green
    assert checksum(tmp_path) == before


# --------------------------------------------------------------------------- stopping


def test_cancelling_during_generation_stops_the_model_within_a_second(tmp_path):
    cancel = threading.Event()
    stamps = {}

    def on_event(event):
        if event.event == "round_started" and event.round == 1:
            def fire():
                stamps["cancel"] = time.monotonic()
                cancel.set()
            threading.Timer(0.3, fire).start()

    root, path, function, tests = write_workspace(tmp_path, "clamp")
    budget = RefineBudget(max_new_tokens=20_000)
    result = refine(RefineTarget(root, path, function), tests, _backend(random_model()),
                    sandbox=sandbox(root), budget=budget, on_event=on_event, cancel=cancel)
    stopped = time.monotonic() - stamps["cancel"]
    assert stopped < 1.0, stopped
    assert result.reason == "cancelled" and not result.verified
    candidate = result.trajectory[1].candidates[0]
    assert (candidate.status, candidate.finish_reason) == ("cancelled", "cancelled")


def test_cancelling_during_the_tests_kills_them_within_a_second(tmp_path):
    (tmp_path / "slow.py").write_text("def wait():\n    return 1\n")
    (tmp_path / "test_slow.py").write_text(
        "import time\nfrom slow import wait\n\n\ndef test_wait():\n    time.sleep(60)\n    assert wait() == 2\n")
    cancel = threading.Event()
    stamps = {}

    def on_event(event):
        if event.event == "round_started":
            def fire():
                stamps["cancel"] = time.monotonic()
                cancel.set()
            threading.Timer(0.8, fire).start()

    result = refine(RefineTarget(tmp_path, "slow.py", "wait"), ["test_slow.py::test_wait"],
                    _backend(random_model()), sandbox=sandbox(tmp_path), on_event=on_event, cancel=cancel)
    stopped = time.monotonic() - stamps["cancel"]
    assert stopped < 1.0, stopped
    assert result.reason == "cancelled" and result.trajectory[0].candidates[0].status == "cancelled"
    assert len(result.trajectory) == 1


def test_the_time_budget_stops_generation(tmp_path):
    root, path, function, tests = write_workspace(tmp_path, "clamp")
    start = time.monotonic()
    result = refine(RefineTarget(root, path, function), tests, _backend(random_model()),
                    sandbox=sandbox(root), budget=RefineBudget(seconds=2.5, max_new_tokens=20_000))
    assert result.reason == "seconds" and not result.verified
    assert time.monotonic() - start < 3.5
    assert result.trajectory[-1].candidates[-1].status == "cancelled"


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("path", "function", "tests", "message"),
    [
        ("nope.py", "clamp", ["tests/test_clamp.py"], "no such file"),
        ("clamp.py", "clip", ["tests/test_clamp.py"], "no function `clip`"),
        ("clamp.py", "clamp", [], "no test ids"),
        ("clamp.py", "clamp", ["tests/test_nope.py::test_x"], "test file not found"),
        ("clamp.py", "clamp", ["tests/test_clamp.py::test_nothing"], "test not found"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, path, function, tests, message):
    root, *_ = write_workspace(tmp_path, "clamp")
    before = checksum(root)
    with pytest.raises(RefineError, match=message):
        refine(RefineTarget(root, path, function), tests, _backend(random_model()), sandbox=sandbox(root))
    assert checksum(root) == before


def test_budget_numbers_are_checked():
    with pytest.raises(ValueError):
        RefineBudget(candidates=0)
    with pytest.raises(ValueError):
        RefineBudget(seconds=0)
    with pytest.raises(ValueError):
        RefineBudget(temperature=-1)


# --------------------------------------------------------------------------- the target


def test_a_method_is_cut_out_dedented_and_put_back_at_its_indentation():
    source = textwrap.dedent('''\
        import os


        class Box:
            @property
            def size(self):
                """Doc.

                More."""
                return 1

            def other(self):
                pass
        ''').replace("\n", "\r\n")
    target = locate_function(source, "Box.size", "box.py")
    assert target.code == '@property\ndef size(self):\n    """Doc.\n\n    More."""\n    return 1'
    assert not target.empty and locate_function(source, "Box.other").empty
    assert target.splice(target.code) == source
    assert target.splice(target.code.replace("return 1", "return 2")) == source.replace("return 1", "return 2")
    with pytest.raises(RefineError, match="is a class"):
        locate_function(source, "Box")
