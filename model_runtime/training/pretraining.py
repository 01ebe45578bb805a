"""Pretraining from scratch on the code corpus: a BPE tokenizer, then a causal LM on packed blocks.

The corpus (``editseq corpus``) writes whole source files to
``pretrain.jsonl`` (``{"text", "source"}`` rows). Pretraining reads those
rows (or plain ``.py``/``.txt`` files), tokenises every document once, joins
them with end-of-text between documents and cuts the stream into blocks of
``block_size`` tokens: packing wastes no compute on padding, which matters
more than anything else for throughput on a GPU. The loss covers every
token (labels are the inputs; the model shifts them).

Tokenising a large corpus takes a while and the one-GPU recipe resumes a run
several times, so the token stream is cached next to the checkpoints
(``pretrain-tokens.bin`` + ``.json``) and reused when the data files and
the tokenizer are the same (sizes, modification times, vocabulary hash).

The tokenizer is the byte-level BPE of :func:`~model_runtime.training.tiny_model.train_tokenizer`
(``<|endoftext|>`` eos/bos, ``<|pad|>``, ``<|diff|>`` as a non-special
token), trained on the corpus itself by ``editseq train tokenizer``.
"""

from __future__ import annotations

import hashlib
import json
import os
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from .sft_data import DataError, check_files
from .sft import SftReport, SftSettings, TrainingError, prepare, run_trainer

__all__ = [
    "CACHE_NAME",
    "PackedDataset",
    "PackStats",
    "corpus_texts",
    "pretrain",
    "train_corpus_tokenizer",
]

#: Token cache in the output folder (int32 ids) and its description.
CACHE_NAME = "pretrain-tokens.bin"
_BATCH = 256


def _check_paths(paths: Sequence[str | os.PathLike]) -> list[Path]:
    try:
        return check_files(paths)
    except DataError as exc:
        raise TrainingError(str(exc)) from None


def corpus_texts(paths: Sequence[str | os.PathLike], field: str = "text") -> Iterator[str]:
    """The documents of the data files: ``field`` of each JSONL row, or a whole non-JSONL file.

    ``programs.jsonl`` rows (``instruction``/``response``) count too, as
    instruction and code: the tokenizer then knows the instruction vocabulary.
    A row that is not a JSON object with a string text stops the run with its
    file and line.
    """
    for file in _check_paths(paths):
        if file.suffix != ".jsonl":
            yield file.read_text(encoding="utf-8", errors="replace")
            continue
        with file.open(encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise TrainingError(f"{file}:{number}: not valid JSON ({exc.msg})") from None
                if isinstance(row, dict) and isinstance(row.get(field), str):
                    yield row[field]
                elif isinstance(row, dict) and isinstance(row.get("response"), str):
                    yield f"{row.get('instruction', '')}\n{row['response']}"
                else:
                    raise TrainingError(f"{file}:{number}: expected a JSON object with a string {field!r}")


def train_corpus_tokenizer(paths: Sequence[str | os.PathLike], out: str | os.PathLike, vocab_size: int = 8192):
    """Train the byte-level BPE on the corpus and save it (``AutoTokenizer`` loads the folder)."""
    from .tiny_model import train_tokenizer

    if vocab_size < 300:
        raise TrainingError("vocab_size must be at least 300 (256 bytes plus the special tokens and merges)")
    texts = list(corpus_texts(paths))
    if not texts:
        raise TrainingError(f"no documents in {', '.join(map(str, paths))}")
    tokenizer = train_tokenizer(texts, vocab_size)
    Path(out).mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out)
    return tokenizer


@dataclass(slots=True)
class PackStats:
    """What packing found: documents, tokens (with one end-of-text each), blocks, tokens left over."""

    documents: int = 0
    tokens: int = 0
    blocks: int = 0
    dropped_tail: int = 0
    cached: bool = False


