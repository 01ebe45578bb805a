"""``editseq eval repair``: scoring, the no-model baseline, mutants, problem files and the CLI.

Everything runs for real: the sandbox runs pytest on every candidate, the
mutants come from HumanEval's canonical solutions, and the end-to-end run
uses the tiny memorising repair model of ``refine_models`` (which knows
nothing about these problems: it need not fix anything).
"""

from __future__ import annotations

import json
import re
import sys

import pytest

from model_runtime.cli import main
from model_runtime.evaluation.problems import load_problems
from model_runtime.evaluation.repair import (
    ARM_KEYS,
    FILES,
    RepairInputError,
    RepairProblem,
    build_mutants,
    parse_problem,
    read_problems,
    repair_baseline,
    repair_with_model,
    score,
    strip_check_call,
)
from model_runtime.run.config import RunConfig
from model_runtime.run.engine import make_backend
from refine_models import TEST_ENV, repair_model

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

#: HumanEvalPack's schema: the declaration has no docstring, the test ends by calling check.
ADD = {
    "task_id": "Toy/add",
    "declaration": "def add(a: int, b: int) -> int:\n",
    "buggy_solution": "    return a - b\n",
    "canonical_solution": "    return a + b\n",
    "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(0, 0) == 0\n\n\ncheck(add)\n",
    "entry_point": "add",
    "bug_type": "operator misuse",
}
#: Two edits away from right (min and max swapped): no single edit fixes it.
SPAN = {
    "task_id": "Toy/span",
    "declaration": "def span(xs: list) -> int:\n",
    "buggy_solution": "    return min(xs) - max(xs)\n",
    "canonical_solution": "    return max(xs) - min(xs)\n",
    "test": ("def check(candidate):\n    assert candidate([1, 5, 3]) == 4\n    assert candidate([2]) == 0\n\n\n"
             "check(span)\n"),
    "entry_point": "span",
    "bug_type": "function misuse",
}
#: A deleted statement: the baseline's edits cannot put it back.
TOTAL = {
    "task_id": "Toy/total",
    "declaration": "def total(xs: list) -> int:\n",
    "buggy_solution": "    s = 0\n    for x in xs:\n        pass\n    return s\n",
    "canonical_solution": "    s = 0\n    for x in xs:\n        s += x\n    return s\n",
    "test": "def check(candidate):\n    assert candidate([1, 2]) == 3\n\n\ncheck(total)\n",
    "entry_point": "total",
    "bug_type": "missing logic",
}


@pytest.fixture(autouse=True)
def _no_plugins(monkeypatch):
    """The tests' sandbox settings (no third-party pytest plugins in the test runs)."""
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)


def _config(rounds: int, candidates: int) -> RunConfig:
    return RunConfig(rounds=rounds, candidates=candidates, python=sys.executable)


def _write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- scoring


def test_a_known_good_fix_scores_fixed_and_the_bugs_do_not():
    config = _config(1, 1)
    for row in (ADD, SPAN, TOTAL):
        problem = parse_problem(row)
        assert score(problem, row["canonical_solution"], config=config), problem.task_id
        assert not score(problem, row["buggy_solution"], config=config), problem.task_id


# --------------------------------------------------------------------------- the baseline


def test_the_baseline_fixes_an_operator_bug_within_its_budget_and_no_further():
    problem = parse_problem(ADD)
    # The buggy code's mutations, in order: a -> b, b -> a, then - -> +, which fixes it.
    arm = repair_baseline(problem, _config(4, 8))
    assert arm.fixed and arm.stop == "green" and arm.fix == "operator: - -> +"
    assert arm.runs_to_fix == arm.test_runs == 4  # the buggy code, then three mutations
    assert arm.tokens == 0 and arm.round is None

    short = repair_baseline(problem, _config(1, 2))  # 1 + 1 x 2 runs: the fix is the third mutation
    assert not short.fixed and short.stop == "budget" and short.test_runs == 3 and short.runs_to_fix is None


@pytest.mark.parametrize("row", [SPAN, TOTAL], ids=["two-edits", "deleted-statement"])
def test_the_baseline_cannot_fix_a_bug_no_single_edit_undoes(row):
    arm = repair_baseline(parse_problem(row), _config(4, 8))  # 33 runs: more than there are edits
    assert not arm.fixed and arm.stop == "exhausted" and arm.fix == ""
    assert 1 < arm.test_runs < 33


def test_code_that_already_passes_is_fixed_at_round_0_in_both_arms_without_the_model():
    problem = parse_problem({**ADD, "buggy_solution": ADD["canonical_solution"]})
    config = RunConfig(model="never-loaded", rounds=2, candidates=2, python=sys.executable)
    for arm in (repair_with_model(problem, config, make_backend(config)), repair_baseline(problem, config)):
        assert arm.fixed and arm.stop == "green" and arm.runs_to_fix == arm.test_runs == 1 and arm.tokens == 0
    assert arm.round is None  # the baseline has no rounds
    assert repair_with_model(problem, config, make_backend(config)).round == 0


# --------------------------------------------------------------------------- mutants


def test_mutants_fail_their_tests_keep_the_declaration_and_repeat_for_a_seed():
    problems = load_problems(limit=3)
    first = build_mutants(problems, 4, seed=7, workers=2, python=sys.executable)
    again = build_mutants(problems, 4, seed=7, workers=1, python=sys.executable)
    assert first.found == 4 and first.problems == again.problems
    by_id = {p.task_id: p for p in problems}
    config = _config(1, 1)
    for mutant in first.problems:
        original = by_id[mutant.task_id.rsplit("/", 1)[0]]
        assert mutant.declaration == original.prompt  # imports, signature and docstring untouched
        assert mutant.buggy_solution != original.canonical_solution
        assert mutant.kind in ("operator", "value", "variable", "function", "excess", "missing") and mutant.detail
        assert mutant.canonical_solution == original.canonical_solution
        assert not score(mutant, mutant.buggy_solution, config=config)
    # One mutant per problem per pass: the fourth is the first problem's second.
    assert [m.task_id for m in first.problems] == [
        "HumanEval/0/mutant1", "HumanEval/1/mutant1", "HumanEval/2/mutant1", "HumanEval/0/mutant2"]
    assert first.to_json()["found"] == 4 and sum(first.to_json()["kinds"].values()) == 4


