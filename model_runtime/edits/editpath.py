"""The LintSeq edit format: zero-context unified diffs separated by ``<|diff|>``.

Each edit is a unified diff with no context lines and no file headers, in
the reference implementation's exact spelling (``difflib.unified_diff`` with
``n=0``)::

    @@ -4,0 +5,2 @@
    +    x = 1
    +    return x

Positions are those of the *growing* file: the ``+c,d`` side of a hunk says
where, in the file after the edit, the inserted lines start. Training text is
``instruction + "\\n<|diff|>" + diff_1 + "\\n<|diff|>" + ... + diff_n`` followed
by two empty edits and the end-of-text token, as the reference fine-tuning
code writes it.

This module goes both ways. :func:`insertion_diff` serialises one step
without ``difflib`` (the inserted lines are known exactly, so no alignment is
guessed), and :func:`resolve_edit_path` turns model text back into a program.
The resolver is tolerant: a hunk it cannot apply is skipped and reported with
a reason, never raised; for well-formed sequences it is exact. Unlike the
reference resolver it keeps a leading ``+`` or ``-`` that belongs to the line
content (``+-1`` inserts ``-1``) and strips the end-of-text token as a suffix,
not as a character set.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "DIFF_TOKEN",
    "Hunk",
    "RejectedHunk",
    "Resolution",
    "format_prompt",
    "format_training_text",
    "insertion_diff",
    "parse_hunks",
    "resolve_edit_path",
    "split_edits",
]

DIFF_TOKEN = "<|diff|>"
_SEPARATOR = "\n" + DIFF_TOKEN
_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def _range(start: int, length: int) -> str:
    """One side of a hunk header, spelled as ``difflib`` spells it."""
    if length == 1:
        return str(start + 1)
    if length == 0:
        return f"{start},0"
    return f"{start + 1},{length}"


def insertion_diff(new_lines: Sequence[str], inserted: Sequence[bool]) -> str:
    """The zero-context diff that inserts the flagged lines of ``new_lines``.

    ``inserted[i]`` tells whether ``new_lines[i]`` is new in this step; the
    other lines, in order, are the file before it. Each maximal run of new
    lines is one hunk, exactly as ``difflib.unified_diff(..., n=0)`` writes it
    for an insertion-only change.
    """
    out: list[str] = []
    old_seen = 0
    i = 0
    n = len(new_lines)
    while i < n:
        if not inserted[i]:
            old_seen += 1
            i += 1
            continue
        j = i
        while j < n and inserted[j]:
            j += 1
        out.append(f"@@ -{_range(old_seen, 0)} +{_range(i, j - i)} @@")
        out.extend("+" + line for line in new_lines[i:j])
        i = j
    return "\n".join(out)


def format_prompt(instruction: str) -> str:
    """The prompt a LintSeq model continues: the instruction, then ``\\n<|diff|>``."""
    return instruction + _SEPARATOR


def format_training_text(instruction: str, diffs: Sequence[str], eos_token: str = "") -> str:
    """Training text for one edit path, as the reference fine-tuning code builds it.

    The path ends with two empty edits and ``eos_token``, which teaches the
    model to stop after its last real edit.
    """
    return format_prompt(instruction) + _SEPARATOR.join([*diffs, "", ""]) + eos_token


def split_edits(completion: str, eos_token: str | None = None) -> list[str]:
    """Split model output (the text after the prompt) into edits.

    Text from the first ``eos_token`` on is dropped; empty edits (the path's
    terminator) are dropped too.
    """
    if eos_token:
        cut = completion.find(eos_token)
        if cut >= 0:
            completion = completion[:cut]
    edits = []
    for piece in completion.split(DIFF_TOKEN):
        piece = piece.strip("\n")
        if piece.strip():
            edits.append(piece)
    return edits


@dataclass(frozen=True, slots=True)
class Hunk:
    """One parsed hunk: header numbers and its body lines (with their ``+``/``-``/`` `` prefix)."""

    old_start: int
    old_len: int
    new_start: int
    new_len: int
    body: tuple[str, ...]
    text: str

    @property
    def added(self) -> list[str]:
        return [line[1:] for line in self.body if line[:1] in ("+", " ")]

    @property
    def removed(self) -> list[str]:
        return [line[1:] for line in self.body if line[:1] in ("-", " ")]


@dataclass(frozen=True, slots=True)
class RejectedHunk:
    """A hunk the resolver skipped: 1-based ``step`` and ``hunk`` numbers, the reason and its text."""

    step: int
    hunk: int
    reason: str
    text: str


@dataclass(slots=True)
class Resolution:
    """What :func:`resolve_edit_path` made of model text."""

    lines: list[str] = field(default_factory=list)
    steps: int = 0
    applied_hunks: int = 0
    rejected: list[RejectedHunk] = field(default_factory=list)

    @property
    def program(self) -> str:
        return "\n".join(self.lines)

    @property
    def ok(self) -> bool:
        return not self.rejected


def parse_hunks(edit: str) -> tuple[list[Hunk], list[tuple[int, str, str]]]:
    """Parse one edit into hunks.

    Returns ``(hunks, problems)`` where each problem is ``(hunk number, reason,
    text)`` for a piece that is not a well-formed hunk. Counts in the header
    must match the body, so a truncated hunk is caught here.
    """
    hunks: list[Hunk] = []
    problems: list[tuple[int, str, str]] = []
    chunks: list[list[str]] = []
    for line in edit.split("\n"):
        if line.startswith("@@") or not chunks:
            chunks.append([line])
        else:
            chunks[-1].append(line)
    for number, chunk in enumerate(chunks, start=1):
        text = "\n".join(chunk)
        match = _HEADER.match(chunk[0])
        if not match:
            problems.append((number, f"not a hunk header: {chunk[0][:60]!r}", text))
            continue
        old_start, old_len, new_start, new_len = (
            int(g) if g is not None else 1 for g in match.groups()
        )
        body = list(chunk[1:])
        while body and body[-1] == "":
            body.pop()
        bad = next(
            (ln for ln in body if ln[:1] not in ("+", "-", " ", "") and not ln.startswith("\\")),
            None,
        )
        if bad is not None:
            problems.append((number, f"body line without +, - or space prefix: {bad[:60]!r}", text))
            continue
        # A bare empty line inside a body is an empty context line, as GNU patch reads it.
        lines = tuple(" " if ln == "" else ln for ln in body if not ln.startswith("\\"))
        hunk = Hunk(old_start, old_len, new_start, new_len, lines, text)
        if len(hunk.added) != new_len:
            problems.append(
                (number, f"header promises {new_len} new lines, body has {len(hunk.added)}", text)
            )
            continue
        if len(hunk.removed) != old_len:
            problems.append(
                (number, f"header promises {old_len} old lines, body has {len(hunk.removed)}", text)
            )
            continue
        if new_len and new_start < 1:
            problems.append((number, "new start must be at least 1", text))
            continue
        hunks.append(hunk)
    return hunks, problems


def resolve_edit_path(
    completion: str | Sequence[str],
    start: str | Sequence[str] = "",
    eos_token: str | None = None,
) -> Resolution:
    """Apply a sequence of edits to ``start`` (empty by default) and return the result.

    ``completion`` is model text (edits separated by ``<|diff|>``) or a list of
    edit strings. Each hunk is placed at its new-file position in the file as
    it stands; its removed and context lines must match there exactly. A hunk
    that is malformed or does not match is skipped and listed in
    ``rejected`` with the reason; nothing is raised.
    """
    edits = split_edits(completion, eos_token) if isinstance(completion, str) else [
        e for e in completion if e.strip()
    ]
    if isinstance(start, str):
        lines = start.split("\n") if start else []
    else:
        lines = list(start)
    result = Resolution(lines=lines)
    for step, edit in enumerate(edits, start=1):
        result.steps += 1
        hunks, problems = parse_hunks(edit)
        for number, reason, text in problems:
            result.rejected.append(RejectedHunk(step, number, reason, text))
        for number, hunk in enumerate(hunks, start=1):
            reason = _apply_hunk(lines, hunk)
            if reason is None:
                result.applied_hunks += 1
            else:
                result.rejected.append(RejectedHunk(step, number, reason, hunk.text))
    return result


def _apply_hunk(lines: list[str], hunk: Hunk) -> str | None:
    """Apply ``hunk`` to ``lines`` in place; return a reason instead if it does not fit."""
    # The new side says where the hunk's text starts in the file as it stands
    # (earlier hunks of the same edit already applied); ``+c,0`` names the
    # line *before* the gap, as ``-a,0`` does for an insertion.
    at = hunk.new_start - 1 if hunk.new_len else hunk.new_start
    if at < 0 or at > len(lines):
        return f"position {at + 1} is outside the file ({len(lines)} lines)"
    removed = hunk.removed
    if lines[at : at + len(removed)] != removed:
        return f"removed or context lines do not match the file at line {at + 1}"
    lines[at : at + len(removed)] = hunk.added
    return None
