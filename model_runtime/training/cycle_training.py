"""CYCLE phase III: train on repair rows mixed with plain LintSeq rows, with past-generation masking.

A **repair example** (a ``kind: "repair"`` row of ``editseq train
cycle-collect``) is encoded as the refine loop prompts: prompt =
``get_format("cycle").build(PromptRequest(instruction, faulty, feedback))``
(problem, then the ``### Bad Solution:`` block with the faulty code and the
execution feedback), response = the rendered diff answer (the row's
``edit_path``, then the two empty diffs) and the end-of-text id. Labels are
``-100`` over the prompt: the loss covers the answer only. The prompt is
encoded whole, as a backend encodes it at inference, and the response on its
own (as :func:`~model_runtime.training.sft_data.encode_example` does).

**Past-generation masking** (PGM, notes §2.4): with probability ``pgm``, each
prompt token from the ``### Bad Solution:`` header to the end of the prompt
(faulty code, feedback, template text) gets ``attention_mask`` 0, so the model
cannot lean on copying its past generation. Masked tokens stay in
``input_ids``; the problem text and the response are never masked (a token
that straddles the problem's end and the block counts as problem text, so
nothing of the problem is ever hidden). The mask is drawn afresh for every
access from a ``random.Random`` seeded with (seed, epoch, index), so it is
deterministic for a given seed, example and epoch and different across
epochs (the Trainer's data loader calls ``set_epoch``). CYCLE's code has PGM
off by default and the paper's value is **not confirmed** (the notes could
not check the PDF); the default 0.05 is the unverified "about 5 %".

**The mix** (notes §2.5): every repair example once, plus
``lintseq_ratio`` plain examples per repair example drawn from a pool of the
``kind: "plain"`` rows of the collected data (the model's passing samples)
and ``editseq lintseq`` rows (:class:`~model_runtime.training.sft_data.LintSeqSftDataset`).
The default 3 makes repair examples 25 % of the mix, close to CYCLE's
default (≈ 23 %, an estimate). The pool is shuffled with the seed and cut
when larger than needed, or repeated whole (then the shuffled order once
more, cut) when smaller, so the counts are exactly ``round(ratio * repairs)``
and the choice is deterministic. The Trainer shuffles the mix.

Training goes through :func:`~model_runtime.training.sft.prepare` and
:func:`~model_runtime.training.sft.run_trainer`, like every training job.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from model_runtime.prompting.formats import PromptRequest, get_format

from .sft import SftSettings
from .sft_data import IGNORE_INDEX, DataError, IndexStats, LintSeqSftDataset, check_files, encode_example

__all__ = [
    "CycleSettings",
    "DEFAULT_LINTSEQ_RATIO",
    "DEFAULT_PGM",
    "EncodedRepair",
    "build_mix",
    "MixStats",
    "MixedDataset",
    "PlainRow",
    "PlainRowsDataset",
    "RepairDataset",
    "RepairRow",
    "encode_repair",
    "mask_span_start",
    "read_cycle_rows",
    "train_cycle",
]

#: Past-generation-mask probability. Unconfirmed: the paper's value could not be checked.
DEFAULT_PGM = 0.05
#: LintSeq examples per repair example: repair is 1 / (1 + 3) = 25 % of the mix.
DEFAULT_LINTSEQ_RATIO = 3.0

_BAD_HEADER = "### Bad Solution:"


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True, slots=True)
class RepairRow:
    instruction: str
    faulty: str
    feedback: str
    edit_path: tuple[str, ...]
    file: str
    line: int


@dataclass(frozen=True, slots=True)
class PlainRow:
    instruction: str
    edit_path: tuple[str, ...]
    file: str
    line: int


def _strings(record: dict, where: str, *names: str) -> list[str]:
    values = []
    for name in names:
        value = record.get(name)
        if not isinstance(value, str):
            raise DataError(f"{where}: no string field {name!r}")
        values.append(value)
    return values


def _path(record: dict, where: str) -> tuple[str, ...]:
    path = record.get("edit_path")
    if not isinstance(path, list) or not path or not all(isinstance(d, str) for d in path):
        raise DataError(f"{where}: 'edit_path' must be a non-empty list of diff strings")
    return tuple(path)


def read_cycle_rows(paths: Sequence[str | os.PathLike]) -> tuple[list[RepairRow], list[PlainRow]]:
    """The repair and plain rows of ``cycle-collect`` files; :class:`DataError` naming ``file:line``."""
    repair: list[RepairRow] = []
    plain: list[PlainRow] = []
    for file in check_files(paths):
        with file.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                where = f"{file}:{number}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{where}: not a JSON object ({exc.msg})") from None
                if not isinstance(record, dict):
                    raise DataError(f"{where}: not a JSON object")
                kind = record.get("kind")
                if kind == "repair":
                    instruction, faulty, feedback = _strings(record, where, "instruction", "faulty", "feedback")
                    if not faulty.strip():
                        raise DataError(f"{where}: empty 'faulty' code")
                    repair.append(RepairRow(instruction, faulty, feedback, _path(record, where), str(file), number))
                elif kind == "plain":
                    (instruction,) = _strings(record, where, "instruction")
                    plain.append(PlainRow(instruction, _path(record, where), str(file), number))
                else:
                    raise DataError(f"{where}: 'kind' must be 'repair' or 'plain' (a `editseq train cycle-collect` "
                                    f"row), got {kind!r}")
    return repair, plain


# --------------------------------------------------------------------------- encoding


@dataclass(frozen=True, slots=True)
class EncodedRepair:
    """A repair example: ids, labels (``-100`` over the prompt) and where the maskable span starts.

    ``mask_start`` is the first prompt token of the ``### Bad Solution:``
    block; tokens ``mask_start .. prompt_tokens - 1`` are what PGM may hide.
    """

    input_ids: list[int]
    labels: list[int]
    prompt_tokens: int
    mask_start: int
    truncated: bool


def _block_start(instruction: str) -> int:
    """Character offset in the prompt where the repair block (indent, then the header) begins."""
    return len(instruction) + (1 if instruction and not instruction.endswith("\n") else 0)


def mask_span_start(tokenizer, prompt: str, prompt_ids: list[int], block_start: int) -> int:
    """Index of the first token of ``prompt_ids`` lying wholly at or after character ``block_start``.

    Uses the fast tokenizer's offsets; a slow tokenizer (no offsets) gets the
    token count of the text before the block, encoded alone.
    """
    try:
        encoding = tokenizer(prompt, return_offsets_mapping=True)
    except (NotImplementedError, ValueError, TypeError):
        encoding = None
    if encoding is not None and "offset_mapping" in encoding and encoding["input_ids"] == prompt_ids:
        special = set(tokenizer.all_special_ids)
        for index, (token, (start, _)) in enumerate(zip(prompt_ids, encoding["offset_mapping"])):
            if token not in special and start >= block_start:
                return index
        return len(prompt_ids)
    return min(len(tokenizer(prompt[:block_start])["input_ids"]), len(prompt_ids))


def encode_repair(tokenizer, instruction: str, faulty: str, feedback: str, edit_path: Sequence[str],
                  max_length: int) -> EncodedRepair:
    """Ids and answer-only labels of one repair example, cut to ``max_length`` tokens."""
    fmt = get_format("cycle")
    prompt = fmt.build(PromptRequest(instruction, faulty, feedback))
    block = _block_start(instruction)
    if not prompt[block:].lstrip(" \t").startswith(_BAD_HEADER):  # the format changed under us
        raise DataError("the cycle prompt no longer starts its repair block where expected")
    response = fmt.render_answer(list(edit_path))
    prompt_ids = tokenizer(prompt)["input_ids"]
    response_ids = [*tokenizer(response, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
    ids = prompt_ids + response_ids
    labels = [IGNORE_INDEX] * len(prompt_ids) + response_ids
    start = mask_span_start(tokenizer, prompt, prompt_ids, block)
    return EncodedRepair(ids[:max_length], labels[:max_length], len(prompt_ids), start, len(ids) > max_length)


class RepairDataset:
    """Map-style dataset of repair examples with past-generation masking (see the module docstring).

    Rows whose prompt alone fills ``max_length`` are dropped (no loss left);
    longer answers are truncated. Items carry ``attention_mask``.
    """

    def __init__(self, rows: Sequence[RepairRow], tokenizer, max_length: int = 1024, pgm: float = DEFAULT_PGM,
                 seed: int = 0) -> None:
        if not 0.0 <= pgm <= 1.0:
            raise DataError(f"pgm must be a probability in [0, 1], got {pgm}")
        if tokenizer.eos_token_id is None:
            raise DataError("the tokenizer has no end-of-text token; the model could not learn to stop")
        self.tokenizer, self.max_length, self.pgm, self.seed = tokenizer, max_length, pgm, seed
        self.epoch = 0
        self.rows: list[RepairRow] = []
        self.stats = IndexStats()
        for row in rows:
            example = self._encode(row)
            if example.prompt_tokens >= max_length:
                self.stats.dropped_long_prompt += 1
                continue
            self.rows.append(row)
            self.stats.add(len(example.input_ids), example.prompt_tokens, example.truncated)

    def _encode(self, row: RepairRow) -> EncodedRepair:
        return encode_repair(self.tokenizer, row.instruction, row.faulty, row.feedback, row.edit_path,
                             self.max_length)

    def set_epoch(self, epoch: int) -> None:
        """Called by the Trainer's data loader at the start of every epoch: masks change per epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.rows)

    def encoded(self, index: int) -> EncodedRepair:
        return self._encode(self.rows[index])

    def mask(self, example: EncodedRepair, index: int, epoch: int | None = None) -> list[int]:
        """The attention mask of ``example`` (example ``index``) for ``epoch`` (default: the current one)."""
        epoch = self.epoch if epoch is None else epoch
        mask = [1] * len(example.input_ids)
        if self.pgm > 0:
            rng = random.Random(f"pgm:{self.seed}:{epoch}:{index}")
            for position in range(example.mask_start, min(example.prompt_tokens, len(mask))):
                if rng.random() < self.pgm:
                    mask[position] = 0
        return mask

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        example = self.encoded(index)
        return {"input_ids": example.input_ids, "labels": example.labels,
                "attention_mask": self.mask(example, index)}