# --------------------------------------------------------------------------- problem files


def test_a_humanevalpack_file_is_read_and_its_check_call_left_to_the_test(tmp_path):
    path = _write(tmp_path / "pack.jsonl", [ADD, SPAN])
    problems = read_problems(path)
    assert [p.task_id for p in problems] == ["Toy/add", "Toy/span"]
    add = problems[0]
    assert "check(add)" not in add.test and add.test.startswith("def check(candidate):")
    assert add.kind == "operator" and add.buggy_program == ADD["declaration"] + ADD["buggy_solution"]
    assert read_problems(path, limit=1) == problems[:1]
    assert parse_problem(add.to_json()) == add  # the rows it writes read back the same
    assert strip_check_call("def check(c):\n    pass\n\ncheck(f)\nx = 1\n") == "def check(c):\n    pass\n\nx = 1\n"


@pytest.mark.parametrize(("row", "message"), [
    ({k: v for k, v in ADD.items() if k != "buggy_solution"}, "missing or not a string: buggy_solution"),
    ({**ADD, "entry_point": "subtract"}, "defines no function `subtract`"),
    ({**ADD, "buggy_solution": "    return a -\n"}, "does not parse"),
    ({**ADD, "test": "assert add(1, 1) == 2\n"}, "defines no check(candidate)"),
    ([ADD], "need a JSON object"),
])
def test_a_malformed_problem_is_refused_with_a_clear_error(tmp_path, row, message):
    path = _write(tmp_path / "bad.jsonl", [SPAN, row])
    with pytest.raises(RepairInputError, match=re.escape(message)) as caught:
        read_problems(path)
    assert f"{path}:2" in str(caught.value)


def test_the_cli_exits_2_on_bad_input(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "x"\n', encoding="utf-8")
    out = str(tmp_path / "out")
    assert main(["eval", "repair", "--problems", str(bad), "--baseline-only", "--out", out]) == 2
    assert "bad.jsonl:1: not a JSON object" in capsys.readouterr().err
    assert main(["eval", "repair", "--problems", str(tmp_path / "missing.jsonl"), "--baseline-only",
                 "--out", out]) == 2
    good = _write(tmp_path / "good.jsonl", [ADD])
    assert main(["eval", "repair", "--problems", str(good), "--baseline-only", "--model", "m", "--out", out]) == 2
    assert "--baseline-only runs no model" in capsys.readouterr().err
    assert main(["eval", "repair", "--problems", str(good), "--baseline-only", "--rounds", "-1",
                 "--out", out]) == 2
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- end to end


def test_a_model_run_writes_both_arms_side_by_side(tmp_path, capsys):
    problems = _write(tmp_path / "pack.jsonl", [ADD, SPAN])
    out = tmp_path / "out"
    code = main(["eval", "repair", "--problems", str(problems), "--model", str(repair_model()), "--device", "cpu",
                 "--rounds", "1", "--candidates", "1", "--max-new-tokens", "32", "--workers", "2",
                 "--python", sys.executable, "--out", str(out), "--no-progress"])
    assert code == 0
    for name in FILES:
        assert (out / name).is_file(), name
    assert (out / "repair.png").read_bytes().startswith(PNG_MAGIC)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["problems"] == 2 and summary["budget"]["test_runs_per_problem"] == 2
    for arm in (summary, summary["baseline"]):
        assert set(ARM_KEYS) <= set(arm)
        assert 0.0 <= arm["fixed"] <= 1.0 and set(arm["fixed_by_round"]) == {"0", "1"}
        assert arm["fixed_by_round"]["0"] == 0.0  # the buggy code never passes
        assert 2 <= arm["test_runs"] <= 4 and arm["seconds_median"] > 0
        assert set(arm["by_kind"]) == {"operator", "function"}
    assert summary["tokens"] > 0 and summary["baseline"]["tokens"] == 0
    assert summary["settings"]["model"] == str(repair_model())
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["task_id"] for r in rows] == ["Toy/add", "Toy/span"]
    for row in rows:
        assert 1 <= row["model"]["test_runs"] <= 2 and row["model"]["stop"]
        assert row["baseline"]["test_runs"] == 2 and not row["baseline"]["fixed"]
    printed = capsys.readouterr().out
    assert "| model (" in printed and "| baseline (single edits) |" in printed


def test_baseline_only_on_mutants_needs_no_model(tmp_path):
    out = tmp_path / "out"
    code = main(["eval", "repair", "--mutants", "2", "--seed", "3", "--limit", "2", "--baseline-only",
                 "--rounds", "1", "--candidates", "2", "--python", sys.executable, "--out", str(out),
                 "--no-progress"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["fixed"] is None and summary["tokens"] is None  # no model arm
    assert summary["mutants"]["found"] == 2 and summary["problems"] == 2
    assert all(1 <= r <= 3 for r in [summary["baseline"]["test_runs_mean"]])
    written = read_problems(out / "problems.jsonl")
    assert [p.task_id for p in written] == ["HumanEval/0/mutant1", "HumanEval/1/mutant1"]
    assert all(isinstance(p, RepairProblem) and p.kind for p in written)
