"""CYCLE training: repair encoding, past-generation masking, the mix, and `editseq train cycle` for real.

The encoding and masking tests use a small BPE trained on the examples
themselves (a second); the CLI run fine-tunes the session's tiny LintSeq
model for a few Trainer steps on hand-written repair rows mixed with
``editseq lintseq`` rows.
"""

from __future__ import annotations

import json
import math

import pytest

from model_runtime.cli import main
from model_runtime.training.cycle_training import (
    MixedDataset,
    PlainRow,
    PlainRowsDataset,
    RepairDataset,
    RepairRow,
    encode_repair,
    read_cycle_rows,
)
from model_runtime.prompting.formats import PromptRequest, get_format
from model_runtime.edits.repair_diffs import repair_diffs
from model_runtime.training.sft_data import IGNORE_INDEX, DataError, PadCollator
from model_runtime.training.sft import LOSS_LOG

INSTRUCTION = ('Write a python function "def clamp(x, low, high)" to solve the following problem:\n'
               "Limit x to the range from low to high.")
FAULTY = ('def clamp(x, low, high):\n    """Limit x to the range from low to high."""\n    if x < low:\n'
          "        return high\n    if x > high:\n        return low\n    return x")
GOOD = FAULTY.replace("return high", "@").replace("return low", "return high").replace("@", "return low")
FEEDBACK = 'Test Case Failed: assert clamp(-5, 0, 10) == 0, Input: "-5, 0, 10", Expected output: "0", Actual output: "10"'


def _rows(n: int = 6) -> list[RepairRow]:
    rows = []
    for k in range(n):
        faulty = FAULTY.replace("low", f"low{k}")
        good = GOOD.replace("low", f"low{k}")
        rows.append(RepairRow(INSTRUCTION, faulty, FEEDBACK, tuple(repair_diffs(faulty, good)), "mem", k + 1))
    return rows


def _prompt(row: RepairRow) -> str:
    return get_format("cycle").build(PromptRequest(row.instruction, row.faulty, row.feedback))


@pytest.fixture(scope="module")
def tokenizer():
    from model_runtime.training.tiny_model import train_tokenizer

    fmt = get_format("cycle")
    texts = [_prompt(row) + fmt.render_answer(list(row.edit_path)) for row in _rows()]
    return train_tokenizer(texts * 4, 400)


