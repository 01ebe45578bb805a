"""One run's configuration: what every front end fills in, from its own flags, options or settings."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from model_runtime import defaults
from model_runtime.errors import EditseqError

__all__ = ["ConfigError", "RunConfig"]


class ConfigError(EditseqError, ValueError):
    """A setting that can never work (an unknown backend, a negative budget, an endpoint that is no URL)."""


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Backend, sampling, budget, sandbox limits and interpreter of a write or refine run.

    ``timeout`` (seconds, ``None``: no limit) bounds the whole run, model and
    tests together, and each test run (wall clock and CPU). ``python`` is the
    tests' interpreter (``None``: the workspace's ``.venv``/``venv``, else
    PATH's). ``sandbox_env`` adds variables to the scrubbed test environment on
    top of the user's pytest variables. Checked when made: a bad value raises
    :class:`ConfigError` before any model loads.
    """

    model: str = defaults.MODEL
    backend: str = defaults.BACKEND
    endpoint: str = defaults.ENDPOINT
    device: str = defaults.DEVICE
    rounds: int = defaults.ROUNDS
    candidates: int = defaults.CANDIDATES
    max_new_tokens: int = defaults.MAX_NEW_TOKENS
    temperature: float = defaults.TEMPERATURE
    top_p: float = defaults.TOP_P
    seed: int | None = defaults.SEED
    #: The format the model speaks (``auto``, ``lintseq``, ``chat``; see ``defaults.PROMPT_FORMAT``).
    prompt_format: str = defaults.PROMPT_FORMAT
    #: How repair rounds find candidates (``auto``, ``generate``, ``rank``; see ``RefineBudget``).
    strategy: str = defaults.STRATEGY
    #: What "verified" checks besides the failing tests: ``files``, ``suite`` or ``failing`` (see the refine loop).
    verify: str = defaults.VERIFY
    timeout: float | None = None
    python: str | None = None
    sandbox_env: Mapping[str, str] = field(default_factory=dict)
    #: Options for the sandbox's pytest (the user's ``-p``, ``-o``, ``-W``, ``--import-mode``).
    pytest_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise ConfigError("no model: name a model folder, hub id or served model")
        if self.backend not in defaults.BACKENDS:
            raise ConfigError(f"the backend must be one of {', '.join(defaults.BACKENDS)}, got {self.backend!r}")
        if self.backend == "openai" and not self.endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"the endpoint must be an http:// or https:// URL, got {self.endpoint!r}")
        if self.prompt_format not in defaults.WRITE_FORMATS:
            raise ConfigError(f"the prompt format must be one of {', '.join(defaults.WRITE_FORMATS)}, "
                              f"got {self.prompt_format!r}")
        if self.verify not in defaults.VERIFY_SCOPES:
            raise ConfigError(f"verify must be one of {', '.join(defaults.VERIFY_SCOPES)}, got {self.verify!r}")
        if self.timeout is not None and not (math.isfinite(self.timeout)
                                             and 0 < self.timeout <= defaults.LIMITS["timeout"]):
            raise ConfigError(f"the timeout must be a positive number of seconds up to "
                              f"{defaults.LIMITS['timeout']:g}, got {self.timeout}")
        try:
            self.budget  # noqa: B018 - checks rounds, candidates and the sampling numbers
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    @property
    def budget(self):
        """The refine loop's :class:`~model_runtime.refine.loop.RefineBudget`."""
        from model_runtime.refine.loop import RefineBudget

        return RefineBudget(rounds=self.rounds, candidates=self.candidates, seconds=self.timeout,
                            max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p,
                            seed=self.seed, strategy=self.strategy, prompt_format=self.prompt_format)

    @property
    def limits(self):
        """The sandbox's limits: the defaults, or the timeout as each test run's wall-clock and CPU limit."""
        from model_runtime.sandbox.runner import SandboxLimits

        if self.timeout is None:
            return SandboxLimits()
        return SandboxLimits(timeout_s=self.timeout, cpu_s=max(1, int(self.timeout)))

    @property
    def backend_key(self) -> tuple[str, str, str, str]:
        """What identifies a loaded model: two configs with the same key can share one backend."""
        return (self.backend, self.model, self.endpoint, self.device)