def _fingerprint(files: Sequence[Path], tokenizer, field: str) -> str:
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(f"{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    vocab = sorted(tokenizer.get_vocab().items())
    digest.update(json.dumps([vocab, tokenizer.eos_token_id, field]).encode())
    return digest.hexdigest()


class PackedDataset:
    """Fixed-length blocks over the concatenated, end-of-text-separated token stream.

    Held as one ``array('i')`` (4 bytes a token: 100M tokens is 400 MB);
    the last partial block is dropped.
    """

    def __init__(self, paths: Sequence[str | os.PathLike], tokenizer, block_size: int,
                 cache_dir: str | os.PathLike | None = None, field: str = "text") -> None:
        if block_size < 2:
            raise TrainingError("block_size must be at least 2")
        files = _check_paths(paths)
        self.block_size = block_size
        self.stats = PackStats()
        self.ids = self._load_cache(cache_dir, files, tokenizer, field)
        if self.ids is None:
            self.ids = self._tokenise(files, tokenizer, field)
            self._save_cache(cache_dir, files, tokenizer, field)
        self.stats.tokens = len(self.ids)
        self.stats.blocks = len(self.ids) // block_size
        self.stats.dropped_tail = len(self.ids) - self.stats.blocks * block_size
        if not self.stats.blocks:
            raise TrainingError(f"the data has {len(self.ids)} tokens, fewer than one block of {block_size}")

    def _tokenise(self, files: Sequence[Path], tokenizer, field: str) -> array:
        ids = array("i")
        eos = tokenizer.eos_token_id
        batch: list[str] = []

        def flush() -> None:
            for row in tokenizer(batch, add_special_tokens=False)["input_ids"]:
                ids.extend(row)
                ids.append(eos)
            self.stats.documents += len(batch)
            batch.clear()

        for text in corpus_texts(files, field):
            batch.append(text)
            if len(batch) >= _BATCH:
                flush()
        flush()
        return ids

    def _cache_paths(self, cache_dir) -> tuple[Path, Path] | None:
        if cache_dir is None:
            return None
        folder = Path(cache_dir)
        return folder / CACHE_NAME, folder / (CACHE_NAME + ".json")

    def _load_cache(self, cache_dir, files, tokenizer, field) -> array | None:
        paths = self._cache_paths(cache_dir)
        if paths is None or not paths[0].is_file() or not paths[1].is_file():
            return None
        try:
            meta = json.loads(paths[1].read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        if meta.get("fingerprint") != _fingerprint(files, tokenizer, field):
            return None
        ids = array("i")
        with paths[0].open("rb") as handle:
            ids.frombytes(handle.read())
        if len(ids) != meta.get("tokens"):
            return None
        self.stats.documents = meta.get("documents", 0)
        self.stats.cached = True
        return ids

    def _save_cache(self, cache_dir, files, tokenizer, field) -> None:
        paths = self._cache_paths(cache_dir)
        if paths is None:
            return
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        tmp = paths[0].with_suffix(".tmp")
        with tmp.open("wb") as handle:
            self.ids.tofile(handle)
        os.replace(tmp, paths[0])
        meta = {"fingerprint": _fingerprint(files, tokenizer, field), "tokens": len(self.ids),
                "documents": self.stats.documents}
        paths[1].write_text(json.dumps(meta), encoding="utf-8")

    def __len__(self) -> int:
        return self.stats.blocks

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        if not 0 <= index < self.stats.blocks:
            raise IndexError(index)
        start = index * self.block_size
        block = self.ids[start : start + self.block_size].tolist()
        return {"input_ids": block, "labels": block}


def pretrain(settings: SftSettings) -> SftReport:
    """Pretrain (or continue pretraining) ``settings.model`` on ``settings.data``; block size is ``max_length``.

    ``settings.model`` is ``size:NAME`` (a fresh Llama; the tokenizer from
    ``settings.tokenizer``, else trained on the data) or a model folder.
    """
    from .sft import check_settings

    check_settings(settings)
    files = _check_paths(settings.data)
    texts = None
    if settings.model.startswith("size:") and not settings.tokenizer:
        settings = replace(settings, tokenizer_from_data=True)
        texts = list(corpus_texts(files))
    prepared = prepare(settings, texts)
    context = getattr(prepared.model.config, "max_position_embeddings", None)
    if context is not None and settings.max_length > context:
        raise TrainingError(f"block size {settings.max_length} exceeds the model's context of {context} tokens")
    dataset = PackedDataset(files, prepared.tokenizer, settings.max_length, cache_dir=settings.out)
    return run_trainer(settings, prepared, dataset, stats=dataset.stats, seq_len=settings.max_length)
