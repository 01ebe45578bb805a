"""CYCLE data collection for real: sampled programs run in the sandbox, repair rows, refine trajectories.

Every program runs in the sandbox (no mocks): the tiny LintSeq model's
samples on hand-written HumanEval-schema problems, hand-written samples to
pin down good-solution choice, plain rows and timeouts, and real refine runs
of the memorised repair model from ``tests/refine_models.py``.
"""

from __future__ import annotations

import json

import pytest

from model_runtime.backends.base import Completion
from model_runtime.cli import main
from model_runtime.training.cycle_data import (
    PLAIN_FIELDS,
    REPAIR_FIELDS,
    CheckedSample,
    CollectCounts,
    Skip,
    problem_rows,
    read_problems,
    record_run,
    similarity,
)
from model_runtime.edits.editpath import insertion_diff
from model_runtime.evaluation.problems import Executor, complete_program
from model_runtime.prompting.formats import TIMEOUT_FEEDBACK, get_format
from model_runtime.prompting.proposals import interpret_completion
from model_runtime.refine.target import locate_function
from model_runtime.edits.repair_diffs import apply_repair

from refine_models import repair_model, sandbox, write_workspace

PROBLEMS = [
    {"task_id": "demo/add", "entry_point": "add",
     "prompt": 'def add(a, b):\n    """Return the sum of a and b.\n    >>> add(1, 2)\n    3\n    """\n',
     "canonical_solution": "    return a + b\n",
     "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n"},
    {"task_id": "demo/first_word", "entry_point": "first_word",
     "prompt": 'def first_word(text):\n    """Return the first word of text, or an empty string."""\n',
     "canonical_solution": "    words = text.split()\n    return words[0] if words else ''\n",
     "test": "def check(candidate):\n    assert candidate('hello world') == 'hello'\n    assert candidate('') == ''\n"},
    {"task_id": "demo/count_upper", "entry_point": "count_upper",
     "prompt": 'def count_upper(s):\n    """Count the upper-case letters in s."""\n',
     "canonical_solution": "    return sum(1 for c in s if c.isupper())\n",
     "test": "def check(candidate):\n    assert candidate('aBC') == 2\n    assert candidate('') == 0\n"},
]


@pytest.fixture(scope="module")
def problems_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cycle-problems") / "problems.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    return path


def _check_repair_row(row: dict) -> None:
    """The row's answer, as the model will write it, turns the faulty code into the good one."""
    assert set(row) == set(REPAIR_FIELDS) and row["kind"] == "repair"
    assert row["feedback"].strip() and row["faulty"].strip() and row["faulty"] != row["good"]
    assert apply_repair(row["faulty"], row["edit_path"]) == row["good"]
    fmt = get_format("cycle")
    completion = Completion(0, fmt.render_answer(row["edit_path"], "</s>"), 0, "stop")
    proposal = interpret_completion(fmt, completion, row["faulty"], eos_token="</s>")
    assert proposal.program == row["good"] and not proposal.refused


# --------------------------------------------------------------------------- the tiny model, through the CLI