class PlainRowsDataset:
    """The collected plain rows (the model's passing samples), encoded as LintSeq examples."""

    def __init__(self, rows: Sequence[PlainRow], tokenizer, max_length: int = 1024) -> None:
        self.tokenizer, self.max_length = tokenizer, max_length
        self.rows: list[PlainRow] = []
        self.lengths: list[int] = []
        self.stats = IndexStats()
        for row in rows:
            example = encode_example(tokenizer, row.instruction, row.edit_path, max_length)
            if example.prompt_tokens >= max_length:
                self.stats.dropped_long_prompt += 1
                continue
            self.rows.append(row)
            self.lengths.append(len(example.input_ids))
            self.stats.add(len(example.input_ids), example.prompt_tokens, example.truncated)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        row = self.rows[index]
        example = encode_example(self.tokenizer, row.instruction, row.edit_path, self.max_length)
        return {"input_ids": example.input_ids, "labels": example.labels}


@dataclass(slots=True)
class MixStats:
    """What went into the mix: repair examples, and plain ones by origin (collected vs ``editseq lintseq``)."""

    repair: int = 0
    plain: int = 0
    plain_collected: int = 0
    plain_lintseq: int = 0
    #: Distinct pool examples used, and the pool's size (plain < pool: subsampled; > pool: repeated).
    plain_distinct: int = 0
    pool: int = 0
    ratio: float = 0.0
    data: IndexStats = field(default_factory=IndexStats)

    @property
    def repair_share(self) -> float:
        total = self.repair + self.plain
        return self.repair / total if total else 0.0


