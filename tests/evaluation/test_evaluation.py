"""HumanEval evaluation: the pass@k estimator, real sandbox runs, and the CLI's output files."""

import json
import math
from itertools import product

import pytest

from model_runtime.cli import main
from model_runtime.evaluation.problems import (
    complete_program,
    default_ks,
    load_problems,
    mean_pass_at_k,
    pass_at_k,
)
from model_runtime.evaluation.report import FILES

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: A spread of problems, including those whose tests need the prompt's helpers
#: (10: is_palindrome, 32: poly, 38/50: encode_*) and imports (0: List).
CANONICAL_SUBSET = ["HumanEval/0", "HumanEval/10", "HumanEval/17", "HumanEval/32", "HumanEval/38",
                    "HumanEval/50", "HumanEval/53", "HumanEval/81", "HumanEval/99", "HumanEval/115",
                    "HumanEval/129", "HumanEval/145", "HumanEval/151", "HumanEval/163"]


# --------------------------------------------------------------------------- pass@k


@pytest.mark.parametrize("n, c, k, expected", [
    (10, 3, 1, 0.3),           # pass@1 is the fraction correct
    (5, 2, 2, 1 - 3 / 10),     # 1 - C(3,2)/C(5,2)
    (4, 1, 2, 1 - 3 / 6),      # 1 - C(3,2)/C(4,2)
    (200, 1, 100, 0.5),        # C(199,100)/C(200,100) = 100/200
    (5, 0, 3, 0.0),
    (5, 5, 5, 1.0),
    (5, 4, 2, 1.0),            # n - c < k: every draw of 2 holds a correct sample
    (1, 1, 1, 1.0),
])
def test_pass_at_k_matches_hand_computed_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_equals_the_binomial_form_everywhere_and_does_not_overflow():
    for n, c, k in product(range(1, 13), range(13), range(1, 13)):
        if c <= n and k <= n:
            exact = 1 - math.comb(n - c, k) / math.comb(n, k)
            assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)
    assert 0 < pass_at_k(2000, 3, 1000) < 1


