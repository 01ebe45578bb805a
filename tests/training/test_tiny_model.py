"""The locally built tokenizer and models: special tokens, save/load, a real LintSeq fine-tune."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from model_runtime.edits.editpath import DIFF_TOKEN, resolve_edit_path
from model_runtime.training.tiny_model import (
    EOS_TOKEN,
    MODEL_SIZES,
    PAD_TOKEN,
    TrainSettings,
    build_model,
    lintseq_examples,
    save_model,
    stdlib_sample,
    train_lintseq_model,
    train_tokenizer,
)

CODE = 'def f(x):\n    """Ünïcode, tabs\tand  spaces."""  \n    return x + 1\n'


def small_tokenizer():
    return train_tokenizer(stdlib_sample(5), vocab_size=600)


def test_stdlib_sample_is_deterministic_and_skips_tests():
    first = stdlib_sample(20, seed=3)
    assert first == stdlib_sample(20, seed=3)
    assert first != stdlib_sample(20, seed=4)
    assert all(path.suffix == ".py" and "test" not in path.parts for path in first)


def test_tokenizer_has_the_special_tokens_and_round_trips():
    tok = small_tokenizer()
    assert [tok.convert_ids_to_tokens(i) for i in range(3)] == [EOS_TOKEN, PAD_TOKEN, DIFF_TOKEN]
    assert (tok.eos_token, tok.bos_token, tok.pad_token) == (EOS_TOKEN, EOS_TOKEN, PAD_TOKEN)
    text = CODE + "\n" + DIFF_TOKEN + "@@ -0,0 +1 @@\n+x" + EOS_TOKEN
    ids = tok.encode(text, add_special_tokens=False)
    assert ids.count(2) == 1 and ids[-1] == 0
    assert tok.decode(ids) == text  # byte-level: exact, whitespace and non-ASCII included
    # The separator is not "special", so servers that skip special tokens keep it.
    assert tok.decode(ids, skip_special_tokens=True) == text.removesuffix(EOS_TOKEN)


def test_model_sizes_and_unknown_size():
    tok = small_tokenizer()
    tiny = build_model(tok, "tiny")
    assert 0.2e6 <= tiny.num_parameters() <= 2e6
    assert tiny.config.vocab_size == len(tok) and tiny.config.tie_word_embeddings
    assert build_model(tok, "mini").num_parameters() > tiny.num_parameters()
    assert set(MODEL_SIZES) >= {"tiny", "mini", "small", "base"}
    try:
        build_model(tok, "huge")
    except ValueError as exc:
        assert "huge" in str(exc) and "tiny" in str(exc)
    else:
        raise AssertionError("an unknown size must be refused")


def test_model_round_trips_through_save_and_auto_load(tmp_path):
    tok = small_tokenizer()
    model = build_model(tok, "tiny", seed=1)
    save_model(model, tok, tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    loaded_tok = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded_tok.encode(CODE + DIFF_TOKEN) == tok.encode(CODE + DIFF_TOKEN)
    assert loaded_tok.pad_token_id == 1 and loaded_tok.eos_token_id == 0
    ids = torch.tensor([tok.encode(CODE)])
    with torch.inference_mode():
        assert torch.equal(model(ids).logits, loaded(ids).logits)
    assert loaded.generation_config.eos_token_id == 0


def test_lintseq_examples_are_deterministic_and_resolve():
    files = stdlib_sample(15)
    examples = lintseq_examples(files)
    assert examples and examples == lintseq_examples(files)
    for ex in examples:
        assert ex.instruction.startswith("Write a Python function `")
        assert ex.text().startswith(ex.prompt) and ex.text().endswith(EOS_TOKEN)
        resolution = resolve_edit_path(list(ex.diffs))
        assert resolution.ok and resolution.applied_hunks >= len(ex.diffs)
        assert '"""' not in resolution.program.split("\n")[1]  # the docstring is the instruction


def test_training_is_deterministic(tmp_path):
    settings = TrainSettings(
        steps=3, batch_size=2, tokenizer_files=5, data_files=15, vocab_size=600, max_tokens=512
    )
    first = train_lintseq_model(tmp_path / "a", settings)
    second = train_lintseq_model(tmp_path / "b", settings)
    assert first.examples > 0 and first.steps == 3
    assert (first.first_loss, first.final_loss) == (second.first_loss, second.final_loss)
    a = (tmp_path / "a" / "model.safetensors").read_bytes()
    assert a == (tmp_path / "b" / "model.safetensors").read_bytes()


def test_trained_model_writes_diffs_that_apply(tiny_lintseq_model):
    report = tiny_lintseq_model
    assert report.steps == TrainSettings().steps and report.examples > 100
    assert report.final_loss < report.first_loss / 5
    tok = AutoTokenizer.from_pretrained(report.folder)
    model = AutoModelForCausalLM.from_pretrained(report.folder)
    applied = 0
    for prompt in report.sample_prompts:
        ids = tok(prompt, return_tensors="pt").input_ids
        with torch.inference_mode():
            out = model.generate(ids, max_new_tokens=160, do_sample=False)
        completion = tok.decode(out[0, ids.shape[1] :])
        resolution = resolve_edit_path(completion, eos_token=EOS_TOKEN)
        applied += resolution.applied_hunks >= 1
    total = len(report.sample_prompts)
    assert total >= 10 and applied >= total // 2, f"only {applied} of {total} gave a diff that applies"
