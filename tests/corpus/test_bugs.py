"""`editseq corpus --bugs K`: synthetic bugs of the corpus's functions as CYCLE repair rows.

One small repository, built once with the CLI: a function with doctests whose
mutants fail (real feedback), one whose tests most mutants still pass
(equivalent mutants, dropped), functions without checks, a method, a class,
a function with no mutation site and one over the size limit.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from model_runtime.corpus.bugs import NO_TESTS_FEEDBACK, BugSettings, definition, function_bugs, similarity
from model_runtime.corpus.build import CorpusOptions, build_corpus, repo_source
from model_runtime.edits.mutations import KINDS
from model_runtime.edits.repair_diffs import apply_repair

HELPERS = textwrap.dedent('''
    """Small helpers for the bug tests."""
    import re


    def running_total(values):
        """Running sums of values.

        >>> running_total([1, 2, 3])
        [1, 3, 6]
        >>> running_total([])
        []
        """
        total = 0
        out = []
        for value in values:
            total += value
            out.append(total)
        return out


    def is_positive(number):
        """Whether number is above zero.

        >>> is_positive(5)
        True
        """
        return number > 0


    def biggest(values):
        """The largest of values."""
        return max(values)


    def name_of(thing):
        """The name of thing."""
        return thing.name


    def shout(text):
        """The text in capitals, with an exclamation mark."""
        return text.upper() + "!"


    def clamp(value, low, high):
        """Limit value to the range [low, high]."""
        if value < low:
            return low
        if value > high:
            return high
        return value


    def count_words(text, word):
        """How many times word occurs in text, ignoring case."""
        count = 0
        for token in re.findall(r"\\w+", text.lower()):
            if token == word.lower():
                count += 1
        return count


    def window_sums(values, size):
        """Sums of each run of size consecutive values."""
        sums = []
        for start in range(len(values) - size + 1):
            sums.append(sum(values[start:start + size]))
        return sums


    def describe(flag, items):
        """A word for the state of flag and items."""
        if flag and items:
            return "busy"
        elif flag:
            return "ready"
        else:
            return "idle"


    class Stack:
        """A last-in, first-out stack."""

        def __init__(self):
            self.items = []

        def push(self, item):
            """Put item on top and say how many there are."""
            self.items.append(item)
            return len(self.items)
''')

LONG = "def long_one(x):\n    \"\"\"Too long to mutate here.\"\"\"\n" + "".join(
    f"    x = x + {i}\n" for i in range(20)) + "    return x\n"

K = 3
MAX_LINES = 16  # long_one has 23 lines; running_total, the longest of the others, 13


def make_repo(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "helpers.py").write_text(HELPERS)
    (root / "pkg" / "long.py").write_text(LONG)
    return root


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def corpus_cli(repo: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "model_runtime.cli", "corpus", "--repo", str(repo), "--out", str(out), "-q",
         "--bug-max-lines", str(MAX_LINES), *extra],
        capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The repository's corpus with K bugs a function (the CLI, one worker): (repo, out, stdout)."""
    root = tmp_path_factory.mktemp("bugs")
    repo = make_repo(root / "demo")
    out = root / "out"
    proc = corpus_cli(repo, out, "--bugs", str(K))
    return repo, out, proc.stdout


def test_rows_are_cycle_repair_rows_whose_diffs_lead_back_to_the_original(built):
    from model_runtime.training.cycle_data import REPAIR_FIELDS, similarity as cycle_similarity

    _, out, _ = built
    rows = read_rows(out / "bugs.jsonl")
    programs = {row["source"]: row for row in read_rows(out / "programs.jsonl")}
    assert len(rows) > 20
    for row in rows:
        assert tuple(row) == REPAIR_FIELDS
        assert row["kind"] == "repair" and row["source"] == "mutation" and row["good_from"] == "original"
        assert row["faulty"] != row["good"]
        assert apply_repair(row["faulty"], row["edit_path"]) == row["good"]
        pair = programs[row["task_id"]]  # only kept pairs are mutated
        assert row["instruction"] == pair["instruction"]
        assert pair["response"].endswith(row["good"]) and not row["good"].startswith("import")
        assert row["origin"]["from"] == row["task_id"] and row["origin"]["kind"] in KINDS
        assert row["similarity"] == round(cycle_similarity(row["faulty"], row["good"]), 4)
    sources = {row["task_id"].rsplit("::", 1)[1] for row in rows}
    assert "Stack.push" in sources  # a method, mutated as programs.jsonl has it
    assert not sources & {"Stack", "name_of", "long_one"}  # a class, no site, too long


