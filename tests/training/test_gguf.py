"""``editseq train gguf``: a model folder as GGUF (the file llama.cpp's server reads is checked in
tests/backends/test_llama_cpp.py, where the served text equals the in-process text)."""

from __future__ import annotations

import pytest

from model_runtime.cli import main

gguf = pytest.importorskip("gguf")


def test_the_embedded_model_exports_with_its_tokens_and_diff_separator(tmp_path, capsys):
    out = tmp_path / "embedded.gguf"
    assert main(["train", "gguf", "--model", "embedded", "--out", str(out), "--dtype", "f16"]) == 0
    assert "4096 tokens, no chat template" in capsys.readouterr().out
    reader = gguf.GGUFReader(str(out))
    tokens = reader.fields["tokenizer.ggml.tokens"]
    names = [bytes(tokens.parts[i]).decode() for i in tokens.data]
    types = reader.fields["tokenizer.ggml.token_type"]
    kinds = [int(types.parts[i][0]) for i in types.data]
    assert names[:3] == ["<|endoftext|>", "<|pad|>", "<|diff|>"]
    assert kinds[:3] == [gguf.TokenType.CONTROL, gguf.TokenType.CONTROL, gguf.TokenType.USER_DEFINED]


def test_what_cannot_be_exported_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "gguf", "--model", str(tmp_path), "--out", str(tmp_path / "x.gguf")]) == 2
    assert "not a model folder" in capsys.readouterr().err
