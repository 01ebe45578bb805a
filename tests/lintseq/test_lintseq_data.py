"""The data-generation run streams: input is read as output is written, never all at once."""

import json

import pytest

from model_runtime.lintseq.data import LintSeqJob, Program, run_lintseq, unwrap_fences


def endless_programs(consumed, limit=100_000):
    for i in range(limit):
        consumed[0] = i + 1
        yield Program(i, f"task {i}", f"def f{i}(x):\n    y = x * {i}\n    return y\n", "generated")


@pytest.mark.parametrize("workers", [1, 2])
def test_input_is_consumed_lazily(tmp_path, workers):
    consumed = [0]
    seen_at_first_output = []

    def progress(n):
        if not seen_at_first_output:
            seen_at_first_output.append(consumed[0])

    job = LintSeqJob(workers=workers, num_samples=2000, batch_size=16)
    summary = run_lintseq(endless_programs(consumed), tmp_path / "out.jsonl", job, progress=progress)
    assert summary.programs == 2000 and summary.paths == 2000
    # only a bounded window (a few batches per worker) was read before the first result was written
    assert seen_at_first_output[0] <= (workers * 4 + 1) * 16
    assert consumed[0] == 2000  # --num-samples stops reading the input
    indexes = [json.loads(line)["index"] for line in (tmp_path / "out.jsonl").open()]
    assert indexes == list(range(2000))  # in input order, whatever the worker count


def test_unwrap_fences():
    text = "Intro\n```python\nx = 1\n```\nand\n```py\ny = 2\n```\n```bash\nls\n```"
    assert unwrap_fences(text) == "x = 1\ny = 2"
    assert unwrap_fences("x = 1\n") == "x = 1\n"