def test_collect_from_the_tiny_model_writes_repair_rows(tiny_lintseq_model, problems_file, tmp_path, capsys):
    out = tmp_path / "cycle.jsonl"
    argv = ["train", "cycle-collect", "--model", str(tiny_lintseq_model.folder), "--problems", str(problems_file),
            "--samples", "8", "--max-new-tokens", "128", "--timeout", "3", "--workers", "2", "--out", str(out),
            "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "3 problems, 24 samples" in printed and "wrote" in printed
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    repairs = [r for r in rows if r["kind"] == "repair"]
    assert repairs, printed  # the tiny model fails; its parseable programs become repair rows
    canonical = {p["task_id"]: locate_function(p["prompt"] + p["canonical_solution"], p["entry_point"]).code
                 for p in PROBLEMS}
    for row in repairs:
        _check_repair_row(row)
        assert row["source"] == "sample" and row["status"] in ("failed", "timeout", "error")
        if row["good_from"] == "canonical":
            assert row["good"] == canonical[row["task_id"]]
    for row in rows:
        if row["kind"] == "plain":
            assert set(row) == set(PLAIN_FIELDS) and row["edit_path"]


# --------------------------------------------------------------------------- choices, with real runs


def _sample(index: int, program: str) -> CheckedSample:
    lines = program.split("\n") if program else []
    diffs = [insertion_diff(lines, [True] * len(lines))] if lines else []
    return CheckedSample(index, program, diffs)


def test_rows_pick_the_most_similar_correct_solution_and_keep_passing_samples(tmp_path):
    problem = read_problems(_write(tmp_path, PROBLEMS[:1]))[0]
    samples = [
        _sample(0, "def add(a, b):\n    return b + a"),        # passes: a plain row, and a good solution
        _sample(1, "def add(a, b):\n    return b - a"),        # fails: closest to sample 0, not the canonical
        _sample(2, "def plus(a, b):\n    return a + b"),       # fails: no `add`, the whole program is faulty
        _sample(3, "def add(a, b):\n    while True:\n        pass"),  # times out
        _sample(4, ""),                                        # nothing applied: nothing to run
    ]
    counts = CollectCounts(problems=1)
    with Executor(timeout_s=1.0, workers=2) as executor:
        canonical_ok = executor.check(problem, problem.canonical_program)[0].passed
        for sample in samples:
            if sample.program:
                record_run(sample, *executor.check(problem, complete_program(problem, sample.program)), counts)
            else:
                record_run(sample, None, None, counts)
    assert canonical_ok
    assert (counts.samples, counts.passed, counts.failed, counts.timeouts, counts.not_run) == (5, 1, 2, 1, 1)
    assert samples[3].feedback == TIMEOUT_FEEDBACK
    assert samples[1].feedback.startswith("Test Case Failed: assert candidate(1, 2) == 3")
    assert "no attribute 'add'" in samples[2].feedback

    rows = problem_rows(problem, "Write add.", samples, canonical_ok, counts)
    by_sample = {row["origin"]["sample"]: row for row in rows}
    assert by_sample[0]["kind"] == "plain" and by_sample[0]["edit_path"] == samples[0].diffs
    assert by_sample[1]["good_from"] == "sample:0" and by_sample[1]["good"] == samples[0].program
    assert by_sample[1]["edit_path"] == ["@@ -1,2 +1,2 @@\n def add(a, b):\n-    return b - a\n+    return b + a"]
    assert by_sample[2]["origin"]["scope"] == "program" and by_sample[2]["faulty"] == samples[2].program
    assert by_sample[3]["feedback"] == TIMEOUT_FEEDBACK and by_sample[3]["status"] == "timeout"
    for number in (1, 2, 3):
        _check_repair_row(by_sample[number])
    assert 4 not in by_sample and counts.skipped == {Skip.NO_PROGRAM: 1}
    assert (counts.repair_rows, counts.plain_rows) == (3, 1)
    # Without a correct solution there is nothing to repair towards.
    none = CollectCounts()
    assert problem_rows(problem, "Write add.", samples[1:2], False, none) == []
    assert none.skipped == {Skip.NO_CORRECT: 1}
    assert similarity("return b - a", "return b + a") > similarity("return b - a", "return a + b + 0")


def _write(tmp_path, problems) -> str:
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in problems))
    return str(path)


# --------------------------------------------------------------------------- refine trajectories


def test_trajectories_of_real_refine_runs_become_repair_rows(tmp_path, capsys):
    from model_runtime.backends import TransformersBackend, TransformersConfig
    from model_runtime.refine.loop import RefineBudget, RefineTarget, refine

    backend = TransformersBackend(TransformersConfig(model=str(repair_model()), device="cpu"))
    results = []
    for name in ("clamp", "double"):  # red to green in two rounds; a copy that never verifies
        root, path, function, tests = write_workspace(tmp_path / name, name)
        results.append(refine(RefineTarget(root, path, function), tests, backend, sandbox=sandbox(root),
                              budget=RefineBudget(rounds=3, patience=1)))
    clamp, double = results
    assert clamp.verified and not double.verified
    trajectories = tmp_path / "runs.jsonl"
    trajectories.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in results))
    out = tmp_path / "cycle.jsonl"
    assert main(["train", "cycle-collect", "--trajectories", str(trajectories), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 repair rows (2 from 2 refine trajectories)" in printed and "trajectory-not-verified 1" in printed
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["origin"]["round"] for row in rows] == [1, 2]
    for row, record in zip(rows, clamp.trajectory[1:]):
        _check_repair_row(row)
        assert (row["faulty"], row["feedback"]) == (record.code, record.feedback)
        assert row["good"] == clamp.best.program and row["instruction"] == clamp.instruction
        assert row["source"] == "refine" and row["task_id"] == "clamp.py::clamp"
    # The first round repairs the original function towards the final one in two one-line steps.
    assert len(rows[0]["edit_path"]) == 2 and len(rows[1]["edit_path"]) == 1


# --------------------------------------------------------------------------- bad input


def test_cli_refuses_bad_input_with_exit_2(tmp_path, problems_file, capsys):
    out = str(tmp_path / "cycle.jsonl")

    def fails(*argv: str) -> str:
        assert main(["train", "cycle-collect", *argv, "--out", out]) == 2
        return capsys.readouterr().err

    assert "nothing to collect" in fails()
    assert "--problems needs --model" in fails("--problems", str(problems_file))
    assert "No such file" in fails("--model", "m", "--problems", str(tmp_path / "missing.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "x", "prompt": "def f():\\n"}\n')
    assert "bad.jsonl:1: field 'entry_point'" in fails("--model", "m", "--problems", str(bad))
    not_json = tmp_path / "run.json"
    not_json.write_text("{not json\n")
    assert "run.json:1: not JSON" in fails("--trajectories", str(not_json))
    assert "does not exist" in fails("--model", str(tmp_path / "no-model"), "--problems", str(problems_file))
    assert not (tmp_path / "cycle.jsonl").exists()  # nothing written on bad input