def test_repair_example_labels_the_answer_and_spans_the_bad_solution_block(tokenizer):
    row = _rows(1)[0]
    example = encode_repair(tokenizer, row.instruction, row.faulty, row.feedback, row.edit_path, 2048)
    n, start = example.prompt_tokens, example.mask_start
    assert example.labels[:n] == [IGNORE_INDEX] * n and IGNORE_INDEX not in example.labels[n:]
    assert example.labels[n:] == example.input_ids[n:] and example.labels[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(example.input_ids[:n]) == _prompt(row)
    answer = get_format("cycle").render_answer(list(row.edit_path))
    assert tokenizer.decode(example.labels[n:]) == answer + tokenizer.eos_token
    # The maskable span is the repair block to the end of the prompt; the problem is outside it.
    assert 0 < start < n
    assert INSTRUCTION in tokenizer.decode(example.input_ids[:start])
    span = tokenizer.decode(example.input_ids[start:n])
    assert span.lstrip().startswith("### Bad Solution:") and _prompt(row).endswith(span)


def test_pgm_masks_only_the_block_at_the_requested_rate_and_is_deterministic(tokenizer):
    rows = _rows(6)
    data = RepairDataset(rows, tokenizer, max_length=2048, pgm=0.2, seed=7)
    masked = span = 0
    for epoch in range(5):
        data.set_epoch(epoch)
        for index in range(len(data)):
            item, example = data[index], data.encoded(index)
            mask = item["attention_mask"]
            assert item["labels"] == example.labels and item["input_ids"] == example.input_ids
            assert len(mask) == len(item["input_ids"])
            outside = mask[: example.mask_start] + mask[example.prompt_tokens :]
            assert all(outside), "PGM touched the problem text or the answer"
            span += example.prompt_tokens - example.mask_start
            masked += mask[example.mask_start : example.prompt_tokens].count(0)
    rate = masked / span
    assert abs(rate - 0.2) < 4 * math.sqrt(0.2 * 0.8 / span), (rate, span)
    # Deterministic for (seed, epoch, index); a new epoch or seed draws a new mask.
    again = RepairDataset(rows, tokenizer, max_length=2048, pgm=0.2, seed=7)
    again.set_epoch(4)
    assert [again[i]["attention_mask"] for i in range(6)] == [data[i]["attention_mask"] for i in range(6)]
    again.set_epoch(3)
    assert [again[i]["attention_mask"] for i in range(6)] != [data[i]["attention_mask"] for i in range(6)]
    other = RepairDataset(rows, tokenizer, max_length=2048, pgm=0.2, seed=8)
    other.set_epoch(4)
    assert [other[i]["attention_mask"] for i in range(6)] != [data[i]["attention_mask"] for i in range(6)]
    # Off: every token attended; the collator keeps an example's own mask.
    off = RepairDataset(rows, tokenizer, max_length=2048, pgm=0.0)
    assert all(all(off[i]["attention_mask"]) for i in range(len(off)))
    batch = PadCollator(tokenizer.pad_token_id)([data[0], off[1]])
    assert batch["attention_mask"][0, : len(data[0]["input_ids"])].tolist() == data[0]["attention_mask"]
    with pytest.raises(DataError, match="probability"):
        RepairDataset(rows, tokenizer, pgm=1.5)


def test_long_prompts_are_dropped_and_long_answers_truncated(tokenizer):
    rows = _rows(2)
    n = encode_repair(tokenizer, rows[0].instruction, rows[0].faulty, rows[0].feedback, rows[0].edit_path,
                      4096).prompt_tokens
    data = RepairDataset(rows, tokenizer, max_length=n + 2, pgm=0.0)
    assert len(data) == 2 and data.stats.truncated == 2 and len(data[0]["input_ids"]) == n + 2
    assert len(RepairDataset(rows, tokenizer, max_length=n, pgm=0.0)) == 0


def test_mix_has_ratio_times_repairs_plain_examples_deterministically(tokenizer):
    repair = RepairDataset(_rows(4), tokenizer, max_length=2048, pgm=0.0)
    plain = PlainRowsDataset([PlainRow(f"Write f{k}.", (f"@@ -0,0 +1 @@\n+x = {k}",), "mem", k) for k in range(5)],
                             tokenizer)
    mix = MixedDataset(repair, [plain], ratio=3, seed=0)
    assert len(mix) == 4 + 12 and mix.stats.plain == 12 and mix.stats.plain_distinct == 5  # repeated
    assert [mix.kind(i) for i in range(len(mix))].count("repair") == 4 and mix.stats.repair_share == 0.25
    assert mix.stats.data.rows == 16
    small = MixedDataset(repair, [plain], ratio=0.5, seed=0)
    assert small.stats.plain == 2 and small.stats.plain_distinct == 2  # subsampled
    assert small.plain == MixedDataset(repair, [plain], ratio=0.5, seed=0).plain
    assert {tuple(MixedDataset(repair, [plain], ratio=0.5, seed=s).plain) for s in range(6)} != {tuple(small.plain)}
    assert len(MixedDataset(repair, [], ratio=0)) == 4
    with pytest.raises(DataError, match="none"):
        MixedDataset(repair, [], ratio=1)


def test_cycle_rows_are_validated_with_file_and_line(tmp_path):
    good = {"kind": "repair", "instruction": "i", "faulty": "x = 1", "feedback": "f", "edit_path": ["@@ -1 +1 @@\n-x = 1\n+x = 2"]}
    path = tmp_path / "cycle.jsonl"
    path.write_text(json.dumps(good) + "\n\n" + json.dumps({"kind": "plain", "instruction": "i", "edit_path": ["d"]}) + "\n")
    repair, plain = read_cycle_rows([path])
    assert len(repair) == 1 and len(plain) == 1
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "kind": "other"}) + "\n")
    with pytest.raises(DataError, match=r"cycle\.jsonl:2: 'kind'"):
        read_cycle_rows([path])
    path.write_text(json.dumps({**good, "edit_path": []}) + "\n")
    with pytest.raises(DataError, match=r":1: 'edit_path'"):
        read_cycle_rows([path])


# --------------------------------------------------------------------------- the CLI, for real


@pytest.fixture(scope="module")
def cycle_files(tmp_path_factory):
    """Hand-written repair and plain rows, and `editseq lintseq` rows of a few stdlib functions."""
    from model_runtime.lintseq.data import LintSeqJob, Program, run_lintseq

    folder = tmp_path_factory.mktemp("cycle-train-data")
    rows = [{"kind": "repair", "instruction": r.instruction, "faulty": r.faulty, "feedback": r.feedback,
             "edit_path": list(r.edit_path)} for r in _rows(4)]
    rows.append({"kind": "plain", "instruction": "Write a function that returns one.",
                 "edit_path": ["@@ -0,0 +1,2 @@\n+def one():\n+    return 1"]})
    cycle = folder / "cycle.jsonl"
    cycle.write_text("".join(json.dumps(r) + "\n" for r in rows))
    programs = [Program(k, f"Write a function that adds {k}.", f"def add{k}(x):\n    y = x + {k}\n    return y\n", "mem")
                for k in range(4)]
    paths = folder / "paths.jsonl"
    run_lintseq(programs, paths, LintSeqJob(paths_per_sample=2))
    return cycle, paths


