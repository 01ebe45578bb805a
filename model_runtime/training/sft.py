"""LintSeq supervised fine-tuning with the HF ``Trainer``: ours from scratch or any causal LM folder.

The paper's recipe (shared notes, LintSeq §1.2) is followed where it is a
setting: loss on the response only, linear schedule, warmup ratio 0.001,
weight decay 0.01, max length 1024, bf16 on a GPU (fp32 on a CPU, where bf16
is slower, see the runtime notes §2). "Several paths per program" is a
property of the data (``editseq lintseq -s 5``), not of training.

*Summed loss.* The reference code sums the token losses of the whole
optimizer step. The Trainer's default here (``loss_reduction="mean"``) sums
token losses over all micro-batches of a step and divides once by the
step's response-token count (``num_items_in_batch``), so every token weighs
the same, as with the sum; the two differ only by a per-step scale, which
AdamW largely cancels but which would make gradient clipping at 1.0 bite on
every step. ``loss_reduction="sum"`` gives the literal sum for whoever wants
the exact recipe (the logged loss is then per step, not per token).

Models: ``size:NAME`` builds a byte-level BPE tokenizer (on the standard
library, or on the training data itself with ``tokenizer_from_data``) and a
fresh Llama of a :data:`~model_runtime.training.tiny_model.MODEL_SIZES` shape;
anything else is a folder (or hub id, where a hub is reachable) read with
``AutoTokenizer``/``AutoModelForCausalLM``. ``<|diff|>`` is added when the
tokenizer lacks it, as a non-special token (so ``skip_special_tokens`` never
drops it), and the embeddings are resized.

:data:`DEFAULT_SIZE` is ``base`` (d512, 8 layers): 28.3M parameters with a
2k vocabulary, 31.5M with the default 8k one, the "about 25M" default of
issue 7; ``tiny`` is the test size.

Heavy imports happen inside functions: the CLI imports this module lazily,
and importing it must not import torch.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from model_runtime.edits.editpath import DIFF_TOKEN
from model_runtime.errors import EditseqError

from .sft_data import DataError, IndexStats, LintSeqSftDataset, PadCollator, check_files, training_texts

__all__ = [
    "DEFAULT_SIZE",
    "Prepared",
    "check_settings",
    "load_tokenizer",
    "prepare",
    "run_trainer",
    "LOSS_LOG",
    "SIZE_PREFIX",
    "SftReport",
    "SftSettings",
    "TrainingError",
    "ensure_diff_token",
    "last_checkpoint",
    "load_model_folder",
    "model_from_scratch",
    "train_lintseq_sft",
]

DEFAULT_SIZE = "base"
SIZE_PREFIX = "size:"
#: File in the output folder: the Trainer's ``log_history``, one JSON object a line.
LOSS_LOG = "loss_log.jsonl"


class TrainingError(EditseqError):
    """Training cannot start: bad data, a model that does not load, a bad setting."""


@dataclass(frozen=True, slots=True)
class SftSettings:
    """One LintSeq SFT run (the CLI's flags); defaults follow the paper where it has one."""

    data: tuple[str, ...] = ()
    #: ``size:tiny|mini|small|base`` (from scratch) or a model folder.
    model: str = SIZE_PREFIX + DEFAULT_SIZE
    out: str = "lintseq-sft"
    #: From scratch only: train the tokenizer on the training texts instead of the stdlib.
    tokenizer_from_data: bool = False
    vocab_size: int = 8192
    #: The paper trains 2 epochs on 5 paths per program.
    epochs: float = 2.0
    #: Overrides ``epochs`` when positive.
    max_steps: int = -1
    #: The paper's rate for its 150M/400M models; 1e-5..5e-5 suits billion-parameter hub models.
    learning_rate: float = 3e-4
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 1024
    #: Below 1: a fraction of the total steps (the paper's 0.001); 1 or more: a number of steps.
    warmup_ratio: float = 0.001
    weight_decay: float = 0.01
    #: ``linear`` (the paper's) or ``cosine`` (usual for pretraining).
    lr_scheduler: str = "linear"
    loss_reduction: str = "mean"
    save_steps: int = 500
    save_total_limit: int | None = 2
    logging_steps: int = 10
    #: Continue from the last ``checkpoint-*`` in ``out`` (start afresh if there is none).
    resume: bool = False
    seed: int = 0
    #: Field of the ``editseq lintseq`` rows holding the instruction.
    instruction_field: str = "source_instruction"
    #: torch threads (None: torch's default). One is faster on a shared CPU.
    threads: int | None = None
    progress: bool = True
    #: From scratch only: a tokenizer folder (``editseq train tokenizer``) instead of training one.
    tokenizer: str | None = None
    #: Stop (with a checkpoint) this many minutes after the job began (data, model loading and
    #: compilation included); ``--resume`` continues the same schedule. How a long run is cut
    #: into chunks that each fit a time slot.
    time_budget_minutes: float | None = None
    #: Peak TFLOP/s of one device for the MFU figure; None: known GPUs are looked up, else no MFU.
    peak_tflops: float | None = None
    #: ``torch.compile`` the model (GPU runs; the first steps pay the compilation).
    compile: bool = False
    #: Data loader worker processes (0: in the training process).
    dataloader_workers: int = 0


@dataclass(frozen=True, slots=True)
class SftReport:
    """What a run did. Losses are the first and last logged training losses."""

    out: Path
    parameters: int
    examples: int
    data: IndexStats
    global_step: int
    first_loss: float | None
    last_loss: float | None
    seconds: float
    train_seconds: float
    added_diff_token: bool
    resumed_from: str | None
    precision: str
    log: tuple[dict, ...] = field(default=(), repr=False)
    #: Training tokens (non-padding) per second and model FLOPs utilisation over the run (None: unknown).
    tokens_per_second: float | None = None
    mfu: float | None = None
    stopped_early: bool = False

    @property
    def steps_per_second(self) -> float:
        return self.global_step / self.train_seconds if self.train_seconds else 0.0


# -- models -------------------------------------------------------------------------------


def model_from_scratch(size: str, settings: SftSettings, texts=None):
    """``(tokenizer, model)``: a fresh Llama of the named size and its tokenizer.

    The tokenizer is read from ``settings.tokenizer`` when given, else trained:
    on ``texts`` (or the LintSeq rows of ``settings.data``) with
    ``tokenizer_from_data``, otherwise on the standard library.
    """
    from .tiny_model import MODEL_SIZES, build_model, stdlib_sample, train_tokenizer

    if size not in MODEL_SIZES:
        raise TrainingError(f"unknown model size {size!r}; known: {', '.join(MODEL_SIZES)}")
    if settings.tokenizer:
        return (tokenizer := load_tokenizer(settings.tokenizer)), build_model(tokenizer, size, settings.seed)
    if settings.tokenizer_from_data:
        sources = texts if texts is not None else training_texts(settings.data, settings.instruction_field)
    else:
        sources = stdlib_sample(10**6, settings.seed)  # the whole stdlib (~11 s at 8k)
    tokenizer = train_tokenizer(sources, settings.vocab_size)
    return tokenizer, build_model(tokenizer, size, settings.seed)


def load_model_folder(source: str):
    """``(tokenizer, model)`` from a folder (or hub id), fp32 master weights; TrainingError if it fails."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not Path(source).exists() and (source.startswith((".", "/", "~")) or os.sep in source.rstrip(os.sep)):
        raise TrainingError(f"model folder {source} does not exist")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        first = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise TrainingError(f"cannot load a causal LM from {source}: {first}") from None
    if tokenizer.pad_token_id is None:  # e.g. Llama: padding is masked anyway, any id will do
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model


def load_tokenizer(folder: str):
    """A tokenizer folder (``editseq train tokenizer`` output); TrainingError if it does not load."""
    from transformers import AutoTokenizer

    if not Path(folder).is_dir():
        raise TrainingError(f"tokenizer folder {folder} does not exist")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TrainingError(f"cannot load a tokenizer from {folder}: {' '.join(str(exc).split())[:300]}") from None
    if tokenizer.eos_token_id is None:
        raise TrainingError(f"the tokenizer in {folder} has no end-of-text token")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def ensure_diff_token(tokenizer, model) -> bool:
    """Add ``<|diff|>`` (non-special, unnormalised) when missing and grow the embeddings; True if added.

    Embeddings are only resized when the new id does not fit: many hub models
    keep spare rows beyond the tokenizer's length.
    """
    from tokenizers import AddedToken

    vocab = tokenizer.get_vocab()
    if DIFF_TOKEN in vocab:
        return False
    tokenizer.add_tokens([AddedToken(DIFF_TOKEN, special=False, normalized=False)])
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    return True


def _parse_model(spec: str) -> str | None:
    """The size name of ``size:NAME``, None for a folder."""
    return spec[len(SIZE_PREFIX) :] if spec.startswith(SIZE_PREFIX) else None


def last_checkpoint(out: str | os.PathLike) -> str | None:
    """The newest ``checkpoint-N`` folder in ``out`` (by N), or None."""
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(out)) if Path(out).is_dir() else None


# -- loss and logging ----------------------------------------------------------------------


def summed_loss(outputs, labels, num_items_in_batch=None):
    """Sum of the response tokens' cross-entropies (the reference code's reduction)."""
    import torch.nn.functional as F

    logits = outputs.logits[:, :-1, :].float()
    target = labels[:, 1:].to(logits.device)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100, reduction="sum")


def _write_log(out: Path, history: Sequence[dict]) -> None:
    """Rewrite the loss log atomically: a reader never sees half a file."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (LOSS_LOG + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for entry in history:
            handle.write(json.dumps(entry) + "\n")
    os.replace(tmp, out / LOSS_LOG)


