"""Real small models built on this machine: a BPE tokenizer, a Llama, a short LintSeq fine-tune.

No weights can be downloaded here, and tests should never depend on a model
hub anyway, yet the runtime has to be exercised against a *real* transformers
model through the same loader users get (``AutoModelForCausalLM`` /
``AutoTokenizer`` on a folder). So models are built from scratch:

* :func:`train_tokenizer` trains a byte-level BPE on local Python code (by
  default a deterministic sample of the standard library) with the special
  tokens the LintSeq format needs;
* :func:`build_model` makes a ``LlamaForCausalLM`` of a named size
  (:data:`MODEL_SIZES`); :func:`save_model` writes a folder any HF loader
  reads offline;
* :func:`train_lintseq_model` fine-tunes a fresh model for a few hundred steps
  on LintSeq edit paths of small stdlib functions, so that what it says is a
  well-formed ``<|diff|>`` sequence. Behaviour that depends on model output
  (streaming per diff, resolving edits) can then be tested for real.

``<|diff|>`` is added as a *non-special* token on purpose: servers decode with
``skip_special_tokens=True`` by default (vLLM does), which would silently drop
every separator from the text a client receives.

Heavy imports (torch, transformers, tokenizers) happen inside the functions so
that importing this module stays cheap; the training code of a later issue
reuses these builders at larger sizes.
"""

from __future__ import annotations

import ast
import functools
import math
import random
import sysconfig
import textwrap
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from model_runtime.edits.editpath import DIFF_TOKEN, format_prompt, format_training_text
from model_runtime.lintseq.linters import PyflakesLinter
from model_runtime.lintseq.sampler import LintSeqSampler, ProgramSkipped

if TYPE_CHECKING:
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

__all__ = [
    "EOS_TOKEN",
    "MODEL_SIZES",
    "PAD_TOKEN",
    "SPECIAL_TOKENS",
    "LintSeqExample",
    "MemoriseSettings",
    "ModelSize",
    "TrainReport",
    "TrainSettings",
    "build_model",
    "lintseq_examples",
    "save_model",
    "stdlib_sample",
    "train_lintseq_model",
    "train_memorised_model",
    "train_tokenizer",
]

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
#: In id order: end-of-text is 0 (also bos), padding 1, the edit separator 2.
SPECIAL_TOKENS = (EOS_TOKEN, PAD_TOKEN, DIFF_TOKEN)


@dataclass(frozen=True, slots=True)
class ModelSize:
    """The shape of a Llama; the vocabulary comes from the tokenizer."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    context: int = 1024


#: Named shapes. Parameters counted with tied embeddings:
#:
#: ========  =====================================  ============  ===========
#: name      shape                                  2k vocab      8k vocab
#: ========  =====================================  ============  ===========
#: tiny      d128, 2 layers, 4 heads, ff 384        0.69M         1.48M
#: mini      d128, 4 layers, 4 heads, ff 384        1.12M         1.90M
#: cpu       d256, 6 layers, 8 heads, ff 768        5.9M (4k: 6.2M) 7.2M
#: small     d256, 10 layers, 8 heads, ff 768       9.05M         10.6M
#: base      d512, 8 layers, 8 heads, ff 1536       28.3M         31.5M
#: ========  =====================================  ============  ===========
#:
#: ``tiny`` is the test fixture (trains to well-formed diffs in about a minute
#: on two CPU cores); ``cpu`` is the embedded default's shape when it is trained
#: on two CPU cores in about two hours (``PROFILE=cpu scripts/recipe.sh``);
#: ``base`` is the shape for a GPU (see the runtime notes). Few wide layers beat many thin
#: ones on CPU, where per-layer overhead dominates at these sizes.
MODEL_SIZES: dict[str, ModelSize] = {
    "tiny": ModelSize(hidden=128, layers=2, heads=4, intermediate=384),
    "mini": ModelSize(hidden=128, layers=4, heads=4, intermediate=384),
    "cpu": ModelSize(hidden=256, layers=6, heads=8, intermediate=768, context=1024),
    "small": ModelSize(hidden=256, layers=10, heads=8, intermediate=768),
    "base": ModelSize(hidden=512, layers=8, heads=8, intermediate=1536, context=2048),
}

_SKIPPED_DIRS = {"test", "tests", "idlelib", "site-packages", "dist-packages", "turtledemo"}


def stdlib_sample(count: int = 100, seed: int = 0) -> list[Path]:
    """``count`` of the standard library's ``.py`` files, the same ones for the same seed.

    Test suites are skipped: their code is mostly asserts, not the code a
    model should learn to write.
    """
    files = _stdlib_files()
    return sorted(random.Random(seed).sample(files, min(count, len(files))))


@functools.cache
def _stdlib_files() -> list[Path]:
    """All candidate files, sorted (walking the stdlib takes about a second)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(
        path for path in root.rglob("*.py") if not _SKIPPED_DIRS.intersection(path.relative_to(root).parts)
    )


