"""Training throughput: tokens per second, model FLOPs utilisation, and stopping on a time budget.

Why measure inside the run: the one-GPU recipe (``scripts/``) has to fit
each chunk in a time slot and report how well it used the device, and a
number printed by the run that produced the checkpoint is the one that can be
trusted. Tokens are the Trainer's own non-padding count
(``include_num_input_tokens_seen="non_padding"``), so they are right with data
loader workers too. (CYCLE's past-generation mask zeroes attention-mask
entries, so those hidden tokens are not counted: its figures are slightly low.)

MFU follows the PaLM paper's accounting: a token costs ``6 N`` FLOPs for the
weights (forward and backward; ``N`` counts tied embeddings once, which is the
output projection's matmul) plus ``12 L d T`` for attention at sequence length
``T``, divided by the device's peak dense bf16 rate. Without a known peak (a
CPU, an unlisted GPU and no ``--peak-tflops``) MFU is not reported rather than
guessed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = [
    "PEAK_TFLOPS",
    "ThroughputCallback",
    "TimeBudgetCallback",
    "device_peak_tflops",
    "flops_per_token",
]

#: Dense bf16 peak TFLOP/s by device-name fragment (vendor data sheets, SXM parts; first match wins).
PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
)


def device_peak_tflops() -> float | None:
    """The current CUDA device's peak from :data:`PEAK_TFLOPS`, or None (CPU, unknown GPU)."""
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((peak for fragment, peak in PEAK_TFLOPS if fragment in name), None)


def flops_per_token(model, seq_len: int) -> float:
    """Training FLOPs per token: ``6 N + 12 L d T`` (see the module docstring)."""
    config = model.config
    layers = getattr(config, "num_hidden_layers", 0)
    hidden = getattr(config, "hidden_size", 0)
    return 6.0 * model.num_parameters() + 12.0 * layers * hidden * seq_len


def _callback_base():
    from transformers import TrainerCallback

    return TrainerCallback


class ThroughputCallback(_callback_base()):
    """Adds ``tokens_per_second`` (and ``mfu`` where the peak is known) to every logged entry.

    Each figure covers the window since the previous log. The run's overall
    figure leaves out the first window, which carries start-up (and
    ``torch.compile``) time, whenever there is more than one.
    """

    def __init__(self, model, seq_len: int, peak_tflops: float | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.model = model
        self.seq_len = seq_len
        self.peak = peak_tflops
        self.clock = clock
        self.windows: list[tuple[int, float]] = []  # (tokens, seconds)
        self._mark: tuple[int, float] | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        if self.peak is None:
            self.peak = device_peak_tflops()
        self._mark = (state.num_input_tokens_seen, self.clock())

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self._mark is None or not state.log_history:
            return
        now, tokens = self.clock(), state.num_input_tokens_seen
        delta_tokens, seconds = tokens - self._mark[0], now - self._mark[1]
        self._mark = (tokens, now)
        if delta_tokens <= 0 or seconds <= 0:
            return
        self.windows.append((delta_tokens, seconds))
        entry = state.log_history[-1]
        entry["tokens_per_second"] = round(delta_tokens / seconds, 1)
        mfu = self.mfu(delta_tokens / seconds)
        if mfu is not None:
            entry["mfu"] = round(mfu, 4)

    def mfu(self, tokens_per_second: float) -> float | None:
        if not self.peak:
            return None
        return tokens_per_second * flops_per_token(self.model, self.seq_len) / (self.peak * 1e12)

    def overall_tokens_per_second(self) -> float | None:
        windows = self.windows[1:] if len(self.windows) > 1 else self.windows
        seconds = sum(s for _, s in windows)
        return sum(t for t, _ in windows) / seconds if seconds > 0 else None

    def overall_mfu(self) -> float | None:
        rate = self.overall_tokens_per_second()
        return None if rate is None else self.mfu(rate)


class TimeBudgetCallback(_callback_base()):
    """Stops training, with a checkpoint, once ``seconds`` have passed since ``start``.

    ``start`` is when the job began (before tokenising the data, loading the
    model and compiling it), so the budget bounds the whole chunk's wall time,
    not only its training steps; without it, training's start. The schedule
    still spans the whole run (``max_steps``), so a later ``--resume``
    continues the same curve: this is how a long run is cut into chunks that
    each fit a time slot.
    """

    def __init__(self, seconds: float, start: float | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.seconds = seconds
        self.clock = clock
        self.fired = False
        self._start = start

    def on_train_begin(self, args, state, control, **kwargs):
        if self._start is None:
            self._start = self.clock()

    def on_step_end(self, args, state, control, **kwargs):
        if self._start is not None and self.clock() - self._start >= self.seconds and state.global_step < state.max_steps:
            self.fired = True
            control.should_save = True
            control.should_training_stop = True
        return control
