"""One write or refine run: the engine call in a worker thread, its progress text, its outcome.

Runs last seconds to minutes, so they never touch the event loop: the engine
(:func:`model_runtime.run.engine.refine` or :func:`model_runtime.run.engine.write`,
given the :class:`~model_runtime.run.config.RunConfig` made from the settings)
runs in a thread, its events are turned into one-line progress messages here
and handed to a callback, and a :class:`threading.Event` stops the model and
the tests together. The outcome is plain data pinned to the document version
and text it was computed from, so a later edit of the document can be
detected before any stale edit reaches the editor. Which runs are in flight
and which outcomes still apply is :class:`~.runbook.RunBook`'s business.
"""

from __future__ import annotations

import shlex
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from model_runtime.edits.step_edits import step_summary, step_texts
from model_runtime.run.config import RunConfig

__all__ = ["Outcome", "RunRequest", "execute", "test_ids_from_command"]


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
    #: What ``passed``/``total`` count ("2 failing + 3 passing in their files").
    checked: str = ""
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
    """Engine events as the one-line messages an editor shows ("round 2/4: 3 -> 1 failing").

    Events are told apart by their ``event`` name, as every front end does, so
    the server needs none of the engine's event classes.
    """

    def __init__(self, rounds: int, say: Callable[[str], None]) -> None:
        self.rounds, self.say, self.failing = rounds, say, 0

    def __call__(self, event) -> None:
        kind = event.event
        if kind == "round_started":
            self.failing = event.total - event.best_passed
            self.say("round 0: running the tests" + (" and writing the function" if event.candidates else "")
                     if event.round == 0 else f"round {event.round}/{self.rounds}: asking the model")
        elif kind == "edit":
            where = "writing" if event.round == 0 else f"round {event.round}/{self.rounds}"
            self.say(f"{where}: edit {event.step} proposed")
        elif kind == "candidate" and event.candidate is not None:
            self.say(f"round {event.round}/{self.rounds}: candidate {event.status}, "
                     f"{event.passed}/{event.total} passed")
        elif kind == "round_finished":
            after = event.total - event.best_passed
            before = self.failing if event.round else after
            self.say(f"round {event.round}/{self.rounds}: {before} -> {after} failing")


def execute(request: RunRequest, config: RunConfig, backend, cancel: threading.Event,
            say: Callable[[str], None]) -> Outcome:
    """Run ``request`` to the end (blocking); raises the engine's errors (:class:`EditseqError`) unchanged."""
    from model_runtime.run import engine

    if request.action == "write":
        result = engine.write(config, backend, request.root, request.path, request.function,
                              source=request.source, on_event=_Progress(0, say), cancel=cancel)
        return _written(request, result)
    result = engine.refine(config, backend, request.root, request.path, request.function, request.tests,
                           source=request.source, on_event=_Progress(config.rounds, say), cancel=cancel)
    return _refined(request, result)


def _written(request: RunRequest, result) -> Outcome:
    texts = step_texts(result.original, result.diffs)
    reasons = ["pyflakes: clean" if not lint else "pyflakes: " + ", ".join(
        f"{m.code} line {m.line}: {m.message}" for m in lint) for lint in result.lint]
    reasons = _with_notes(reasons, getattr(result, "notes", []))
    state = "cancelled" if result.cancelled else f"{len(result.diffs)} step(s), not tested"
    if not result.diffs and getattr(result, "refused", None):
        state += f" ({result.refused[0]})"  # why nothing was written
    return Outcome(request, texts, _labels(texts), reasons, verified=False, passed=0, total=0, tested=False,
                   summary=f"{request.function}: {state}")


def _refined(request: RunRequest, result) -> Outcome:
    texts = step_texts(result.original, result.diffs)
    reasons = []
    for number in result.step_rounds:
        feedback = result.trajectory[number].feedback
        reasons.append(f"round {number}: " + (_first_line(feedback) or "written from the docstring"))
    reasons = _with_notes(reasons, getattr(result, "step_notes", []))
    state = "verified green" if result.verified else f"not verified ({result.reason})"
    return Outcome(request, texts, _labels(texts), reasons, verified=result.verified,
                   passed=result.best.passed, total=result.best.total, tested=True, checked=result.checked_words,
                   summary=f"{request.function}: {state}, {result.best.passed}/{result.best.total} tests pass "
                           f"({result.checked_words}), {len(result.diffs)} step(s)")


def _with_notes(reasons: list[str], notes: list[str]) -> list[str]:
    """Each step's reason with its landing note ("only `add` landed: dropped print(...)"), if any:
    what the model wrote besides the function and the editor does not apply should not pass unsaid."""
    return [f"{reason}; {note}" if note else reason
            for reason, note in zip(reasons, [*notes, *[""] * (len(reasons) - len(notes))])]


def _labels(texts: list[str]) -> list[str]:
    return [step_summary(a, b) for a, b in zip(texts, texts[1:])]
