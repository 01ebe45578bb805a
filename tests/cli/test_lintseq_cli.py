"""`editseq lintseq` end to end, as a user runs it: a real process on real files."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from model_runtime.edits.editpath import resolve_edit_path
from model_runtime.lintseq.data import unwrap_fences


def editseq(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "model_runtime.cli", *args],
        capture_output=True, text=True, cwd=cwd, timeout=300,
    )


def write_jsonl(path: Path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


ROWS = [
    {"instruction": "Add one.", "response": "def add_one(x):\n    y = x + 1\n    return y\n"},
    {"instruction": "Fenced.", "response": "Here you go:\n```python\nimport os\n\n\ndef cwd():\n    return os.getcwd()\n```\nDone."},
    {"instruction": "Empty.", "response": ""},
    {"instruction": "Broken.", "response": "def f(:\n"},
    {"instruction": "Comments.", "response": "# nothing here\n"},
    {"instruction": "Loop.", "response": "def total(xs):\n    s = 0\n    for x in xs:\n        s += x\n    return s\n"},
]


def read_rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_rows_fields_and_summary(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(src, ROWS)
    proc = editseq("lintseq", str(src), "-o", str(out), "--paths-per-sample", "3", "--seed", "5", "-q")
    assert proc.returncode == 0, proc.stderr
    rows = read_rows(out)
    assert len(rows) == 3 * 3
    assert {r["index"] for r in rows} == {0, 1, 5}
    for row in rows:
        assert set(row) == {"edit_path", "index", "source_file", "source_instruction", "source_response"}
        original = ROWS[row["index"]]
        assert row["source_response"] == original["response"]
        assert row["source_instruction"] == original["instruction"]
        assert row["source_file"] == str(src)
        program = resolve_edit_path(row["edit_path"]).program
        assert program.strip() == unwrap_fences(original["response"]).strip()
    assert "```" not in "".join(d for r in rows for d in r["edit_path"])
    summary = proc.stdout.strip().splitlines()[-1]
    assert summary.startswith("lintseq: 6 programs, 9 paths, 3 skipped")
    assert "comment-only: 1" in summary and "empty: 1" in summary and "syntax-error: 1" in summary


def test_workers_and_seeds_are_deterministic(tmp_path):
    src = tmp_path / "in.jsonl"
    rows = ROWS * 20
    write_jsonl(src, rows)
    outs = []
    for workers, seed in ((1, 7), (2, 7), (1, 8)):
        out = tmp_path / f"out-{workers}-{seed}.jsonl"
        proc = editseq("lintseq", str(src), "-o", str(out), "-s", "2", "--seed", str(seed), "-w", str(workers), "-q")
        assert proc.returncode == 0, proc.stderr
        outs.append(out.read_text())
    assert outs[0] == outs[1]  # workers do not change results
    assert outs[0] != outs[2]  # the seed does


def test_custom_fields_and_num_samples(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(src, [{"prompt": r["instruction"], "code": r["response"]} for r in ROWS])
    proc = editseq("lintseq", str(src), "-o", str(out), "--code-field", "code", "--prompt-field", "prompt",
                   "--num-samples", "2", "-q")
    assert proc.returncode == 0, proc.stderr
    rows = read_rows(out)
    assert [r["index"] for r in rows] == [0, 1]
    assert "source_code" in rows[0] and "source_prompt" in rows[0]


def test_pylint_linter_from_the_cli(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(src, ROWS[:2])
    proc = editseq("lintseq", str(src), "-o", str(out), "--linter", "pylint", "-q")
    assert proc.returncode == 0, proc.stderr
    assert len(read_rows(out)) == 2


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"instruction": "a", "response": "x = 1"}\n{not json}\n', "in.jsonl:2: not valid JSON"),
        ('{"instruction": "a", "response": "x = 1"}\n\n{"instruction": "b"}\n',
         "in.jsonl:3: missing field 'response' (fields: instruction)"),
        ('[1, 2]\n', "in.jsonl:1: expected a JSON object"),
        ('{"instruction": "a", "response": 3}\n', "in.jsonl:1: field 'response' is int"),
        pytest.param("[" * 100_000 + "]" * 100_000 + "\n", "in.jsonl:1: the JSON is nested too deeply",
                     id="deeply-nested"),
    ],
)
def test_bad_input_names_the_line_and_writes_nothing(tmp_path, content, message):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(content, encoding="utf-8")
    out.write_text("previous results\n")
    proc = editseq("lintseq", str(src), "-o", str(out), "-q")
    assert proc.returncode == 2
    assert message in proc.stderr
    assert out.read_text() == "previous results\n"  # untouched: written atomically or not at all
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_unreadable_input(tmp_path):
    proc = editseq("lintseq", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "o.jsonl"), "-q")
    assert proc.returncode == 2 and "cannot read" in proc.stderr and "missing.jsonl" in proc.stderr


def test_non_utf8_row_is_skipped_not_fatal(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    good = json.dumps(ROWS[0]).encode()
    bad = b'{"instruction": "x", "response": "s = \'\xff\'"}'
    src.write_bytes(good + b"\n" + bad + b"\n" + good + b"\n")
    proc = editseq("lintseq", str(src), "-o", str(out), "-q")
    assert proc.returncode == 0, proc.stderr
    assert [r["index"] for r in read_rows(out)] == [0, 2]
    assert "non-utf8: 1" in proc.stdout


def test_needs_exactly_one_source(tmp_path):
    proc = editseq("lintseq", "-o", str(tmp_path / "o.jsonl"))
    assert proc.returncode == 2 and "either INPUT.jsonl or --from-repo" in proc.stderr


def test_progress_bar_on_stderr(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(src, ROWS)
    proc = editseq("lintseq", str(src), "-o", str(out))
    assert proc.returncode == 0
    assert "6/6" in proc.stderr


def test_help_is_fast_and_does_not_import_torch():
    code = ("import sys, model_runtime.cli as c; c.build_parser(); "
            "print('torch' in sys.modules, 'transformers' in sys.modules, 'pylint' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["False", "False", "False"]


def test_the_output_may_not_be_the_input(tmp_path):
    data = tmp_path / "in.jsonl"
    write_jsonl(data, ROWS)
    before = data.read_bytes()
    for output in (data, tmp_path / "." / "in.jsonl"):
        done = editseq("lintseq", str(data), "-o", str(output))
        assert done.returncode == 2 and "is the input" in done.stderr
        assert data.read_bytes() == before
