"""`editseq corpus`: pairs, whole files and doctest problems from real code, filtered and counted."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from model_runtime.corpus.build import (
    CorpusError,
    CorpusOptions,
    Source,
    build_corpus,
    list_source_files,
    repo_source,
    sample_files,
    stdlib_source,
)
from model_runtime.corpus.doctest_problems import read_problem_file
from model_runtime.evaluation.problems import load_problems
from model_runtime.lintseq.data import read_jsonl_programs

WORDS = textwrap.dedent('''
    """Text helpers."""
    import re
    from typing import List

    FACTOR = 3


    def split_words(text: str) -> List[str]:
        """Split text into words.

        >>> split_words("to be, or not")
        ['to', 'be', 'or', 'not']
        """
        return re.findall(r"\\w+", text)


    def scaled(x):
        """Scale x by the module's factor.

        >>> scaled(2)
        6
        """
        return x * FACTOR


    def count_vowels(text: str) -> int:
        """Count the vowels of text, upper or lower case."""
        total = 0
        for char in text.lower():
            if char in "aeiou":
                total += 1
        return total
''')

NUMBERS = textwrap.dedent('''
    """Number helpers."""


    def clamp(value, low, high):
        """Limit value to the range [low, high]."""
        if value < low:
            return low
        if value > high:
            return high
        return value


    def mean(values):
        """The arithmetic mean of a non-empty sequence."""
        values = list(values)
        if not values:
            raise ValueError("mean of nothing")
        return sum(values) / len(values)


    def summarise(values, places=2):
        """A one-line summary of numbers: count, smallest, largest, mean and spread."""
        values = sorted(values)
        if not values:
            return "no values"
        count = len(values)
        smallest, largest = values[0], values[-1]
        average = sum(values) / count
        spread = (sum((v - average) ** 2 for v in values) / count) ** 0.5
        middle = count // 2
        median = values[middle] if count % 2 else (values[middle - 1] + values[middle]) / 2
        parts = [
            f"n={count}",
            f"min={smallest:.{places}f}",
            f"max={largest:.{places}f}",
            f"mean={average:.{places}f}",
            f"median={median:.{places}f}",
            f"sd={spread:.{places}f}",
        ]
        return ", ".join(parts)
''')


def make_repo(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "words.py").write_text(WORDS)
    (root / "pkg" / "words_copy.py").write_text(WORDS.replace("    ", "\t"))  # exact duplicate
    (root / "pkg" / "numbers.py").write_text(NUMBERS)
    # near duplicate: one word changed in the long function, the short ones identical
    (root / "pkg" / "numbers_fork.py").write_text(NUMBERS.replace('"no values"', '"empty"'))
    problem = load_problems(task_ids=["HumanEval/0"])[0]
    (root / "pkg" / "planted.py").write_text(problem.prompt + problem.canonical_solution)
    (root / "pkg" / "tiny.py").write_text('def one():\n    """One."""\n')
    return root


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def consistent(funnel: dict) -> bool:
    return funnel["in"] == sum(funnel["dropped"].values()) + funnel["kept"]


def test_repo_corpus_end_to_end(tmp_path):
    repo = make_repo(tmp_path / "demo")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "model_runtime.cli", "corpus", "--repo", str(repo), "--out", str(out), "-q"],
        capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["pretrain.jsonl", "problems.jsonl", "programs.jsonl",
                                                      "report.json"]
    report = json.loads((out / "report.json").read_text())

    pairs = read_rows(out / "programs.jsonl")
    assert {p["source"] for p in pairs} == {
        "repo:demo/pkg/numbers.py::clamp", "repo:demo/pkg/numbers.py::mean", "repo:demo/pkg/numbers.py::summarise",
        "repo:demo/pkg/words.py::split_words", "repo:demo/pkg/words.py::scaled",
        "repo:demo/pkg/words.py::count_vowels",
    }
    assert all(set(p) == {"instruction", "response", "source"} for p in pairs)
    assert report["pairs"]["dropped"] == {"too-small": 1, "too-large": 0, "contaminated": 1,
                                          "exact-duplicate": 5, "near-duplicate": 1}
    assert consistent(report["pairs"]) and report["pairs"]["kept"] == 6
    # directly usable as `editseq lintseq` input
    programs = list(read_jsonl_programs(out / "programs.jsonl"))
    assert [p.code for p in programs] == [p["response"] for p in pairs]

    texts = read_rows(out / "pretrain.jsonl")
    assert [t["source"] for t in texts] == ["repo:demo/pkg/numbers.py", "repo:demo/pkg/words.py"]
    assert texts[1]["text"] == WORDS
    assert report["pretrain"]["dropped"] == {"too-small": 1, "too-large": 0, "contaminated": 1,
                                             "exact-duplicate": 1, "near-duplicate": 1}

    problems = read_problem_file(out / "problems.jsonl")
    assert [p.task_id for p in problems] == ["repo:demo/pkg/words.py::split_words"]
    assert report["problems"]["rejected_before_running"] == {"uses-module-globals": 2}
    assert report["problems"]["dropped"]["contaminated"] == 1  # HumanEval/0 has doctests too
    assert report["problems"]["dropped"]["exact-duplicate"] == 1
    assert report["problems"]["validation"] == {"kept": 1}
    assert consistent(report["problems"]) and consistent(report["pretrain"])
    assert set(report["seconds"]) >= {"scan", "problems", "total"}
    assert "bugs" not in report and "bugs" not in report["seconds"]  # no --bugs: no bug stage, no bugs.jsonl

    assert "pairs: 14 in" in proc.stdout and "-> 6 kept" in proc.stdout
    assert "problems: 3 in" in proc.stdout
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_without_decontamination_the_planted_solution_stays(tmp_path):
    repo = make_repo(tmp_path / "demo")
    options = CorpusOptions(ngram=None, max_problems=0, near_dup_threshold=None)
    report = build_corpus([repo_source(repo)], tmp_path / "out", options)
    sources = {row["source"] for row in read_rows(tmp_path / "out" / "programs.jsonl")}
    assert "repo:demo/pkg/planted.py::has_close_elements" in sources
    assert "contaminated" not in report.pairs.dropped or report.pairs.dropped["contaminated"] == 0
    assert report.pairs.dropped["near-duplicate"] == 0
    assert report.problems.entered == 0 and read_rows(tmp_path / "out" / "problems.jsonl") == []


def test_a_failed_run_leaves_earlier_outputs_alone(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "programs.jsonl").write_text("old\n")
    with pytest.raises(CorpusError, match="no source"):
        build_corpus([], out)
    assert (out / "programs.jsonl").read_text() == "old\n" and len(list(out.iterdir())) == 1


def test_stdlib_listing_skips_tests_and_site_packages():
    files = [p.as_posix() for p in list_source_files(stdlib_source())]
    assert "textwrap.py" in files and "json/encoder.py" in files
    for banned in ("test/", "tests/", "idlelib/", "turtledemo/", "site-packages/"):
        assert not any(f.startswith(banned) or f"/{banned}" in f for f in files), banned
    assert not any(Path(f).name.startswith("test_") for f in files)


def test_sample_is_seeded_and_prefers_doctest_files():
    files = [(Source("s", Path(".")), Path(f"f{i:03}.py")) for i in range(100)]
    liked = {Path(f"f{i:03}.py") for i in range(0, 100, 10)}
    prefer = lambda source, rel: rel in liked  # noqa: E731
    first = sample_files(files, 8, seed=1, prefer=prefer)
    assert first == sample_files(files, 8, seed=1, prefer=prefer)
    assert first != sample_files(files, 8, seed=2, prefer=prefer)
    assert len(first) == 8 and sum(rel in liked for _, rel in first) == 4
    assert first == sorted(first, key=lambda pair: pair[1])  # original order kept
    assert sample_files(files, 200, seed=1) == files


def test_stdlib_smoke_run(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "model_runtime.cli", "corpus", "--stdlib", "--max-files", "6",
         "--max-problems", "1", "--seed", "4", "--out", str(out), "-q"],
        capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["files"]["sampled"] == 6 and report["sources"]["stdlib"]["files"] > 300
    assert report["pairs"]["kept"] > 0 and report["pretrain"]["kept"] > 0
    assert report["pairs"]["dropped"]["contaminated"] == 0
    assert all(row["source"].startswith("stdlib/") for row in read_rows(out / "programs.jsonl"))
    assert len(read_problem_file(out / "problems.jsonl")) <= 1


@pytest.mark.parametrize("argv, message", [
    ([], "no source"),
    (["--repo", "does-not-exist"], "not a folder: does-not-exist"),
])
def test_bad_input_exits_2(tmp_path, argv, message):
    proc = subprocess.run(
        [sys.executable, "-m", "model_runtime.cli", "corpus", "--out", str(tmp_path / "out"), *argv],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert proc.returncode == 2 and message in proc.stderr
    assert not (tmp_path / "out").exists()
