"""Tokenizer, pretraining on packed blocks, time-budget chunks with resume, throughput/MFU, export.

Real runs on CPU: a byte-level BPE trained on standard-library files, a tiny
Llama pretrained for a few dozen steps, a bf16 sharded export reloaded and
compared with the fp32 model.
"""

from __future__ import annotations

import json
import math
import os

import pytest

from model_runtime.cli import main
from model_runtime.training.pretraining import CACHE_NAME, PackedDataset, corpus_texts
from model_runtime.training.throughput import flops_per_token
from model_runtime.training.tiny_model import stdlib_sample
from model_runtime.training.sft import LOSS_LOG, TrainingError


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A pretrain.jsonl of 30 standard-library files, as `editseq corpus` writes it."""
    path = tmp_path_factory.mktemp("corpus") / "pretrain.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for file in stdlib_sample(30, seed=3):
            text = file.read_text(encoding="utf-8")[:6000]
            handle.write(json.dumps({"text": text, "source": file.name}) + "\n")
    return path


@pytest.fixture(scope="module")
def tokenizer_dir(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    assert main(["train", "tokenizer", "--data", str(corpus), "--out", str(out), "--vocab-size", "512"]) == 0
    return out


def _log(out):
    return [json.loads(line) for line in (out / LOSS_LOG).read_text().splitlines()]


def _pretrain_args(corpus, tokenizer_dir, out, *extra):
    return ["train", "pretrain", "--data", str(corpus), "--model", "size:tiny", "--tokenizer", str(tokenizer_dir),
            "--out", str(out), "--block-size", "128", "--batch-size", "8", "--lr", "3e-3", "--warmup", "3",
            "--logging-steps", "5", "--save-steps", "20", "--threads", "1", "--quiet", *extra]


@pytest.fixture(scope="module")
def pretrained(corpus, tokenizer_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("pre") / "model"
    assert main(_pretrain_args(corpus, tokenizer_dir, out, "--max-steps", "40", "--peak-tflops", "0.05")) == 0
    return out


def test_tokenizer_has_the_format_tokens_and_round_trips(tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    assert tok.eos_token == "<|endoftext|>" and tok.pad_token == "<|pad|>"
    text = "def f(x):\n\treturn  x + 1  # é\n<|diff|>\n@@ -0,0 +1 @@"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.convert_tokens_to_ids("<|diff|>") in ids
    assert tok.decode(ids) == text


def test_packing_joins_documents_with_end_of_text(corpus, tokenizer_dir, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    data = PackedDataset([corpus], tok, block_size=64, cache_dir=tmp_path)
    texts = list(corpus_texts([corpus]))
    expected = sum(len(tok(t, add_special_tokens=False)["input_ids"]) + 1 for t in texts)
    assert data.stats.documents == len(texts) == 30 and data.stats.tokens == expected
    assert len(data) == expected // 64 and data.stats.dropped_tail == expected % 64
    first = [i for b in range(len(data)) for i in data[b]["input_ids"]]
    end = first.index(tok.eos_token_id)
    assert tok.decode(first[:end]) == texts[0]
    assert data[0]["labels"] == data[0]["input_ids"] and len(data[len(data) - 1]["input_ids"]) == 64
    with pytest.raises(IndexError):
        data[len(data)]
    again = PackedDataset([corpus], tok, block_size=64, cache_dir=tmp_path)
    assert again.stats.cached and list(again.ids) == list(data.ids)
    corpus.touch()  # the data changed (mtime): the cache must not be used
    assert not PackedDataset([corpus], tok, block_size=64, cache_dir=tmp_path).stats.cached


def test_pretraining_lowers_the_loss_and_reports_throughput(pretrained):
    log = [e for e in _log(pretrained) if "loss" in e]
    assert log[0]["step"] == 1 and log[-1]["step"] == 40
    assert log[-1]["loss"] < log[0]["loss"] - 0.5, (log[0]["loss"], log[-1]["loss"])
    assert all(e["tokens_per_second"] > 0 for e in log)
    assert all(0 < e["mfu"] for e in log)  # --peak-tflops given, so MFU is computed on CPU too
    assert (pretrained / CACHE_NAME).is_file() and (pretrained / "model.safetensors").is_file()


def test_mfu_is_flops_per_token_times_rate_over_peak(pretrained):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(pretrained)
    c = model.config
    per_token = flops_per_token(model, 128)
    assert per_token == 6 * model.num_parameters() + 12 * c.num_hidden_layers * c.hidden_size * 128
    entry = [e for e in _log(pretrained) if "mfu" in e][-1]
    assert math.isclose(entry["mfu"], entry["tokens_per_second"] * per_token / 0.05e12, rel_tol=1e-3)


def test_time_budget_stops_with_a_checkpoint_and_resume_finishes_the_schedule(corpus, tokenizer_dir, tmp_path, capsys):
    out = tmp_path / "chunked"
    # 0.0001 min = 6 ms: the first step already exceeds it.
    assert main(_pretrain_args(corpus, tokenizer_dir, out, "--max-steps", "12", "--time-budget", "0.0001")) == 0
    said = capsys.readouterr().out
    assert "step 1 (time budget reached" in said
    assert (out / "checkpoint-1").is_dir()
    cache = (out / CACHE_NAME).stat().st_mtime_ns
    assert main(_pretrain_args(corpus, tokenizer_dir, out, "--max-steps", "12", "--resume")) == 0
    said = capsys.readouterr().out
    assert "step 12, resumed from" in said and "checkpoint-1" in said
    assert (out / CACHE_NAME).stat().st_mtime_ns == cache  # the token stream was reused, not rebuilt
    steps = [e["step"] for e in _log(out) if "loss" in e]
    assert steps == [1, 5, 10]  # one curve: the first chunk's step 1, then the resumed run's logs


def test_export_writes_small_bf16_shards_that_reload_close_to_the_model(pretrained, tmp_path, capsys):
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path / "export"
    assert main(["train", "export", "--model", str(pretrained), "--out", str(out), "--max-shard-mb", "0.3"]) == 0
    assert "bf16" in capsys.readouterr().out
    shards = sorted(out.glob("*.safetensors"))
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # the usual modes, not a temporary folder's 0700
    assert all(p.stat().st_mode & 0o777 == 0o666 & ~umask for p in out.iterdir())
    assert len(shards) >= 3 and all(p.stat().st_size <= 300_000 + 4096 for p in shards)
    config = json.loads((out / "config.json").read_text())
    assert config.get("dtype", config.get("torch_dtype")) == "bfloat16"
    original = AutoModelForCausalLM.from_pretrained(pretrained).eval()
    shipped = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    ids = torch.arange(3, 40).unsqueeze(0)
    with torch.inference_mode():
        a, b = original(ids).logits, shipped(ids).logits
    assert (a.argmax(-1) == b.argmax(-1)).float().mean() > 0.9
    assert torch.allclose(a, b, atol=0.15)


def test_export_over_the_size_limit_fails_and_replaces_nothing(pretrained, tmp_path, capsys):
    out = tmp_path / "export"
    out.mkdir()
    (out / "keep.txt").write_text("previous export")
    assert main(["train", "export", "--model", str(pretrained), "--out", str(out), "--max-total-mib", "0.5"]) == 2
    assert "over the 0.5 MiB limit" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export-")]
    file = tmp_path / "a-file"
    file.write_text("not a folder")
    assert main(["train", "export", "--model", str(pretrained), "--out", str(file)]) == 2  # no traceback
    assert "is a file, not an export folder" in capsys.readouterr().err and file.read_text() == "not a folder"


def test_bad_inputs_are_reported(corpus, tokenizer_dir, tmp_path, capsys):
    assert main(["train", "pretrain", "--data", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o"),
                 "--quiet"]) == 2
    assert "no such data file" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x = 1"}\n[1, 2]\n')
    with pytest.raises(TrainingError, match=r"bad.jsonl:2"):
        list(corpus_texts([bad]))
    assert main(_pretrain_args(corpus, tokenizer_dir, tmp_path / "o2", "--block-size", "4096",
                               "--max-steps", "1")) == 2
    assert "exceeds the model's context" in capsys.readouterr().err
    assert main(["train", "export", "--model", str(tmp_path), "--out", str(tmp_path / "e")]) == 2
    assert "cannot load a model" in capsys.readouterr().err
