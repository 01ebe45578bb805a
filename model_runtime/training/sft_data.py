"""LintSeq SFT data: ``editseq lintseq`` output rows as tokenised, response-masked examples.

Why a map-style dataset over byte offsets instead of a list of token ids: the
paper's data set is 444.5K edit paths; held as Python lists of ids it would
take gigabytes, so the files are indexed once (byte offset, line number,
token count per row) and each example is re-read and re-tokenised when the
data loader asks for it, which a fast tokenizer does in well under a
millisecond. The indexing pass also validates every row, so a bad line stops
the run before training starts, with its file and line number.

Each example is the prompt (instruction + ``\\n<|diff|>``) encoded the way a
backend encodes a prompt at inference, followed by the response (the diffs,
the two terminating empty edits) encoded on its own, then the end-of-text id.
Encoding the two parts separately makes the boundary exact whatever the
tokenizer, and the labels are ``-100`` over the prompt: the loss covers the
response only, as in the paper's fine-tuning code.

Only the standard library is imported at module level; torch is imported by
the collator when it is called.
"""

from __future__ import annotations

import json
import os
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from model_runtime.edits.editpath import format_prompt, format_training_text
from model_runtime.errors import EditseqError

__all__ = [
    "IGNORE_INDEX",
    "DataError",
    "EncodedExample",
    "IndexStats",
    "LintSeqRow",
    "LintSeqSftDataset",
    "PadCollator",
    "check_files",
    "encode_example",
    "iter_rows",
    "parse_row",
    "training_texts",
]

#: Label value the cross-entropy of every HF causal LM skips.
IGNORE_INDEX = -100
#: Rows tokenised together while indexing (fast tokenizers batch in Rust).
_INDEX_BATCH = 512


class DataError(EditseqError, ValueError):
    """The training data is wrong (missing file, no rows, a bad row); names the file and line."""


@dataclass(frozen=True, slots=True)
class LintSeqRow:
    """One edit path: the instruction and its diffs, and where it came from."""

    instruction: str
    diffs: tuple[str, ...]
    file: str
    line: int


@dataclass(frozen=True, slots=True)
class EncodedExample:
    """Token ids and labels of one example; ``prompt_tokens`` leading labels are ignored."""

    input_ids: list[int]
    labels: list[int]
    prompt_tokens: int
    truncated: bool


def parse_row(raw: bytes | str, file: str, line: int, instruction_field: str) -> LintSeqRow:
    """One JSONL line as a row; :class:`DataError` naming ``file:line`` if it is not one."""
    where = f"{file}:{line}"
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{where}: not a JSON object ({exc})") from None
    if not isinstance(record, dict):
        raise DataError(f"{where}: not a JSON object")
    path = record.get("edit_path")
    if not isinstance(path, list) or not path or not all(isinstance(d, str) for d in path):
        raise DataError(f"{where}: 'edit_path' must be a non-empty list of diff strings")
    instruction = record.get(instruction_field)
    if not isinstance(instruction, str):
        raise DataError(f"{where}: no string field {instruction_field!r} (the instruction)")
    return LintSeqRow(instruction, tuple(path), file, line)


def check_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """The data files as paths; DataError naming the first that is missing (checked before slow setup)."""
    if not paths:
        raise DataError("no data file given")
    files = [Path(p) for p in paths]
    for file in files:
        if not file.is_file():
            raise DataError(f"{file}: no such data file")
    return files


def _raw_lines(file: Path) -> Iterator[tuple[int, int, bytes]]:
    """``(line number, byte offset, line)`` of each non-blank line."""
    offset = 0
    with file.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if raw.strip():
                yield number, offset, raw
            offset += len(raw)


def iter_rows(paths: Sequence[str | os.PathLike], instruction_field: str = "source_instruction") -> Iterator[LintSeqRow]:
    """Every row of the files, in order, validated (streamed: one line in memory at a time)."""
    for file in check_files(paths):
        for number, _, raw in _raw_lines(file):
            yield parse_row(raw, str(file), number, instruction_field)


def training_texts(paths: Sequence[str | os.PathLike], instruction_field: str = "source_instruction") -> Iterator[str]:
    """The full training text of every row: what a tokenizer trained on the data should see."""
    for row in iter_rows(paths, instruction_field):
        yield format_training_text(row.instruction, row.diffs)