def test_report_counts_rows_per_kind_with_and_without_feedback_and_skips(built):
    _, out, stdout = built
    rows = read_rows(out / "bugs.jsonl")
    bugs = json.loads((out / "report.json").read_text())["bugs"]
    assert bugs["rows"] == len(rows)
    assert set(bugs["kinds"]) == set(KINDS) and all(bugs["kinds"][kind] > 0 for kind in KINDS)
    assert bugs["kinds"] == {kind: sum(row["origin"]["kind"] == kind for row in rows) for kind in KINDS}
    assert bugs["feedback"]["with"] == sum(row["origin"]["checks"] == "doctest" for row in rows) > 0
    assert bugs["feedback"]["with"] + bugs["feedback"]["without"] == len(rows)
    functions = bugs["functions"]
    assert functions["in"] == 12  # 9 functions, a method, the class, long_one (__init__ has no docstring)
    assert functions["skipped"] == {"class": 1, "too-large": 1, "no-mutation-site": 1}
    assert functions["mutated"] == 9 and functions["fewer_than_asked"] >= 1  # biggest has one mutant only
    mutants = bugs["mutants"]
    assert mutants["in"] - sum(mutants["dropped"].values()) == mutants["kept"] == len(rows)
    assert bugs["per_function"] == K and bugs["max_lines"] == MAX_LINES
    line = next(line for line in stdout.splitlines() if line.startswith("bugs: "))
    assert f"bugs: {len(rows)} rows from 9 of 12 functions" in line
    assert f"{bugs['feedback']['with']} with test feedback" in line and "class 1" in line
    assert "bugs.jsonl" in stdout


def test_functions_with_doctests_get_the_feedback_of_running_the_mutant(built):
    from model_runtime.corpus.doctest_problems import read_problem_file
    from model_runtime.evaluation.problems import Executor, complete_program
    from model_runtime.training.cycle_data import CheckedSample, CollectCounts, record_run

    _, out, _ = built
    rows = read_rows(out / "bugs.jsonl")
    bugs = json.loads((out / "report.json").read_text())["bugs"]
    problems = {p.task_id: p for p in read_problem_file(out / "problems.jsonl")}
    assert {name.rsplit("::", 1)[1] for name in problems} == {"running_total", "is_positive"}
    checked = [row for row in rows if row["task_id"] in problems]
    assert checked and all(row["origin"]["checks"] == "doctest" for row in checked)
    assert all(row["status"] in ("failed", "timeout", "error") for row in checked)
    assert all(row["feedback"] and row["feedback"] != NO_TESTS_FEEDBACK for row in checked)
    # is_positive(5) is True for `>= 0` and `> 1` too: equivalent mutants, dropped and counted
    assert bugs["mutants"]["dropped"]["mutant-passes"] == bugs["sandbox"]["passed"] >= 1
    assert sum(bugs["sandbox"].values()) == len(checked) + bugs["sandbox"]["passed"]
    for row in rows:
        if row["task_id"] not in problems:
            assert row["feedback"] == NO_TESTS_FEEDBACK and row["status"] == "not_run"
            assert row["origin"]["checks"] is None

    # the feedback is exactly what CYCLE collection makes of the same run
    row = next(row for row in checked if row["task_id"].endswith("::running_total"))
    problem = problems[row["task_id"]]
    with Executor(workers=1) as executor:
        execution, run = executor.check(problem, complete_program(problem, row["faulty"]))
    sample = CheckedSample(0, row["faulty"], [])
    record_run(sample, execution, run, CollectCounts())
    assert row["feedback"] == sample.feedback and row["status"] == sample.status == "failed"


def test_doctest_feedback_names_the_failing_example(built):
    _, out, _ = built
    rows = [row for row in read_rows(out / "bugs.jsonl") if row["task_id"].endswith("::running_total")]
    assert any("running_total([1, 2, 3])" in row["feedback"] for row in rows)


