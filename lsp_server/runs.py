"""One write or refine run: the engine call in a worker thread, its progress text, its outcome.

Runs last seconds to minutes, so they never touch the event loop: the engine
(:func:`~model_runtime.refine.refine` or :func:`~model_runtime.write.write_function`)
runs in a thread, its events are turned into one-line progress messages here
and handed to a callback, and a :class:`threading.Event` stops the model and
the tests together. The outcome is plain data pinned to the document version
and text it was computed from, so a later edit of the document can be
detected before any stale edit reaches the editor.
"""

from __future__ import annotations

import shlex
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from model_runtime.refine import RefineBudget, RefineTarget
from model_runtime.refine_events import CandidateTested, EditProposed, RoundFinished, RoundStarted
from model_runtime.step_edits import step_summary, step_texts

from .settings import Settings

__all__ = ["Outcome", "RunRequest", "execute", "test_ids_from_command"]

#: Variables that configure the user's pytest; passed into the otherwise scrubbed sandbox (as the CLI does).
PYTEST_VARIABLES = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")


@dataclass(frozen=True, slots=True)
class RunRequest:
    """What to run: ``action`` is ``write``, ``refine`` or ``fix``; ``source`` is the buffer at ``version``."""

    action: str
    uri: str
    version: int
    source: str
    root: Path
    path: str
    function: str
    tests: tuple[str, ...] = ()

    @property
    def key(self) -> tuple:
        return (self.action, self.uri, self.version, self.function, self.tests)


@dataclass(slots=True)
class Outcome:
    """A finished run: ``texts[0]`` is the document it started from, ``texts[k]`` after step ``k``."""

    request: RunRequest
    texts: list[str]
    labels: list[str]
    reasons: list[str]
    verified: bool
    passed: int
    total: int
    tested: bool
    summary: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @property
    def steps(self) -> int:
        return len(self.texts) - 1


def test_ids_from_command(command: str) -> list[str]:
    """The test ids of ``testCommand``: its arguments, minus a leading ``pytest`` and any options."""
    words = shlex.split(command)
    while words and words[0] in ("python", "python3", "-m", "pytest", "py.test"):
        words.pop(0)
    return [word for word in words if not word.startswith("-")]


def _first_line(text: str, width: int = 200) -> str:
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return line if len(line) <= width else line[: width - 3] + "..."


class _Progress:
    """Engine events as the one-line messages an editor shows ("round 2/4: 3 -> 1 failing")."""

    def __init__(self, rounds: int, say: Callable[[str], None]) -> None:
        self.rounds, self.say, self.failing = rounds, say, 0

    def __call__(self, event) -> None:
        if isinstance(event, RoundStarted):
            self.failing = event.total - event.best_passed
            self.say("round 0: running the tests" + (" and writing the function" if event.candidates else "")
                     if event.round == 0 else f"round {event.round}/{self.rounds}: asking the model")
        elif isinstance(event, EditProposed):
            where = "writing" if event.round == 0 else f"round {event.round}/{self.rounds}"
            self.say(f"{where}: edit {event.step} proposed")
        elif isinstance(event, CandidateTested) and event.candidate is not None:
            self.say(f"round {event.round}/{self.rounds}: candidate {event.status}, "
                     f"{event.passed}/{event.total} passed")
        elif isinstance(event, RoundFinished):
            after = event.total - event.best_passed
            before = self.failing if event.round else after
            self.say(f"round {event.round}/{self.rounds}: {before} -> {after} failing")


def _budget(settings: Settings) -> RefineBudget:
    return RefineBudget(rounds=settings.rounds, candidates=settings.candidates, seconds=settings.timeout,
                        max_new_tokens=settings.maxNewTokens, temperature=settings.temperature)


def execute(request: RunRequest, backend, settings: Settings, cancel: threading.Event,
            say: Callable[[str], None]) -> Outcome:
    """Run ``request`` to the end (blocking); raises the engine's errors unchanged."""
    target = RefineTarget(request.root, request.path, request.function)
    if request.action == "write":
        return _write(request, target, backend, settings, cancel, say)
    return _refine(request, target, backend, settings, cancel, say)


def _write(request, target, backend, settings, cancel, say) -> Outcome:
    from model_runtime.write import write_function

    result = write_function(target, backend, source=request.source, budget=_budget(settings),
                            on_event=_Progress(0, say), cancel=cancel)
    texts = step_texts(result.original, result.diffs)
    reasons = ["pyflakes: clean" if not lint else "pyflakes: " + ", ".join(
        f"{m.code} line {m.line}: {m.message}" for m in lint) for lint in result.lint]
    state = "cancelled" if result.cancelled else f"{len(result.diffs)} step(s), not tested"
    return Outcome(request, texts, _labels(texts), reasons, verified=False, passed=0, total=0, tested=False,
                   summary=f"{request.function}: {state}")


def _refine(request, target, backend, settings, cancel, say) -> Outcome:
    import os

    from model_runtime.refine import refine
    from model_runtime.sandbox import Sandbox, SandboxLimits

    env = {name: os.environ[name] for name in PYTEST_VARIABLES if name in os.environ}
    limits = SandboxLimits(timeout_s=settings.timeout, cpu_s=max(1, int(settings.timeout)))
    sandbox = Sandbox(request.root, python=settings.python or None, limits=limits, env=env)
    result = refine(target, request.tests, backend, sandbox=sandbox, budget=_budget(settings),
                    on_event=_Progress(settings.rounds, say), cancel=cancel, source=request.source)
    texts = step_texts(result.original, result.diffs)
    reasons = []
    for number in result.step_rounds:
        feedback = result.trajectory[number].feedback
        reasons.append(f"round {number}: " + (_first_line(feedback) or "written from the docstring"))
    state = "verified green" if result.verified else f"not verified ({result.reason})"
    return Outcome(request, texts, _labels(texts), reasons, verified=result.verified,
                   passed=result.best.passed, total=result.best.total, tested=True,
                   summary=f"{request.function}: {state}, {result.best.passed}/{result.best.total} tests pass, "
                           f"{len(result.diffs)} step(s)")


def _labels(texts: list[str]) -> list[str]:
    return [step_summary(a, b) for a, b in zip(texts, texts[1:])]
