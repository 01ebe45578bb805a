"""What the refinement loop reports while it runs, as plain dataclasses.

An editor, the CLI and a server all show the same progress, so the loop emits
one small event per thing that happened, the moment it happens, and each turns
into a JSON object with :meth:`~RefineEvent.to_dict` (``{"event": name, ...}``)
without knowing anything about the loop. The loop's result and trajectory are
here too (:class:`RefineResult`, :class:`RoundRecord`,
:class:`CandidateRecord`): they are plain data, so a later issue can store
them as CYCLE training data with ``json.dumps(result.to_dict())``.

Candidate statuses (``CandidateRecord.status`` and ``CandidateTested.status``):

``tested``
    applied in the sandbox and run; the counts are real.
``copy``
    the candidate leaves the code as it was (the faulty code copied back, or
    no usable diff at all): not run.
``duplicate``
    the same program as a candidate already run (``duplicate_of`` says which):
    not run again; the counts are that run's.
``refused``
    no step applied (diffs that do not apply or do not parse): not run.
``cancelled``
    generation or the run was stopped (cancellation or the time budget).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

__all__ = [
    "CandidateRecord",
    "CandidateStatus",
    "CandidateTested",
    "EditProposed",
    "RefineDone",
    "RefineEvent",
    "RefineResult",
    "RoundFinished",
    "RoundRecord",
    "RoundStarted",
    "StopReason",
]

CandidateStatus = Literal["tested", "copy", "duplicate", "refused", "cancelled"]
#: ``green``: verified; ``rounds`` / ``seconds``: budget spent; ``no_improvement``: the
#: best candidate did not get better for ``patience`` rounds; ``cancelled``: asked to stop.
StopReason = Literal["green", "rounds", "seconds", "no_improvement", "cancelled"]


class _Plain:
    """``to_dict``: the fields as JSON-ready data, led by the event name if there is one."""

    event: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {"event": self.event, **data} if self.event else data


@dataclass(frozen=True, slots=True)
class RoundStarted(_Plain):
    """A round begins: the model is asked for ``candidates`` proposals in ``format``
    (``"none"`` for round 0 when it only runs the code as it is)."""

    event: ClassVar[str] = "round_started"
    round: int
    format: str
    candidates: int
    best_passed: int
    total: int


@dataclass(frozen=True, slots=True)
class EditProposed(_Plain):
    """One diff of one candidate is complete (against the code shown to the model)."""

    event: ClassVar[str] = "edit"
    round: int
    candidate: int
    step: int
    diff: str


@dataclass(frozen=True, slots=True)
class CandidateTested(_Plain):
    """A candidate's fate; ``candidate`` is ``None`` for the code as it was (round 0)."""

    event: ClassVar[str] = "candidate"
    round: int
    candidate: int | None
    status: str
    passed: int
    failed: int
    errors: int
    total: int
    green: bool
    steps: int
    feedback: str


@dataclass(frozen=True, slots=True)
class RoundFinished(_Plain):
    """A round ended; ``improved`` says whether the best candidate changed for a better one."""

    event: ClassVar[str] = "round_finished"
    round: int
    improved: bool
    best_round: int
    best_candidate: int | None
    best_passed: int
    total: int
    seconds: float


@dataclass(frozen=True, slots=True)
class RefineDone(_Plain):
    """The last event. ``rounds`` counts the repair rounds run (round 0, the start, is not one);
    ``diff`` is the best program's change to the file, empty if none."""

    event: ClassVar[str] = "done"
    verified: bool
    rounds: int
    reason: str
    passed: int
    total: int
    seconds: float
    diff: str


RefineEvent = RoundStarted | EditProposed | CandidateTested | RoundFinished | RefineDone


@dataclass(slots=True)
class CandidateRecord:
    """One candidate in the trajectory.

    ``program`` is the function's text (dedented) after the candidate's
    ``diffs`` were applied to its parent's program; ``parent`` is
    ``[round, candidate]`` of that program (``None`` for round 0's).
    ``completion`` is the model's raw text (empty for the original code).
    """

    round: int
    candidate: int | None
    status: CandidateStatus
    program: str
    diffs: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    completion: str = ""
    finish_reason: str = ""
    parent: list[int | None] | None = None
    duplicate_of: list[int | None] | None = None
    passed: int = 0
    failed: int = 0
    errors: int = 0
    total: int = 0
    green: bool = False
    run_status: str = ""
    feedback: str = ""

    @property
    def key(self) -> list[int | None]:
        return [self.round, self.candidate]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class RoundRecord:
    """One round: what the model was shown (``prompt``, built from ``code`` and ``feedback``),
    every candidate, and where the time went (seconds: ``model``, ``pytest``, ``sandbox``
    for the sandbox's own phases, ``total``)."""

    round: int
    format: str
    prompt: str = ""
    code: str = ""
    feedback: str = ""
    candidates: list[CandidateRecord] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class RefineResult:
    """What the loop ends with.

    ``diffs`` is the best program's path as unified diffs of the *file*: the
    first applies to ``original``, each next one to the previous one's result,
    the last gives ``final`` (what an editor shows step by step). ``diff`` is
    the whole change in one. ``verified`` is true only when ``final`` ran green.
    """

    path: str
    function: str
    instruction: str
    verified: bool
    reason: StopReason
    rounds: int
    original: str
    final: str
    diffs: list[str]
    diff: str
    best: CandidateRecord
    trajectory: list[RoundRecord]
    seconds: float
    #: The round that produced each of ``diffs`` (its ``trajectory[round].feedback`` is the
    #: failure the model was answering), so an editor can say why each step is there.
    step_rounds: list[int] = field(default_factory=list)
    #: Parallel to ``diffs``: what landing the step's answer left out or added besides the
    #: function (:meth:`~model_runtime.refine.target.Landing.note_since`), ``""`` when nothing,
    #: so an editor can say that the ``print`` calls of an answer were not applied.
    step_notes: list[str] = field(default_factory=list)
    #: What ``best.total`` counts: ``verify`` (``files``, ``suite``, ``failing``), ``failing`` (the
    #: tests asked about that failed before the change) and ``kept`` (the others, which passed before
    #: it and must still pass), so that a front end can say "2 failing + 12 passing in their files".
    checked: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def checked_words(self) -> str:
        """What the counts cover, for a label: ``2 failing + 3 passing in their files``."""
        checked = self.checked or {}
        failing, kept, scope = checked.get("failing", self.best.total), checked.get("kept", 0), checked.get("verify")
        if scope == "failing":
            return "the failing tests only"
        where = "the suite" if scope == "suite" else "their files"
        return f"{failing} failing + {kept} passing in {where}"

    def done_event(self) -> RefineDone:
        return RefineDone(
            verified=self.verified, rounds=self.rounds, reason=self.reason, passed=self.best.passed,
            total=self.best.total, seconds=round(self.seconds, 3), diff=self.diff,
        )
