"""A model folder as one GGUF file, for llama.cpp's server, Ollama and LM Studio.

Those servers load GGUF, not safetensors. llama.cpp's own converter
(``convert_hf_to_gguf.py``) recognises a BPE tokenizer only by a hash of how
it splits a fixed text, and refuses any tokenizer it has not seen, which is
every tokenizer trained here. So this writes the file with the ``gguf``
package (llama.cpp's own writer library) directly, for what editseq trains: a
``LlamaForCausalLM`` with a byte-level BPE tokenizer (GPT-2's pre-tokenizer
rule, which llama.cpp calls ``gpt-2``).

Two things must be exactly right for llama.cpp to compute what transformers
computes:

* **Rotary layout.** transformers rotates the two *halves* of each head's
  query and key (``rotate_half``); llama.cpp's ``llama`` architecture rotates
  *adjacent pairs*. The rows of ``q_proj`` and ``k_proj`` are reordered per
  head so that pair ``j`` of llama.cpp holds rows ``j`` and ``j + d/2`` of
  transformers' head.
* **Tokens.** The vocabulary in id order with its byte-level strings, the
  merges, and a type per token: ``<|endoftext|>`` and ``<|pad|>`` are
  control tokens; ``<|diff|>`` is *user-defined*, so llama.cpp both reads it
  in a prompt and writes it out as text (a control token would be dropped
  from the answer, and with it every diff boundary).

A tokenizer's chat template travels as ``tokenizer.chat_template``, which the
servers use for ``/v1/chat/completions``. The test suite checks the result
the only way that counts: llama-cpp-python's server answers greedy prompts
with the same text as the in-process backend.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from model_runtime.errors import EditseqError

__all__ = ["GGUFError", "GGUFReport", "export_gguf"]

#: Tensor names: transformers' per-layer suffix -> llama.cpp's.
_LAYER = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_TOP = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight"}
_DTYPES = ("f32", "f16")


class GGUFError(EditseqError):
    """The folder is not a model this exporter handles, or the file cannot be written."""


@dataclass(frozen=True, slots=True)
class GGUFReport:
    out: Path
    tensors: int
    vocab: int
    bytes: int
    chat_template: bool


def export_gguf(folder: str | Path, out: str | Path, *, dtype: str = "f32") -> GGUFReport:
    """Write the model in ``folder`` (a Llama with a byte-level BPE tokenizer) to ``out`` as GGUF.

    ``dtype`` is ``f32`` (exact) or ``f16`` (half the bytes; norms stay f32,
    as llama.cpp expects). Raises :class:`GGUFError` for anything else.
    """
    try:
        import gguf
    except ImportError:
        raise GGUFError("writing GGUF needs the gguf package: pip install gguf") from None
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in _DTYPES:
        raise GGUFError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    folder, out = Path(folder), Path(out)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        tokenizer_json = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GGUFError(f"{folder} is not a model folder with config.json and tokenizer.json: {exc}") from None
    if config.get("model_type") != "llama":
        raise GGUFError(f"only Llama models are exported, and {folder} holds a {config.get('model_type')!r} model")
    model_spec = tokenizer_json.get("model") or {}
    if model_spec.get("type") != "BPE" or (tokenizer_json.get("pre_tokenizer") or {}).get("type") != "ByteLevel":
        raise GGUFError("only byte-level BPE tokenizers are exported (llama.cpp's gpt-2 pre-tokenizer)")
    if (config.get("rope_scaling") or {}).get("rope_type", "default") != "default":
        raise GGUFError("scaled rotary embeddings are not exported")
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, local_files_only=True)

    heads, kv_heads = config["num_attention_heads"], config.get("num_key_value_heads", config["num_attention_heads"])
    hidden = config["hidden_size"]
    head_dim = config.get("head_dim") or hidden // heads
    rope = config.get("rope_parameters") or {}
    theta = rope.get("rope_theta", config.get("rope_theta", 10000.0))
    vocab = _vocabulary(tokenizer_json, len(tokenizer))

    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_name(folder.name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(hidden)
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(theta))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_vocab_size(len(vocab.tokens))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32 if dtype == "f32" else gguf.LlamaFileType.MOSTLY_F16)

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    writer.add_token_merges(vocab.merges)
    for setter, token_id in ((writer.add_bos_token_id, tokenizer.bos_token_id),
                             (writer.add_eos_token_id, tokenizer.eos_token_id),
                             (writer.add_pad_token_id, tokenizer.pad_token_id)):
        if token_id is not None:
            setter(token_id)
    writer.add_add_bos_token(False)  # transformers' tokenizer adds none either
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, str) and template:
        writer.add_chat_template(template)

    count = 0
    for name, tensor in model.state_dict().items():
        target = _tensor_name(name)
        if target is None or (target == "output.weight" and config.get("tie_word_embeddings")):
            continue  # llama.cpp reuses token_embd when output is absent
        data = tensor.detach().to(torch.float32).numpy()
        if name.endswith("q_proj.weight"):
            data = _pairs_from_halves(data, heads)
        elif name.endswith("k_proj.weight"):
            data = _pairs_from_halves(data, kv_heads)
        if dtype == "f16" and data.ndim == 2:
            data = data.astype(np.float16)
        writer.add_tensor(target, np.ascontiguousarray(data))
        count += 1
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    except OSError as exc:
        raise GGUFError(f"cannot write {out}: {exc}") from None
    finally:
        writer.close()
    return GGUFReport(out, count, len(vocab.tokens), out.stat().st_size, bool(template))


@dataclass(frozen=True, slots=True)
class _Vocabulary:
    tokens: list[str]
    types: list[int]
    merges: list[str]


def _vocabulary(tokenizer_json: dict, size: int) -> _Vocabulary:
    """Tokens in id order, their llama.cpp types, and the merges as ``"a b"`` strings."""
    import gguf

    by_id: dict[int, str] = {i: t for t, i in tokenizer_json["model"]["vocab"].items()}
    types = {i: gguf.TokenType.NORMAL for i in by_id}
    for added in tokenizer_json.get("added_tokens", []):
        by_id[added["id"]] = added["content"]
        types[added["id"]] = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
    size = max(size, max(by_id) + 1)
    tokens, kinds = [], []
    for i in range(size):
        if i in by_id:
            tokens.append(by_id[i])
            kinds.append(int(types[i]))
        else:  # a hole in the ids (never seen here, but llama.cpp needs a dense list)
            tokens.append(f"[PAD{i}]")
            kinds.append(int(gguf.TokenType.UNUSED))
    merges = [m if isinstance(m, str) else " ".join(m) for m in tokenizer_json["model"].get("merges", [])]
    return _Vocabulary(tokens, kinds, merges)


def _tensor_name(name: str) -> str | None:
    if name in _TOP:
        return _TOP[name]
    parts = name.split(".", 3)  # model.layers.N.rest
    if len(parts) == 4 and parts[:2] == ["model", "layers"] and parts[3] in _LAYER:
        return f"blk.{parts[2]}.{_LAYER[parts[3]]}"
    return None


def _pairs_from_halves(weight, heads: int):
    """Reorder each head's output rows from (first half, second half) to interleaved pairs."""
    rows, columns = weight.shape
    half = rows // heads // 2
    return weight.reshape(heads, 2, half, columns).swapaxes(1, 2).reshape(rows, columns)