def encode_example(tokenizer, instruction: str, diffs: Sequence[str], max_length: int) -> EncodedExample:
    """Ids and response-only labels of one edit path, cut to ``max_length`` tokens.

    The prompt is encoded with the tokenizer's default special tokens (a bos
    where the tokenizer adds one), exactly as the backends encode a prompt, so
    that training and inference see the same prefix.
    """
    prompt = format_prompt(instruction)
    response = format_training_text(instruction, diffs)[len(prompt) :]
    prompt_ids = tokenizer(prompt)["input_ids"]
    response_ids = [*tokenizer(response, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
    ids = prompt_ids + response_ids
    labels = [IGNORE_INDEX] * len(prompt_ids) + response_ids
    return EncodedExample(ids[:max_length], labels[:max_length], len(prompt_ids), len(ids) > max_length)


@dataclass(slots=True)
class IndexStats:
    """What indexing found: rows kept, rows dropped (prompt fills the window), truncated, tokens."""

    rows: int = 0
    dropped_long_prompt: int = 0
    truncated: int = 0
    tokens: int = 0
    response_tokens: int = 0

    def add(self, length: int, prompt_tokens: int, truncated: bool) -> None:
        """Count one kept example of ``length`` tokens, the first ``prompt_tokens`` of them prompt."""
        self.rows += 1
        self.truncated += truncated
        self.tokens += length
        self.response_tokens += length - prompt_tokens


class LintSeqSftDataset:
    """Map-style dataset over ``editseq lintseq`` JSONL files (see the module docstring).

    Rows whose prompt alone fills ``max_length`` are dropped (they would
    carry no loss); longer responses are truncated, as the reference
    fine-tuning code truncates at 1024 tokens.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike],
        tokenizer,
        max_length: int = 1024,
        instruction_field: str = "source_instruction",
    ) -> None:
        if tokenizer.eos_token_id is None:
            raise DataError("the tokenizer has no end-of-text token; the model could not learn to stop")
        self.files = [str(f) for f in check_files(paths)]
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.instruction_field = instruction_field
        self._file = array("i")
        self._offset = array("q")
        self._line = array("i")
        self.lengths = array("i")
        self.stats = IndexStats()
        self._index()

    def _index(self) -> None:
        seen = 0
        for file_no, file in enumerate(self.files):
            batch: list[tuple[int, int, LintSeqRow]] = []
            for number, offset, raw in _raw_lines(Path(file)):
                seen += 1
                batch.append((number, offset, parse_row(raw, file, number, self.instruction_field)))
                if len(batch) >= _INDEX_BATCH:
                    self._add(file_no, batch)
                    batch = []
            self._add(file_no, batch)
        if not seen:
            raise DataError(f"no rows in {', '.join(self.files)}")
        if not self.stats.rows:
            raise DataError(f"all {seen} rows have prompts of {self.max_length} tokens or more; raise max_length")

    def _add(self, file_no: int, batch: list[tuple[int, int, LintSeqRow]]) -> None:
        for number, offset, row in batch:
            example = encode_example(self.tokenizer, row.instruction, row.diffs, self.max_length)
            if example.prompt_tokens >= self.max_length:
                self.stats.dropped_long_prompt += 1
                continue
            self._file.append(file_no)
            self._offset.append(offset)
            self._line.append(number)
            self.lengths.append(len(example.input_ids))
            self.stats.add(len(example.input_ids), example.prompt_tokens, example.truncated)

    def __len__(self) -> int:
        return len(self._offset)

    def row(self, index: int) -> LintSeqRow:
        """The row behind example ``index``, re-read from its file."""
        file = self.files[self._file[index]]
        with open(file, "rb") as handle:
            handle.seek(self._offset[index])
            raw = handle.readline()
        return parse_row(raw, file, self._line[index], self.instruction_field)

    def encoded(self, index: int) -> EncodedExample:
        row = self.row(index)
        return encode_example(self.tokenizer, row.instruction, row.diffs, self.max_length)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        example = self.encoded(index)
        return {"input_ids": example.input_ids, "labels": example.labels}


@dataclass(frozen=True, slots=True)
class PadCollator:
    """Pads a batch to its longest example: pad id in the inputs, -100 in the labels, 0 in the mask.

    Right padding is what training wants (positions stay 0..n for every row).
    ``multiple_of`` rounds the width up (8 suits tensor cores on a GPU). An
    example may bring its own ``attention_mask`` (CYCLE's past-generation
    mask hides some tokens from attention); otherwise every real token is 1.
    """

    pad_id: int
    multiple_of: int = 1

    def __call__(self, features: list[dict[str, list[int]]]) -> dict:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        width = -(-width // self.multiple_of) * self.multiple_of
        input_ids = torch.full((len(features), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for i, feature in enumerate(features):
            n = len(feature["input_ids"])
            input_ids[i, :n] = torch.tensor(feature["input_ids"], dtype=torch.long)
            labels[i, :n] = torch.tensor(feature["labels"], dtype=torch.long)
            own = feature.get("attention_mask")
            mask[i, :n] = 1 if own is None else torch.tensor(own, dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