@pytest.mark.parametrize("n, c, k", [(2, 1, 3), (3, 4, 1), (3, -1, 1), (3, 1, 0)])
def test_pass_at_k_rejects_impossible_inputs(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_mean_pass_at_k_averages_problems_and_default_ks_fit_n():
    assert mean_pass_at_k([(10, 10), (10, 0), (10, 5)], 1) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        mean_pass_at_k([], 1)
    assert default_ks(1) == [1]
    assert default_ks(2) == [1, 2]
    assert default_ks(10) == [1, 10]
    assert default_ks(200) == [1, 10, 100, 200]


# --------------------------------------------------------------------------- programs


def test_complete_program_adds_missing_imports_and_helpers_only():
    problems = {p.task_id: p for p in load_problems(task_ids=["HumanEval/0", "HumanEval/10"])}
    first = problems["HumanEval/0"]
    bare = "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n    return False\n"
    assert complete_program(first, bare).startswith("from typing import List\n")
    has_import = "from typing import List\n\n" + bare
    assert complete_program(first, has_import) == has_import
    helper = problems["HumanEval/10"]
    program = "def make_palindrome(string: str) -> str:\n    return string if is_palindrome(string) else ''\n"
    completed = complete_program(helper, program)
    assert completed.index("def is_palindrome") < completed.index("def make_palindrome")
    assert completed.count("def make_palindrome") == 1
    assert complete_program(first, "def broken(:\n") == "def broken(:\n"


# --------------------------------------------------------------------------- the CLI on samples


def _write_samples(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _summary(out):
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


def _results(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]


def test_canonical_solutions_score_100_percent(tmp_path, capsys):
    problems = load_problems(task_ids=CANONICAL_SUBSET)
    samples = _write_samples(tmp_path / "canonical.jsonl", [
        {"task_id": p.task_id, "completion": p.canonical_solution} for p in problems[:-1]
    ] + [{"task_id": problems[-1].task_id, "program": problems[-1].canonical_program}])
    out = tmp_path / "out"
    assert main(["eval", "humaneval", "--samples", str(samples), "--out", str(out), "--no-progress"]) == 0
    summary = _summary(out)
    assert summary["pass_at_k"] == {"1": 1.0}
    assert summary["problems"] == len(CANONICAL_SUBSET)
    assert summary["statuses"]["passed"] == len(CANONICAL_SUBSET)
    assert "one-shot | 100.0" in capsys.readouterr().out


def test_wrong_samples_score_zero_and_infinite_loops_time_out(tmp_path):
    problems = load_problems(limit=2)
    loop = "    try:\n        while True:\n            pass\n    except Exception:\n        return True\n"
    rows = []
    for p in problems:
        rows.append({"task_id": p.task_id, "completion": "    return None\n"})
        rows.append({"task_id": p.task_id, "completion": loop})
    samples = _write_samples(tmp_path / "wrong.jsonl", rows)
    out = tmp_path / "out"
    code = main(["eval", "humaneval", "--samples", str(samples), "--out", str(out), "--no-progress",
                 "--timeout", "1"])
    assert code == 0
    summary = _summary(out)
    assert summary["pass_at_k"] == {"1": 0.0, "2": 0.0}
    assert summary["statuses"]["failed"] == 2 and summary["statuses"]["timeout"] == 2
    for row in _results(out):
        statuses = [s["status"] for s in row["samples"]]
        assert statuses == ["failed", "timeout"]
        assert "timed out after 1.0 s" in row["samples"][1]["message"]
        assert row["samples"][1]["seconds"] < 10


def test_bad_samples_file_is_a_clear_error(tmp_path, capsys):
    bad = _write_samples(tmp_path / "bad.jsonl", [{"task_id": "HumanEval/0"}])
    assert main(["eval", "humaneval", "--samples", str(bad), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "completion or program" in capsys.readouterr().err
    unknown = _write_samples(tmp_path / "unknown.jsonl", [{"task_id": "Nope/1", "completion": ""}])
    assert main(["eval", "humaneval", "--samples", str(unknown), "--out", str(tmp_path / "o"),
                 "--no-progress"]) == 2


# --------------------------------------------------------------------------- the CLI on a real model


def _assert_output_files(out, problems, n):
    for name in FILES:
        assert (out / name).is_file(), name
    assert (out / "pass_at_k.png").read_bytes().startswith(PNG_MAGIC)
    summary = _summary(out)
    assert set(summary["pass_at_k"]) == {str(k) for k in default_ks(n)}
    assert all(0.0 <= v <= 1.0 for v in summary["pass_at_k"].values())
    assert summary["problems"] == problems and summary["samples_per_problem"] == n
    assert summary["tokens"]["one_shot"] > 0
    assert summary["seconds"]["total"] > 0 and summary["settings"]["n"] == n
    rows = _results(out)
    assert [r["task_id"] for r in rows] == [f"HumanEval/{i}" for i in range(problems)]
    for row in rows:
        assert row["n"] == n and len(row["samples"]) == n
        assert row["instruction"].startswith("Write a Python function `")
        assert all(s["status"] in ("passed", "failed", "timeout", "refused", "error") for s in row["samples"])
        assert sum(s["tokens"] for s in row["samples"]) == row["tokens"] > 0
    assert "| one-shot |" in (out / "table.md").read_text(encoding="utf-8")
    return summary, rows


def test_tiny_model_run_writes_every_file(tiny_lintseq_model, tmp_path):
    out = tmp_path / "out"
    code = main(["eval", "humaneval", "--model", str(tiny_lintseq_model.folder), "--limit", "3", "--n", "2",
                 "--max-new-tokens", "64", "--out", str(out), "--no-progress", "--device", "cpu"])
    assert code == 0
    summary, rows = _assert_output_files(out, 3, 2)
    assert summary["refine"] is None and summary["tokens"]["refine"] is None
    assert summary["settings"]["temperature"] == 0.8  # n > 1 samples by default
    assert all(r["refine"] is None for r in rows)


def test_refine_rounds_report_tokens_for_both_arms_at_equal_samples(tiny_lintseq_model, tmp_path):
    out = tmp_path / "out"
    code = main(["eval", "humaneval", "--model", str(tiny_lintseq_model.folder), "--limit", "2", "--n", "2",
                 "--refine-rounds", "1", "--max-new-tokens", "48", "--out", str(out), "--no-progress",
                 "--device", "cpu"])
    assert code == 0
    summary, rows = _assert_output_files(out, 2, 2)
    refine = summary["refine"]
    assert refine["rounds"] == 1
    assert summary["tokens"]["refine"] == refine["tokens"] > 0
    assert set(refine["solved_within"]) == {"1", "2"}
    for row in rows:
        arm = row["refine"]
        assert 1 <= arm["samples"] <= 2  # never more samples than the one-shot arm had
        assert arm["chains"] >= 1 and arm["tokens"] > 0
        assert arm["solved_at"] is None or arm["solved_at"] <= arm["samples"]
        assert "def " in arm["program"]