def _texts(sources: Iterable[str | Path]) -> Iterable[str]:
    """File contents for ``Path`` items, the item itself for ``str`` items."""
    for item in sources:
        if isinstance(item, Path):
            yield item.read_text(encoding="utf-8", errors="replace")
        else:
            yield item


def train_tokenizer(
    sources: Iterable[str | Path] | None = None, vocab_size: int = 2048
) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on ``sources`` (``Path``: a file, ``str``: a text).

    Byte-level means every string round-trips exactly, which the diff format
    (indentation, trailing spaces) depends on. The result is a transformers
    fast tokenizer with ``<|endoftext|>`` as eos/bos and ``<|pad|>`` as pad.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_texts(stdlib_sample() if sources is None else sources), trainer)
    # Keep id 2 but make the separator survive skip_special_tokens=True (see module doc).
    backend.add_tokens([AddedToken(DIFF_TOKEN, special=False, normalized=False)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=EOS_TOKEN,
        bos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        clean_up_tokenization_spaces=False,
    )


def build_model(tokenizer: PreTrainedTokenizerFast, size: str = "tiny", seed: int = 0) -> LlamaForCausalLM:
    """A freshly initialised ``LlamaForCausalLM`` of a named size (:data:`MODEL_SIZES`)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    try:
        shape = MODEL_SIZES[size]
    except KeyError:
        raise ValueError(f"unknown model size {size!r}; known: {', '.join(MODEL_SIZES)}") from None
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.heads,
        max_position_embeddings=shape.context,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def save_model(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, folder: str | Path) -> Path:
    """Write model and tokenizer into ``folder`` (``from_pretrained`` reads it offline)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# -- LintSeq fine-tuning ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LintSeqExample:
    """One training example: the instruction and the edit path (zero-context diffs)."""

    instruction: str
    diffs: tuple[str, ...]

    @property
    def prompt(self) -> str:
        return format_prompt(self.instruction)

    def text(self, eos_token: str = EOS_TOKEN) -> str:
        return format_training_text(self.instruction, self.diffs, eos_token)


def _documented_functions(source: str, max_lines: int) -> Iterable[tuple[str, str]]:
    """``(instruction, program)`` for each small documented function, docstring removed.

    The docstring becomes the instruction (its first paragraph, to keep
    examples short), so it is cut from the program the model learns to write.
    """
    tree = ast.parse(source)
    lines = source.split("\n")
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.decorator_list:
            continue
        doc = ast.get_docstring(node)
        body = node.body[1:]
        if not doc or not body or node.end_lineno is None:
            continue
        header = lines[node.lineno - 1 : node.body[0].lineno - 1]
        rest = lines[body[0].lineno - 1 : node.end_lineno]
        if len(header) != 1 or len(rest) > max_lines:
            continue
        program = textwrap.dedent("\n".join(header + rest))
        signature = header[0].strip().removeprefix("async ").removeprefix("def ").rstrip(":")
        summary = doc.split("\n\n")[0].strip()
        yield f"Write a Python function `{signature}` to solve the following problem:\n{summary}", program


def lintseq_examples(
    files: Sequence[Path] | None = None, max_lines: int = 10, seed: int = 0
) -> list[LintSeqExample]:
    """LintSeq examples from small documented functions in ``files`` (default: stdlib sample).

    Only functions that lint clean on their own are kept, so every
    intermediate program of a path is meaningful. One path per function, from
    :func:`~model_runtime.lintseq.sampler.path_rng` of its position: the same files
    give the same examples.
    """
    linter = PyflakesLinter()
    sampler = LintSeqSampler(linter)
    examples = []
    for source in _texts(stdlib_sample(200, seed) if files is None else files):
        try:
            pairs = list(_documented_functions(source, max_lines))
        except (SyntaxError, ValueError, RecursionError):
            continue
        for instruction, program in pairs:
            if linter.lint(program):
                continue
            try:
                (path,) = sampler.sample_paths(program, 1, seed=seed, index=len(examples))
            except ProgramSkipped:
                continue
            examples.append(LintSeqExample(instruction, tuple(path.diffs())))
    return examples


@dataclass(frozen=True, slots=True)
class TrainSettings:
    """Settings of :func:`train_lintseq_model`.

    The defaults take about 45-100 s on a 2-core CPU, depending on what else
    runs there, and bring the response loss to about 0.1-0.2: enough for
    well-formed diffs on most training-like prompts.
    """

    size: str = "tiny"
    vocab_size: int = 2048
    steps: int = 500
    batch_size: int = 16
    learning_rate: float = 3e-3
    warmup_steps: int = 20
    #: Examples longer than this (in tokens) are dropped, not truncated.
    max_tokens: int = 192
    #: Functions with longer bodies (docstring excluded) are not used.
    max_program_lines: int = 10
    #: Standard-library files sampled for the tokenizer and for the training programs.
    tokenizer_files: int = 100
    data_files: int = 200
    #: torch threads while training. One by default: at these matrix sizes a
    #: second thread gains little (0.09 vs 0.15 s a step on an idle 2-core
    #: machine), but on a shared CPU OpenMP threads waiting for each other made
    #: steps up to 6x slower (0.6 s against 0.18 s single-threaded), and one
    #: thread makes the result independent of the machine's core count.
    threads: int = 1
    seed: int = 0


@dataclass(frozen=True, slots=True)
class TrainReport:
    """What a training run did; ``sample_prompts`` are training prompts for smoke checks."""

    folder: Path
    parameters: int
    examples: int
    steps: int
    tokens: int
    first_loss: float
    final_loss: float
    seconds: float
    sample_prompts: tuple[str, ...]


def train_lintseq_model(folder: str | Path, settings: TrainSettings | None = None) -> TrainReport:
    """Build, fine-tune on LintSeq paths and save a model into ``folder``.

    The loss covers the response only (the diffs, the two terminating empty
    edits and end-of-text), as in instruction tuning: the model learns to
    answer, not to write instructions. Deterministic for a given seed and
    thread count on a given Python (the stdlib is the data).
    """
    import torch

    settings = settings or TrainSettings()
    start = time.perf_counter()
    tokenizer = train_tokenizer(stdlib_sample(settings.tokenizer_files, settings.seed), settings.vocab_size)
    examples = lintseq_examples(
        stdlib_sample(settings.data_files, settings.seed), settings.max_program_lines, settings.seed
    )
    rows = _encode(tokenizer, examples, settings.max_tokens)
    if not rows:
        raise ValueError("no LintSeq example fits in max_tokens")
    model = build_model(tokenizer, settings.size, settings.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)  # process-wide, hence restored below
    try:
        losses, tokens = _fit(model, rows, tokenizer.pad_token_id, settings)
    finally:
        torch.set_num_threads(threads)
    save_model(model, tokenizer, folder)
    head = losses[: min(10, len(losses))]
    tail = losses[-min(10, len(losses)) :]
    return TrainReport(
        folder=Path(folder),
        parameters=model.num_parameters(),
        examples=len(rows),
        steps=len(losses),
        tokens=tokens,
        first_loss=sum(head) / len(head),
        final_loss=sum(tail) / len(tail),
        seconds=time.perf_counter() - start,
        sample_prompts=tuple(ex.prompt for ex, _, _ in rows[:12]),
    )


def _encode(
    tokenizer, examples: Sequence[LintSeqExample], max_tokens: int
) -> list[tuple[LintSeqExample, list[int], int]]:
    """``(example, ids, prompt length)`` per example that fits; the others are dropped."""
    rows = []
    for ex in examples:
        prompt = tokenizer.encode(ex.prompt, add_special_tokens=False)
        ids = tokenizer.encode(ex.text(), add_special_tokens=False)
        if len(ids) <= max_tokens and ids[: len(prompt)] == prompt:
            rows.append((ex, ids, len(prompt)))
    return rows


def _batches(rows: list, size: int, rng: random.Random) -> Iterator[list]:
    """Endless batches, each epoch shuffled; rows of similar length share a batch.

    Sorting a window of eight batches by length before cutting it cuts the
    padding (and so the training time) roughly in half without making the
    batch order predictable.
    """
    while True:
        order = list(range(len(rows)))
        rng.shuffle(order)
        window = size * 8
        for lo in range(0, len(order), window):
            chunk = sorted(order[lo : lo + window], key=lambda i: len(rows[i][1]))
            cut = [chunk[i : i + size] for i in range(0, len(chunk), size)]
            rng.shuffle(cut)
            for part in cut:
                yield [rows[i] for i in part]


def _fit(
    model, rows: list[tuple[LintSeqExample, list[int], int]], pad_id: int, settings: TrainSettings
) -> tuple[list[float], int]:
    """AdamW with linear warm-up and cosine decay; returns per-step losses and tokens seen."""
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=0.0)

    def factor(step: int) -> float:
        if step < settings.warmup_steps:
            return (step + 1) / settings.warmup_steps
        progress = (step - settings.warmup_steps) / max(1, settings.steps - settings.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    batches = _batches(rows, settings.batch_size, random.Random(settings.seed))
    losses: list[float] = []
    tokens = 0
    model.train()
    for _ in range(settings.steps):
        batch = next(batches)
        width = max(len(ids) for _, ids, _ in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, (_, ids, prompt_len) in enumerate(batch):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            labels[i, prompt_len : len(ids)] = torch.tensor(ids[prompt_len:])
            mask[i, : len(ids)] = 1
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        tokens += int(mask.sum())
    model.eval()
    return losses, tokens


# -- memorising given answers -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemoriseSettings:
    """Settings of :func:`train_memorised_model`.

    The defaults make a tiny model repeat a handful of 200-300 token answers
    word for word under greedy decoding in 10-20 s on one CPU thread.
    """

    size: str = "tiny"
    #: Small on purpose: the tokenizer only sees the examples, so a big vocabulary would be empty merges.
    vocab_size: int = 512
    steps: int = 250
    learning_rate: float = 3e-3
    warmup_steps: int = 10
    threads: int = 1
    seed: int = 0


def train_memorised_model(
    folder: str | Path,
    examples: Sequence[tuple[str, str]],
    settings: MemoriseSettings | None = None,
    *,
    formats: Sequence[str] = (),
) -> TrainReport:
    """Build and save a model that answers each ``(prompt, answer)`` prompt with its answer.

    Why: behaviour that needs a model to say something *specific* (the fix
    for a buggy function, a copy of the faulty code) can then be tested end
    to end through the real loader and generation, without mocking a model.
    The answer is followed by end-of-text, so the model also learns to stop;
    the loss covers the answers only. Every example is in every batch.
    """
    import torch

    settings = settings or MemoriseSettings()
    start = time.perf_counter()
    tokenizer = train_tokenizer([p + a for p, a in examples], settings.vocab_size)
    rows = []
    for prompt, answer in examples:
        prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
        ids = tokenizer.encode(prompt + answer + EOS_TOKEN, add_special_tokens=False)
        if ids[: len(prompt_ids)] != prompt_ids:
            raise ValueError("the prompt does not tokenize as a prefix of prompt + answer; end it at a token boundary")
        rows.append(((prompt, answer), ids, len(prompt_ids)))
    model = build_model(tokenizer, settings.size, settings.seed)
    fit = TrainSettings(
        size=settings.size, steps=settings.steps, batch_size=len(rows), learning_rate=settings.learning_rate,
        warmup_steps=settings.warmup_steps, seed=settings.seed,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        losses, tokens = _fit(model, rows, tokenizer.pad_token_id, fit)
    finally:
        torch.set_num_threads(threads)
    save_model(model, tokenizer, folder)
    if formats:  # the prompt formats its examples are in (the refine loop's profile reads them)
        from model_runtime.backends.embedded import write_manifest

        write_manifest(folder, list(formats))
    return TrainReport(
        folder=Path(folder), parameters=model.num_parameters(), examples=len(rows), steps=len(losses),
        tokens=tokens, first_loss=losses[0], final_loss=losses[-1],
        seconds=time.perf_counter() - start, sample_prompts=tuple(p for p, _ in examples),
    )
