"""LintSeq SFT with the HF Trainer, for real on CPU: masking, a CLI run, checkpoints, resume, <|diff|>.

The data is made the way users make it: documented stdlib functions run
through ``model_runtime.lintseq.data`` (3 paths per program). The model is the
``tiny`` size with a 512-token BPE trained on that data.
"""

from __future__ import annotations

import json
import shutil

import pytest

from model_runtime.backends import GenerationRequest, TransformersBackend
from model_runtime.backends.transformers_backend import TransformersConfig
from model_runtime.cli import main
from model_runtime.edits.editpath import DIFF_TOKEN, format_prompt, format_training_text
from model_runtime.lintseq.linters import PyflakesLinter
from model_runtime.lintseq.data import LintSeqJob, Program, run_lintseq
from model_runtime.training.sft_data import IGNORE_INDEX, LintSeqSftDataset, PadCollator, encode_example, iter_rows
from model_runtime.training.tiny_model import _documented_functions, build_model, save_model, stdlib_sample, train_tokenizer
from model_runtime.training.sft import LOSS_LOG, ensure_diff_token

STEPS = 40
SAVE_EVERY = 20


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """``editseq lintseq`` output for 24 small documented stdlib functions, 3 paths each."""
    linter = PyflakesLinter()
    programs = []
    for file in stdlib_sample(60):
        for instruction, code in _documented_functions(file.read_text(encoding="utf-8"), 8):
            if not linter.lint(code) and len(programs) < 24:
                programs.append(Program(len(programs), instruction, code, str(file)))
    assert len(programs) == 24
    path = tmp_path_factory.mktemp("sft-data") / "paths.jsonl"
    summary = run_lintseq(programs, path, LintSeqJob(paths_per_sample=3))
    assert summary.paths == 72
    return path


def _train_args(data, out, *extra):
    return [
        "train", "lintseq", "--data", str(data), "--out", str(out), "--lr", "3e-3", "--batch-size", "8",
        "--max-length", "256", "--logging-steps", "1", "--save-steps", str(SAVE_EVERY), "--threads", "1",
        "--quiet", *extra,
    ]


