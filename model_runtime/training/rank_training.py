"""Rank training: teach the model to put the true repair first among every single-edit repair of a bug.

The refine loop's ``rank`` strategy enumerates the single-edit repairs of the
faulty code (:func:`~model_runtime.prompting.proposals.single_edit_answers`), writes each as the
``cycle`` answer that makes it, and tests the ones whose answer the model
finds likeliest after the repair prompt. Plain CYCLE training raises the
likelihood of the true answer but never compares it with the others (the CPU
recipe's CYCLE model ranks no better than chance). This job trains the
comparison itself (a listwise loss; on that 6M-parameter model, 482 steps
lowered the loss but did not measurably improve the ranking on unseen code): for a bug row (``editseq corpus --bugs``
or ``cycle-collect`` repair rows), the candidates are the true answer and up
to ``negatives`` other single-edit answers of the same faulty code drawn at
random; each candidate's score is its summed log-likelihood after the prompt,
exactly as :meth:`~model_runtime.backends.transformers_backend.TransformersBackend.score`
computes it at inference; the loss is the cross-entropy of a softmax over the
scores with the true answer as the label. The prompt runs once per row and its
KV cache is shared by the candidates, as at inference.

Rows whose true answer is not one single edit (missing logic, multi-edit
fixes) are skipped: ranking cannot find them. The loop is plain PyTorch, read
top to bottom: AdamW, gradient clipping, a linear warm-up then constant rate,
one row per step. It stops after ``steps`` steps or ``minutes`` of wall
clock, whichever comes first, saving ``checkpoint/`` (model, tokenizer,
optimizer, the step, and the loss history); called again with the same
``out``, it continues from there with the same row order. At the end the model,
its tokenizer and a ``manifest.json`` (formats ``lintseq`` and ``cycle``, ``repair: rank``, so
the refine loop's ``auto`` strategy ranks with it) are saved in ``out``; ``editseq train export``
carries the manifest along.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .cycle_training import RepairRow, read_cycle_rows
from .sft import TrainingError

__all__ = ["RankReport", "RankSettings", "train_rank"]

CHECKPOINT = "checkpoint"
STATE = "rank_state.json"
LOG = "rank_log.jsonl"
MANIFEST = {"formats": ["lintseq", "cycle"], "repair": "rank"}


@dataclass(frozen=True, slots=True)
class RankSettings:
    """One rank-training job (``editseq train rank``)."""

    data: tuple[str, ...]
    model: str
    out: str
    steps: int = 1000
    minutes: float | None = None
    negatives: int = 15
    learning_rate: float = 1e-4
    warmup_steps: int = 20
    #: Rows whose longest candidate answer exceeds this many tokens are skipped.
    max_answer_tokens: int = 300
    seed: int = 0
    save_every: int = 100

    def __post_init__(self) -> None:
        if self.steps < 1 or self.negatives < 1 or self.save_every < 1 or self.max_answer_tokens < 8:
            raise TrainingError("steps, negatives and save_every must be at least 1, max_answer_tokens at least 8")
        if self.minutes is not None and not (math.isfinite(self.minutes) and self.minutes > 0):
            raise TrainingError(f"minutes must be a positive number, got {self.minutes}")
        if not (math.isfinite(self.learning_rate) and 0 < self.learning_rate < 1) or self.warmup_steps < 0:
            raise TrainingError("the learning rate must be in (0, 1) and warmup_steps >= 0")


@dataclass(slots=True)
class RankReport:
    """What a call did: steps done (in all and in this call), rows skipped, the loss and top-1 curve."""

    step: int = 0
    steps_this_call: int = 0
    rows: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    finished: bool = False
    resumed: bool = False
    first: dict = field(default_factory=dict)
    last: dict = field(default_factory=dict)
    parameters: int = 0


def _candidates(row: RepairRow, rng: random.Random, negatives: int) -> list[str] | None:
    """The true answer first, then up to ``negatives`` other single-edit answers; None if it is not one edit."""
    from model_runtime.prompting.formats import get_format
    from model_runtime.prompting.proposals import single_edit_answers

    truth = get_format("cycle").render_answer(list(row.edit_path))
    answers = single_edit_answers(row.faulty)
    if truth not in answers or len(answers) < 2:
        return None
    others = [a for a in answers if a != truth]
    rng.shuffle(others)
    return [truth, *others[:negatives]]


def _load(settings: RankSettings, out: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    checkpoint = out / CHECKPOINT
    source = checkpoint if (checkpoint / STATE).is_file() else Path(settings.model)
    if not source.is_dir():
        raise TrainingError(f"--model must be a trained model folder, got {settings.model}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise TrainingError(f"cannot load the model in {source}: {exc}") from None
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=0.0)
    state = {"step": 0, "history": []}
    if source == checkpoint:
        state = json.loads((checkpoint / STATE).read_text(encoding="utf-8"))
        optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
    return tokenizer, model, optimizer, state


def _save(folder: Path, model, tokenizer, optimizer=None, state: dict | None = None) -> None:
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if optimizer is not None:
        torch.save(optimizer.state_dict(), folder / "optimizer.pt")
        (folder / STATE).write_text(json.dumps(state), encoding="utf-8")  # last: marks the checkpoint whole


def train_rank(settings: RankSettings) -> RankReport:
    """Run (or continue) the job in ``settings.out``; see the module docstring."""
    import torch

    from model_runtime.backends.transformers_backend import answer_scores, prompt_forward
    from model_runtime.prompting.formats import PromptRequest, get_format

    rows, _plain = read_cycle_rows(settings.data)
    if not rows:
        raise TrainingError(f"no repair rows in {', '.join(settings.data)}: make some with "
                            "`editseq corpus --bugs K` or `editseq train cycle-collect`")
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer, model, optimizer, state = _load(settings, out)
    report = RankReport(step=state["step"], resumed=state["step"] > 0,
                        parameters=sum(p.numel() for p in model.parameters()))
    order = list(range(len(rows)))
    random.Random(settings.seed).shuffle(order)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    if eos is None:
        raise TrainingError("the model's tokenizer has no end-of-text token")
    pad = eos if pad is None else pad
    context = getattr(model.config, "max_position_embeddings", None) or 1 << 30
    torch.manual_seed(settings.seed + state["step"])
    model.train()
    started, history = time.perf_counter(), state["history"]
    deadline = None if settings.minutes is None else started + settings.minutes * 60
    window: list[tuple[float, int]] = []
    position = state.get("position", 0)
    while state["step"] < settings.steps and (deadline is None or time.perf_counter() < deadline):
        if position >= len(order) and state["step"] == 0:
            raise TrainingError("no usable rows: no row's fix is one single edit with short enough answers "
                                f"(skipped: {', '.join(f'{k} {v}' for k, v in sorted(report.skipped.items()))})")
        row = rows[order[position % len(order)]]
        # Negatives depend on the row and the pass over the data, not on when the job was resumed.
        rng = random.Random(f"{settings.seed}:{position}")
        position += 1
        candidates = _candidates(row, rng, settings.negatives)
        if candidates is None:
            report.skipped["not-one-edit"] = report.skipped.get("not-one-edit", 0) + 1
            continue
        answers = [[*tokenizer(a, add_special_tokens=False)["input_ids"], eos] for a in candidates]
        longest = max(len(a) for a in answers)
        if longest > settings.max_answer_tokens or longest >= context:
            report.skipped["too-long"] = report.skipped.get("too-long", 0) + 1
            continue
        prompt = get_format("cycle").build(PromptRequest(row.instruction, row.faulty, row.feedback))
        prompt_ids = tokenizer(prompt)["input_ids"][-(context - longest):]
        scores = answer_scores(model, prompt_forward(model, prompt_ids), len(prompt_ids), answers, pad)
        loss = -scores.log_softmax(0)[0]
        rate = settings.learning_rate * min(1.0, (state["step"] + 1) / max(1, settings.warmup_steps))
        for group in optimizer.param_groups:
            group["lr"] = rate
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        state["step"] += 1
        report.steps_this_call += 1
        report.rows += 1
        window.append((loss.item(), int(scores.argmax().item() == 0)))
        if len(window) == 25 or state["step"] == settings.steps:
            entry = {"step": state["step"], "loss": round(sum(l for l, _ in window) / len(window), 4),
                     "top1": round(sum(t for _, t in window) / len(window), 4), "candidates": len(candidates)}
            history.append(entry)
            with (out / LOG).open("a", encoding="utf-8") as log:
                log.write(json.dumps(entry) + "\n")
            window = []
        if state["step"] % settings.save_every == 0:
            _save(out / CHECKPOINT, model, tokenizer, optimizer, {**state, "position": position})
    state["position"] = position
    _save(out / CHECKPOINT, model, tokenizer, optimizer, state)
    report.step, report.seconds = state["step"], round(time.perf_counter() - started, 1)
    report.finished = state["step"] >= settings.steps
    report.first, report.last = (history[0], history[-1]) if history else ({}, {})
    if report.finished:
        model.eval()
        _save(out, model, tokenizer)
        (out / "rank_settings.json").write_text(json.dumps(asdict(settings), indent=1), encoding="utf-8")
        # What the refine loop reads (backends.embedded.read_manifest): trained on both formats, ranks repairs.
        (out / "manifest.json").write_text(json.dumps(MANIFEST, indent=1) + "\n", encoding="utf-8")
    return report

