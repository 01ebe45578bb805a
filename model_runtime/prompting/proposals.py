"""From a model's completion to a proposal: applied steps, the program, and what was refused.

Every consumer of model output — ``editseq generate``, the refinement loop,
the language server — needs the same three answers about a candidate: which
of its steps apply (each checked to parse), what program they lead to, and
why anything else was refused. This module is that one place, so a diff
accepted by the CLI is accepted by the editor too.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from model_runtime.backends.base import Completion
from model_runtime.edits.diff_apply import StepResult, apply_edit_sequence, python_syntax_error

from .formats import PromptFormat

__all__ = ["Proposal", "Refusal", "interpret_completion", "single_edit_answers"]

#: The parser and the applier number what they refuse; a Refusal carries the number itself.
_NUMBERED = re.compile(r"^(?:step|diff) \d+: ")


@dataclass(frozen=True, slots=True)
class Refusal:
    """A step of a candidate that was not used: its 1-based number and the reason."""

    step: int
    reason: str


@dataclass(frozen=True, slots=True)
class Proposal:
    """One candidate, interpreted against the text it edits."""

    candidate: int
    start: str
    steps: tuple[StepResult, ...]
    refused: tuple[Refusal, ...]
    completion: Completion

    @property
    def program(self) -> str:
        """The text after the last applied step (``start`` if none applied)."""
        return self.steps[-1].new if self.steps else self.start

    @property
    def diffs(self) -> list[str]:
        return [step.diff for step in self.steps]

    @property
    def changed(self) -> bool:
        """False when the candidate leaves the text as it was (e.g. copies faulty code back)."""
        return self.program != self.start


def interpret_completion(fmt: PromptFormat, completion: Completion, start: str = "",
                         eos_token: str | None = None) -> Proposal:
    """Parse ``completion`` in ``fmt`` and apply its steps to ``start``.

    Diff answers are applied step by step, stopping at the first refused one
    (later steps are positioned against a file that includes it). A
    whole-program answer (``cycle-program``) becomes one step from ``start``,
    shown as a unified diff. A truncated completion (``finish_reason ==
    "length"``) loses its unfinished last piece rather than applying it
    half-written.
    """
    parsed = fmt.parse(completion.text, eos_token=eos_token,
                       truncated=completion.finish_reason == "length")
    refused: list[Refusal] = []
    if parsed.program is not None:
        steps, refused = _program_step(start, parsed.program)
    else:
        result = apply_edit_sequence(list(parsed.diffs), start, kind=parsed.diff_kind or "lintseq")
        steps = list(result.applied)
        if result.rejection is not None:
            refused.append(Refusal(len(steps) + 1, _NUMBERED.sub("", result.rejection.reason)))
            refused.extend(
                Refusal(len(steps) + 2 + k, "not attempted: follows a refused step")
                for k in range(len(result.not_attempted))
            )
    next_step = len(steps) + len(refused) + 1
    for k, skipped in enumerate(parsed.skipped):
        refused.append(Refusal(next_step + k, _NUMBERED.sub("", skipped.reason)))
    return Proposal(completion.index, start, tuple(steps), tuple(refused), completion)


def _program_step(start: str, program: str) -> tuple[list[StepResult], list[Refusal]]:
    problem = python_syntax_error(program)
    if problem:
        return [], [Refusal(1, f"the program does not parse: {problem}")]
    if program == start:
        return [], []
    diff = "\n".join(
        difflib.unified_diff(start.splitlines(), program.splitlines(), "a", "b", lineterm="")
    )
    return [StepResult(start, program, diff)], []


def single_edit_answers(program: str) -> list[str]:
    """Every single-edit repair of ``program`` as the ``cycle`` answer that makes it, each once.

    The edits are :func:`~model_runtime.edits.mutations.mutations` of the
    program (swaps, off-by-ones, name and call changes, a statement repeated
    or removed), in their fixed order; the answers are what
    :func:`~model_runtime.edits.repair_diffs.repair_diffs` writes for them. The
    refine loop's ``rank`` strategy scores these; rank training learns to.
    """
    from model_runtime.edits.mutations import mutations  # libcst: imported on first use
    from model_runtime.edits.repair_diffs import RepairDiffError, repair_diffs

    from .formats import get_format

    fmt, answers = get_format("cycle"), []
    for mutation in mutations(program):
        try:
            answers.append(fmt.render_answer(repair_diffs(program, mutation.source)))
        except RepairDiffError:
            continue
    return list(dict.fromkeys(answers))