def _log(out):
    return [json.loads(line) for line in (out / LOSS_LOG).read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """A from-scratch tiny model after 40 Trainer steps through the CLI."""
    out = tmp_path_factory.mktemp("sft-run") / "out"
    argv = _train_args(data, out, "--model", "size:tiny", "--tokenizer-from-data", "--vocab-size", "512",
                       "--max-steps", str(STEPS))
    assert main(argv) == 0
    return out


def test_labels_mask_exactly_the_prompt(data):
    tokenizer = train_tokenizer([format_training_text(r.instruction, r.diffs) for r in iter_rows([data])], 512)
    row = next(iter_rows([data]))
    example = encode_example(tokenizer, row.instruction, row.diffs, max_length=1024)
    n = example.prompt_tokens
    assert n > 0 and example.labels[:n] == [IGNORE_INDEX] * n
    assert IGNORE_INDEX not in example.labels[n:] and example.labels[n:] == example.input_ids[n:]
    assert tokenizer.decode(example.input_ids[:n]) == format_prompt(row.instruction)
    response = format_training_text(row.instruction, row.diffs)[len(format_prompt(row.instruction)) :]
    assert tokenizer.decode(example.labels[n:]) == response + tokenizer.eos_token
    assert example.labels[-1] == tokenizer.eos_token_id and not example.truncated

    short = encode_example(tokenizer, row.instruction, row.diffs, max_length=n + 3)
    assert short.truncated and len(short.input_ids) == n + 3 and short.labels[n:] == example.labels[n : n + 3]

    dataset = LintSeqSftDataset([data], tokenizer, max_length=256)
    batch = PadCollator(tokenizer.pad_token_id)([dataset[0], dataset[5]])
    widths = [len(dataset[0]["input_ids"]), len(dataset[5]["input_ids"])]
    for i, width in enumerate(widths):
        assert batch["attention_mask"][i].sum() == width
        assert (batch["labels"][i, width:] == IGNORE_INDEX).all()
        assert (batch["input_ids"][i, width:] == tokenizer.pad_token_id).all()
    assert len(dataset) == 72 and dataset.stats.response_tokens > 0


def test_cli_training_lowers_the_loss_and_saves_a_usable_model(trained):
    log = [entry for entry in _log(trained) if "loss" in entry]
    assert [entry["step"] for entry in log] == list(range(1, STEPS + 1))
    first = sum(e["loss"] for e in log[:5]) / 5
    last = sum(e["loss"] for e in log[-5:]) / 5
    assert last < 0.75 * first, (first, last)
    assert sorted(p.name for p in trained.glob("checkpoint-*")) == ["checkpoint-20", "checkpoint-40"]
    state = json.loads((trained / "checkpoint-20" / "trainer_state.json").read_text())
    assert state["global_step"] == 20

    backend = TransformersBackend(TransformersConfig(str(trained), local_files_only=True))
    prompt = format_prompt("Write a Python function `isleap(year)` to solve the following problem:\n"
                           "Return True for leap years, False for non-leap years.")
    result = backend.generate(GenerationRequest(prompt, max_new_tokens=40))
    assert result.completions[0].new_tokens > 0
    assert "@@" in result.completions[0].text  # every response starts with a hunk header


def test_resume_continues_from_the_last_checkpoint(trained, data, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(trained, out)
    shutil.rmtree(out / "checkpoint-40")  # the run "died" after step 20
    original = {e["step"]: e["loss"] for e in _log(trained) if "loss" in e}
    assert main(_train_args(data, out, "--model", "size:tiny", "--max-steps", str(STEPS), "--resume")) == 0
    summary = capsys.readouterr().out
    assert "resumed from" in summary and "checkpoint-20" in summary and f"step {STEPS}," in summary
    log = [e for e in _log(out) if "loss" in e]
    assert [e["step"] for e in log] == list(range(1, STEPS + 1))  # one curve, no restart at step 1
    resumed = {e["step"]: e["loss"] for e in log}
    # same optimizer, scheduler, RNG and data order as the uninterrupted run
    for step in range(SAVE_EVERY + 1, STEPS + 1):
        assert resumed[step] == pytest.approx(original[step], rel=1e-3), step
    assert (out / "checkpoint-40" / "trainer_state.json").exists()


def test_diff_token_is_added_and_embeddings_resized(data, tmp_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(
        [p.read_text(encoding="utf-8") for p in stdlib_sample(5)],
        trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False),
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    assert DIFF_TOKEN not in tokenizer.get_vocab()
    model = build_model(tokenizer, "tiny")
    rows = model.get_input_embeddings().weight.shape[0]
    folder = save_model(model, tokenizer, tmp_path / "hub-like")

    assert ensure_diff_token(tokenizer, model) is True
    assert model.get_input_embeddings().weight.shape[0] == rows + 1 == len(tokenizer)
    assert len(tokenizer.encode(DIFF_TOKEN, add_special_tokens=False)) == 1
    assert ensure_diff_token(tokenizer, model) is False

    # the same through a real run from a folder: the result loads in the backend, which needs <|diff|>
    out = tmp_path / "tuned"
    assert main(_train_args(data, out, "--model", str(folder), "--max-steps", "2")) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["vocab_size"] == rows + 1
    backend = TransformersBackend(TransformersConfig(str(out), local_files_only=True))
    backend.load()
    assert backend.loaded.diff_id == rows


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such data file"),
        ("", "no rows"),
        ('{"edit_path": ["@@ -0,0 +1 @@\\n+x = 1"], "source_instruction": "x"}\n\n{"edit_path": []}\n',
         "paths.jsonl:3: 'edit_path'"),
        ('{"edit_path": ["@@ -0,0 +1 @@\\n+x = 1"]}\n', "paths.jsonl:1: no string field 'source_instruction'"),
        ("not json\n", "paths.jsonl:1: not a JSON object"),
    ],
)
def test_bad_data_is_reported_with_its_line(tmp_path, capsys, content, message):
    data = tmp_path / "paths.jsonl"
    if content is not None:
        data.write_text(content)
    argv = _train_args(data, tmp_path / "out", "--model", "size:tiny", "--tokenizer-from-data", "--vocab-size", "300")
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_model_folder_that_does_not_load_is_reported(data, tmp_path, capsys):
    assert main(_train_args(data, tmp_path / "out", "--model", str(tmp_path / "missing"))) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text("{}")
    assert main(_train_args(data, tmp_path / "out", "--model", str(tmp_path / "junk"))) == 2
    assert f"cannot load a causal LM from {tmp_path / 'junk'}" in capsys.readouterr().err