def test_editseq_train_cycle_reads_and_trains_on_the_rows(built, tmp_path, capsys):
    """The real reader, then two Trainer steps of `editseq train cycle --data bugs.jsonl` on an untrained tiny model."""
    from model_runtime.cli import main
    from model_runtime.training.cycle_training import read_cycle_rows
    from model_runtime.training.sft import LOSS_LOG
    from model_runtime.training.tiny_model import build_model, save_model, train_tokenizer

    _, out, _ = built
    rows = read_rows(out / "bugs.jsonl")
    repair, plain = read_cycle_rows([out / "bugs.jsonl"])
    assert len(repair) == len(rows) and plain == []
    assert [(r.faulty, r.feedback, list(r.edit_path)) for r in repair] == \
        [(row["faulty"], row["feedback"], row["edit_path"]) for row in rows]
    tokenizer = train_tokenizer([row["instruction"] + row["faulty"] + "".join(row["edit_path"]) for row in rows], 600)
    save_model(build_model(tokenizer, "tiny"), tokenizer, tmp_path / "model")
    trained = tmp_path / "trained"
    assert main(["train", "cycle", "--data", str(out / "bugs.jsonl"), "--lintseq-ratio", "0",
                 "--model", str(tmp_path / "model"), "--out", str(trained), "--max-steps", "2", "--batch-size", "4",
                 "--max-length", "768", "--logging-steps", "1", "--threads", "1", "--quiet"]) == 0
    assert f"{len(rows)} repair + 0 plain examples" in capsys.readouterr().out
    losses = [entry["loss"] for entry in map(json.loads, (trained / LOSS_LOG).read_text().splitlines())
              if "loss" in entry]
    assert len(losses) == 2 and all(loss > 0 for loss in losses)


def test_same_seed_same_rows_whatever_the_workers_and_another_seed_differs(built, tmp_path):
    repo, out, _ = built
    again = tmp_path / "again"  # the pool path: mutants made in two worker processes
    build_corpus([repo_source(repo)], again, CorpusOptions(bugs=K, bug_max_lines=MAX_LINES, workers=2))
    assert (again / "bugs.jsonl").read_bytes() == (out / "bugs.jsonl").read_bytes()
    other = tmp_path / "other"  # no problems: nothing to run, every row without checks
    build_corpus([repo_source(repo)], other, CorpusOptions(bugs=K, bug_max_lines=MAX_LINES, bug_seed=1,
                                                           max_problems=0))
    unchecked = {row["task_id"] for row in read_rows(out / "bugs.jsonl") if row["origin"]["checks"] is None}

    def mutants(folder: Path) -> list[tuple[str, str]]:
        return [(row["task_id"], row["faulty"]) for row in read_rows(folder / "bugs.jsonl")
                if row["task_id"] in unchecked]

    assert mutants(other) != mutants(out)
    assert (other / "programs.jsonl").read_bytes() == (out / "programs.jsonl").read_bytes()


def test_no_bugs_writes_no_bug_file_and_changes_nothing_else(built, tmp_path):
    repo, out, _ = built
    plain = tmp_path / "plain"
    build_corpus([repo_source(repo)], plain, CorpusOptions(bugs=0, bug_max_lines=MAX_LINES))
    assert sorted(p.name for p in plain.iterdir()) == ["pretrain.jsonl", "problems.jsonl", "programs.jsonl",
                                                       "report.json"]
    for name in ("programs.jsonl", "pretrain.jsonl", "problems.jsonl"):
        assert (plain / name).read_bytes() == (out / name).read_bytes(), name
    without = json.loads((plain / "report.json").read_text())
    with_bugs = json.loads((out / "report.json").read_text())
    assert "bugs" not in without and "bugs" not in without["seconds"]
    ignored = ("bugs", "seconds", "options")
    assert {k: v for k, v in without.items() if k not in ignored} == \
        {k: v for k, v in with_bugs.items() if k not in ignored}


def test_function_bugs_unit():
    program = "import re\n\n\ndef first_word(text):\n    \"\"\"The first word.\"\"\"\n    return re.findall(r'\\w+', text)[0]\n"
    code, what = definition(program)
    assert what == "function" and code.startswith("def first_word") and "import" not in code
    assert definition("class A:\n    pass\n")[1] == "class" and definition("x = (") is None
    settings = BugSettings(per_function=2, seed=3)
    first = function_bugs(program, "k::first_word", settings)
    assert first == function_bugs(program, "k::first_word", settings)  # seeded by seed and key
    assert first.good == code and 1 <= len(first.mutants) <= 2
    for mutant in first.mutants:
        assert apply_repair(mutant.faulty, list(mutant.edit_path)) == code
        assert mutant.similarity == round(similarity(mutant.faulty, code), 4)
    assert function_bugs("def f(x):\n    \"\"\"Doc.\"\"\"\n    return x\n", "k", settings).skip == "no-mutation-site"
    with pytest.raises(ValueError):
        BugSettings(per_function=0)