def _log_callback(out: Path):
    """A TrainerCallback keeping :data:`LOSS_LOG` in step with ``state.log_history``.

    Written on every log, not only at the end, so a crashed or killed run
    still leaves its curve; on resume the history restored from the
    checkpoint is written again first, so the log stays one curve.
    """
    from transformers import TrainerCallback

    class LossLog(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            _write_log(out, state.log_history)

        def on_train_end(self, args, state, control, **kwargs):
            _write_log(out, state.log_history)

    return LossLog()


# -- the run ---------------------------------------------------------------------------------


def _precision() -> str:
    import torch

    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"


def _arguments(settings: SftSettings, precision: str):
    from transformers import TrainingArguments

    warmup = settings.warmup_ratio if settings.warmup_ratio < 1 else int(settings.warmup_ratio)
    return TrainingArguments(
        output_dir=settings.out,
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps if settings.max_steps > 0 else -1,
        learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum,
        lr_scheduler_type=settings.lr_scheduler,
        warmup_steps=warmup,  # a float below 1 is a ratio of the total steps
        weight_decay=settings.weight_decay,
        bf16=precision == "bf16",
        logging_steps=settings.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=settings.save_total_limit,
        report_to="none",
        seed=settings.seed,
        disable_tqdm=not settings.progress,
        remove_unused_columns=False,
        dataloader_pin_memory=precision == "bf16",
        dataloader_num_workers=settings.dataloader_workers,
        torch_compile=settings.compile,
        include_num_input_tokens_seen="non_padding",
    )


def check_settings(settings: SftSettings) -> None:
    """TrainingError for a setting no run can use, before anything slow starts."""
    if settings.loss_reduction not in ("mean", "sum"):
        raise TrainingError(f"loss_reduction must be 'mean' or 'sum', not {settings.loss_reduction!r}")
    if settings.lr_scheduler not in ("linear", "cosine", "constant_with_warmup"):
        raise TrainingError(f"lr_scheduler must be linear, cosine or constant_with_warmup, not {settings.lr_scheduler!r}")
    for name in ("batch_size", "grad_accum", "max_length", "save_steps", "logging_steps"):
        if getattr(settings, name) < 1:
            raise TrainingError(f"{name} must be at least 1")
    if settings.max_steps <= 0 and settings.epochs <= 0:
        raise TrainingError("give a positive number of epochs or max_steps")
    if settings.time_budget_minutes is not None and settings.time_budget_minutes <= 0:
        raise TrainingError("time_budget_minutes must be positive")


@dataclass(slots=True)
class Prepared:
    """What a run starts from: tokenizer and model (``<|diff|>`` ensured), and the checkpoint resumed."""

    tokenizer: object
    model: object
    resume_from: str | None
    added_diff_token: bool
    #: ``time.perf_counter()`` when the job began: a time budget counts from here.
    started: float = field(default_factory=time.perf_counter)


def prepare(settings: SftSettings, texts=None) -> Prepared:
    """Check the settings, set threads, find the checkpoint to resume, load or build the model.

    Shared by every training job (LintSeq SFT, pretraining, CYCLE): when
    resuming, tokenizer and model come from the checkpoint (same shape, same
    vocabulary); otherwise as ``settings.model`` says. ``texts`` feeds a
    from-scratch tokenizer trained on the data (``tokenizer_from_data``).
    """
    import torch

    started = time.perf_counter()
    check_settings(settings)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    out = Path(settings.out)
    resume_from = last_checkpoint(out) if settings.resume else None
    if settings.resume and resume_from is None:
        print(f"no checkpoint in {out}; starting from the beginning", file=sys.stderr)
    if resume_from:
        tokenizer, model = load_model_folder(resume_from)
    else:
        size = _parse_model(settings.model)
        tokenizer, model = (model_from_scratch(size, settings, texts) if size is not None
                            else load_model_folder(settings.model))
    added = ensure_diff_token(tokenizer, model)
    return Prepared(tokenizer, model, resume_from, added, started)


def run_trainer(settings: SftSettings, prepared: Prepared, dataset, *, stats=None, collator=None,
                seq_len: int | None = None) -> SftReport:
    """Train ``prepared.model`` on ``dataset`` with the HF Trainer; save model + tokenizer in ``settings.out``.

    ``dataset`` is map-style, its items ``input_ids``/``labels`` (and
    optionally ``attention_mask``, e.g. CYCLE's past-generation mask);
    ``collator`` defaults to :class:`~model_runtime.training.sft_data.PadCollator`.
    Checkpoints (``checkpoint-N``) hold model, tokenizer, optimizer,
    scheduler and RNG states, so ``resume`` continues the same run. The loss
    log (:data:`LOSS_LOG`) carries tokens/s and, where the device's peak is
    known, MFU at every logging step (``seq_len``, default ``max_length``, is
    the sequence length the attention FLOPs are counted at).
    """
    from transformers import Trainer

    from .throughput import ThroughputCallback, TimeBudgetCallback

    start = time.perf_counter()
    out = Path(settings.out)
    tokenizer, model = prepared.tokenizer, prepared.model
    precision = _precision()
    collator = collator or PadCollator(tokenizer.pad_token_id, 8 if precision == "bf16" else 1)
    throughput = ThroughputCallback(model, seq_len or settings.max_length, settings.peak_tflops)
    callbacks = [throughput, _log_callback(out)]
    budget = None
    if settings.time_budget_minutes is not None:
        budget = TimeBudgetCallback(settings.time_budget_minutes * 60, start=prepared.started)
        callbacks.append(budget)
    trainer = Trainer(
        model=model,
        args=_arguments(settings, precision),
        train_dataset=dataset,
        data_collator=collator,
        processing_class=tokenizer,
        compute_loss_func=summed_loss if settings.loss_reduction == "sum" else None,
        callbacks=callbacks,
    )
    train_start = time.perf_counter()
    trainer.train(resume_from_checkpoint=prepared.resume_from)
    train_seconds = time.perf_counter() - train_start
    trainer.save_model(str(out))  # model + tokenizer, what TransformersBackend loads
    history = tuple(trainer.state.log_history)
    _write_log(out, history)
    losses = [entry["loss"] for entry in history if "loss" in entry]
    return SftReport(
        out=out,
        parameters=model.num_parameters(),
        examples=len(dataset),
        data=stats if stats is not None else getattr(dataset, "stats", None),
        global_step=trainer.state.global_step,
        first_loss=losses[0] if losses else None,
        last_loss=losses[-1] if losses else None,
        seconds=time.perf_counter() - start,
        train_seconds=train_seconds,
        added_diff_token=prepared.added_diff_token,
        resumed_from=prepared.resume_from,
        precision=precision,
        log=history,
        tokens_per_second=throughput.overall_tokens_per_second(),
        mfu=throughput.overall_mfu(),
        stopped_early=bool(budget and budget.fired),
    )


def train_lintseq_sft(settings: SftSettings) -> SftReport:
    """Fine-tune on ``editseq lintseq`` rows and save model + tokenizer into ``settings.out``.

    The result loads with ``TransformersBackend(out)``.
    """
    check_settings(settings)
    try:
        check_files(settings.data)  # before the tokenizer or model, which can take a while
        prepared = prepare(settings)
        dataset = LintSeqSftDataset(settings.data, prepared.tokenizer, settings.max_length, settings.instruction_field)
    except DataError as exc:
        raise TrainingError(str(exc)) from None
    return run_trainer(settings, prepared, dataset)
