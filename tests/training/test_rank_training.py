"""Rank training for real: the session's tiny LintSeq model fine-tuned a few steps on hand-written bug rows."""

from __future__ import annotations

import json

from model_runtime.backends import TransformersBackend, TransformersConfig
from model_runtime.cli import main
from model_runtime.cli.train_rank_cmd import DEFAULTS
from model_runtime.edits.repair_diffs import repair_diffs
from model_runtime.training.rank_training import RankSettings

INSTRUCTION = "Write a Python function `clamp(x, low, high)`: limit x to the range from low to high."
GOOD = '''def clamp(x, low, high):
    """Limit x to the range from low to high."""
    if x < low:
        return low
    if x > high:
        return high
    return x'''
FEEDBACK = 'Test Case Failed: assert clamp(5, 0, 10) == 5, Input: "5, 0, 10", Expected output: "5", Actual output: "0"'


def _row(faulty: str, good: str = GOOD) -> dict:
    return {"kind": "repair", "instruction": INSTRUCTION, "faulty": faulty, "feedback": FEEDBACK, "good": good,
            "edit_path": repair_diffs(faulty, good)}


def _write(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _train(data, model, out, *options) -> int:
    return main(["train", "rank", "--data", data, "--model", str(model), "--out", str(out), *options])


def test_the_cli_defaults_are_the_settings_defaults():
    fields = RankSettings.__dataclass_fields__
    assert DEFAULTS == {name: fields[name].default for name in DEFAULTS}


def test_trains_checkpoints_resumes_and_the_model_scores(tiny_lintseq_model, tmp_path, capsys):
    rows = [_row(GOOD.replace("x < low", "x > low")), _row(GOOD.replace("return high", "return low")),
            _row(GOOD.replace("    if x > high:\n        return high\n", ""))]  # missing logic: not one edit
    data = _write(tmp_path / "bugs.jsonl", rows)
    out = tmp_path / "rank"
    assert _train(data, tiny_lintseq_model.folder, out, "--steps", "2", "--negatives", "4",
                  "--learning-rate", "1e-3") == 0
    first = capsys.readouterr().out
    assert "step 2/2 (2 this call)" in first and "finished" in first and "not-one-edit 1" in first
    assert _train(data, tiny_lintseq_model.folder, out, "--steps", "6", "--negatives", "4",
                  "--learning-rate", "1e-3", "--save-every", "2") == 0
    second = capsys.readouterr().out
    assert "step 6/6 (4 this call, resumed)" in second
    log = [json.loads(line) for line in (out / "rank_log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 6 and all(0 <= e["top1"] <= 1 and e["loss"] >= 0 for e in log)
    backend = TransformersBackend(TransformersConfig(model=str(out), device="cpu"))
    scores = backend.score("def f():\n", ["@@ -1,1 +1,1 @@\n-a\n+b", "x"])
    assert len(scores) == 2 and all(s < 0 for s in scores)
    assert backend.profile().strategy == "rank"  # its manifest says what it was trained for


def test_bad_input_exits_2_with_a_message(tiny_lintseq_model, tmp_path, capsys):
    missing_only = _write(tmp_path / "missing.jsonl",
                          [_row(GOOD.replace("    if x > high:\n        return high\n", ""))])
    assert _train(missing_only, tiny_lintseq_model.folder, tmp_path / "o1") == 2
    assert "no usable rows" in capsys.readouterr().err
    assert _train(str(tmp_path / "nothing.jsonl"), tiny_lintseq_model.folder, tmp_path / "o2") == 2
    assert _train(missing_only, tmp_path / "no-model", tmp_path / "o3") == 2
    assert "model folder" in capsys.readouterr().err