def _args(cycle, paths, model, out, *extra):
    return ["train", "cycle", "--data", str(cycle), "--lintseq-data", str(paths), "--model", str(model),
            "--out", str(out), "--lr", "1e-3", "--batch-size", "4", "--max-length", "384", "--logging-steps", "1",
            "--threads", "1", "--quiet", *extra]


def test_cli_trains_a_few_steps_from_the_tiny_model(tiny_lintseq_model, cycle_files, tmp_path, capsys):
    cycle, paths = cycle_files
    out = tmp_path / "out"
    assert main(_args(cycle, paths, tiny_lintseq_model.folder, out, "--max-steps", "3", "--pgm", "0.1")) == 0
    printed = capsys.readouterr().out
    assert "4 repair + 12 plain examples" in printed and "repair 25 %" in printed
    log = [json.loads(line) for line in (out / LOSS_LOG).read_text().splitlines()]
    losses = [entry["loss"] for entry in log if "loss" in entry]
    assert len(losses) == 3 and all(math.isfinite(x) and x > 0 for x in losses)
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()


def test_cli_refuses_bad_input_with_exit_2(tiny_lintseq_model, cycle_files, tmp_path, capsys):
    cycle, paths = cycle_files
    model = tiny_lintseq_model.folder
    assert main(_args(tmp_path / "missing.jsonl", paths, model, tmp_path / "o1")) == 2
    assert "missing.jsonl: no such data file" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "repair", "instruction": "i"}\n')
    assert main(_args(bad, paths, model, tmp_path / "o2")) == 2
    assert "bad.jsonl:1: no string field 'faulty'" in capsys.readouterr().err
    plain_only = tmp_path / "plain.jsonl"
    plain_only.write_text('{"kind": "plain", "instruction": "i", "edit_path": ["@@ -0,0 +1 @@\\n+x = 1"]}\n')
    assert main(_args(plain_only, paths, model, tmp_path / "o3")) == 2
    assert "no repair rows" in capsys.readouterr().err
    repair_only = tmp_path / "repair.jsonl"
    repair_only.write_text(cycle.read_text().splitlines()[0] + "\n")
    assert main(["train", "cycle", "--data", str(repair_only), "--model", str(model), "--out", str(tmp_path / "o4"),
                 "--max-steps", "1", "--threads", "1", "--quiet"]) == 2
    assert "--lintseq-data" in capsys.readouterr().err  # the default ratio needs plain examples
    assert main(_args(cycle, paths, "size:tiny", tmp_path / "o5")) == 2
    assert "trained model folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(_args(cycle, paths, model, tmp_path / "o6", "--pgm", "1.5"))
    assert exit_info.value.code == 2 and "probability" in capsys.readouterr().err


def test_a_masked_token_is_invisible_to_the_model(tokenizer):
    """PGM only works if the model honours a hole in the middle of the attention mask (not only
    padding at the end): a masked token's content must not reach any logit of the answer."""
    import torch

    from model_runtime.training.tiny_model import build_model

    model = build_model(tokenizer, "tiny").eval()
    data = RepairDataset(_rows(1), tokenizer, max_length=2048, pgm=0.5, seed=3)
    item, example = data[0], data.encoded(0)
    mask = item["attention_mask"]
    hidden = [i for i in range(example.mask_start, example.prompt_tokens) if mask[i] == 0]
    assert hidden
    ids = torch.tensor([item["input_ids"]])
    changed = ids.clone()
    changed[0, hidden] = (changed[0, hidden] + 1) % len(tokenizer)
    attention = torch.tensor([mask])
    with torch.inference_mode():
        a = model(input_ids=ids, attention_mask=attention).logits
        b = model(input_ids=changed, attention_mask=attention).logits
        full = model(input_ids=changed, attention_mask=torch.ones_like(attention)).logits
    after = slice(example.prompt_tokens, ids.shape[1])
    assert torch.allclose(a[0, after], b[0, after], atol=1e-5)  # hidden content does not leak
    assert not torch.allclose(b[0, after], full[0, after], atol=1e-3)  # and the mask did hide something