class MixedDataset:
    """Repair examples once each, plus ``round(ratio * repairs)`` plain ones from the pool (module docstring)."""

    def __init__(self, repair: RepairDataset, plain_sources: Sequence, ratio: float = DEFAULT_LINTSEQ_RATIO,
                 seed: int = 0) -> None:
        if ratio < 0:
            raise DataError(f"lintseq_ratio must be >= 0, got {ratio}")
        self.repair = repair
        self.sources = [s for s in plain_sources if len(s)]
        self._dropped = sum(getattr(getattr(s, "stats", None), "dropped_long_prompt", 0) for s in plain_sources)
        pool = [(k, i) for k, source in enumerate(self.sources) for i in range(len(source))]
        wanted = round(ratio * len(repair))
        if wanted and not pool:
            raise DataError(f"the mix wants {wanted} plain examples ({ratio:g} per repair example) but there are "
                            "none: give LintSeq data (--lintseq-data), or plain rows, or ratio 0")
        order = list(pool)
        random.Random(f"mix:{seed}").shuffle(order)
        chosen = []
        while len(chosen) < wanted:
            chosen.extend(order[: wanted - len(chosen)])
        self.plain = chosen
        self.stats = MixStats(repair=len(repair), plain=len(chosen), pool=len(pool), ratio=ratio,
                              plain_distinct=len(set(chosen)))
        collected = {k for k, s in enumerate(self.sources) if isinstance(s, PlainRowsDataset)}
        self.stats.plain_collected = sum(k in collected for k, _ in chosen)
        self.stats.plain_lintseq = len(chosen) - self.stats.plain_collected
        self._data_stats()

    def _data_stats(self) -> None:
        """``stats.data`` over the whole mix: rows, tokens and truncated rows as trained (repeats count
        again); ``response_tokens`` counts the repair examples only."""
        data, repair = self.stats.data, self.repair.stats
        data.rows, data.truncated = len(self), repair.truncated
        data.tokens, data.response_tokens = repair.tokens, repair.response_tokens
        data.dropped_long_prompt = repair.dropped_long_prompt + self._dropped
        for k, i in self.plain:
            length = self.sources[k].lengths[i]
            data.tokens += length
            data.truncated += length >= self.repair.max_length

    def set_epoch(self, epoch: int) -> None:
        self.repair.set_epoch(epoch)
        for source in self.sources:
            if hasattr(source, "set_epoch"):
                source.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.repair) + len(self.plain)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        if index < 0:
            index += len(self)
        if index < len(self.repair):
            return self.repair[index]
        k, i = self.plain[index - len(self.repair)]
        return self.sources[k][i]

    def kind(self, index: int) -> str:
        """``repair``, ``collected`` or ``lintseq``: where example ``index`` comes from."""
        if index < len(self.repair):
            return "repair"
        k, _ = self.plain[index - len(self.repair)]
        return "collected" if isinstance(self.sources[k], PlainRowsDataset) else "lintseq"


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True, slots=True)
class CycleSettings:
    """One CYCLE training run: the data and mix; ``training`` holds the shared SFT settings
    (its ``model`` is usually the model the data was collected from)."""

    data: tuple[str, ...] = ()
    lintseq_data: tuple[str, ...] = ()
    lintseq_ratio: float = DEFAULT_LINTSEQ_RATIO
    pgm: float = DEFAULT_PGM
    training: SftSettings = SftSettings()


def build_mix(settings: CycleSettings, tokenizer, rows: tuple[list[RepairRow], list[PlainRow]] | None = None
              ) -> MixedDataset:
    """The mixed dataset of a run (DataError for bad or missing data); ``rows`` as read_cycle_rows gives them."""
    sft = settings.training
    repair_rows, plain_rows = rows if rows is not None else read_cycle_rows(settings.data)
    if not repair_rows:
        raise DataError(f"no repair rows in {', '.join(map(str, settings.data))}: collect some with "
                        "`editseq train cycle-collect`")
    repair = RepairDataset(repair_rows, tokenizer, sft.max_length, settings.pgm, sft.seed)
    if not len(repair):
        raise DataError(f"all {len(repair_rows)} repair rows have prompts of {sft.max_length} tokens or more; "
                        "raise max_length")
    sources: list = [PlainRowsDataset(plain_rows, tokenizer, sft.max_length)]
    if settings.lintseq_data:
        sources.append(LintSeqSftDataset(settings.lintseq_data, tokenizer, sft.max_length, sft.instruction_field))
    return MixedDataset(repair, sources, settings.lintseq_ratio, sft.seed)


def train_cycle(settings: CycleSettings):
    """Prepare the model, build the mix, train; returns ``(SftReport, MixStats)``.

    Raises :class:`~model_runtime.training.sft.TrainingError` for bad data or settings.
    """
    from .sft import TrainingError, check_settings, prepare, run_trainer

    sft = settings.training
    check_settings(sft)
    if not 0.0 <= settings.pgm <= 1.0:
        raise TrainingError(f"pgm must be a probability in [0, 1], got {settings.pgm}")
    if settings.lintseq_ratio < 0:
        raise TrainingError(f"lintseq_ratio must be >= 0, got {settings.lintseq_ratio}")
    try:
        check_files([*settings.data, *settings.lintseq_data])  # before the model, which can take a while
        rows = read_cycle_rows(settings.data)
        if not rows[0]:
            raise DataError(f"no repair rows in {', '.join(map(str, settings.data))}: collect some with "
                            "`editseq train cycle-collect`")
        prepared = prepare(sft)
        mix = build_mix(settings, prepared.tokenizer, rows)
    except DataError as exc:
        raise TrainingError(str(exc)) from None
    report = run_trainer(sft, prepared, mix, stats=mix.stats.data)
    from model_runtime.backends.embedded import write_manifest

    # The refine loop's ``auto`` reads this: trained on both formats, so repairs use CYCLE diffs.
    write_manifest(report.out, ["lintseq", "cycle"])
    return report, mix.stats


