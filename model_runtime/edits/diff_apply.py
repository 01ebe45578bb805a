"""Applying model diffs to a document: exactly, within a stated tolerance, or not at all.

A model's diff is a proposal, not a command. This module decides whether a
proposal can be applied *without guessing*, applies it atomically, checks the
result still parses, and turns the accepted change into minimal editor edits.

Two kinds of diff come from our models:

``lintseq``
    A LintSeq step (see :mod:`model_runtime.edits.editpath`): zero-context hunks whose
    position is the ``+c,d`` side, read in the file as it stands after the
    step's earlier hunks. This is the reference resolver's convention.
``unified``
    A general unified diff with context and removals (repairs). Positions are
    the ``-a,b`` side, in the original file, shifted by what earlier hunks of
    the same diff added or removed, as GNU ``patch`` reads them.

Tolerance policy (documented here because callers and users rely on it):

1. A hunk with no context or removed lines (a pure insertion) carries no
   evidence of where it belongs, so it goes exactly where its header says or
   is refused; it is never moved.
2. Otherwise its context and removed lines are looked for at the stated
   position and at every offset up to :data:`OFFSET_WINDOW` lines either way,
   first compared exactly, then whitespace-insensitively (runs of whitespace
   collapsed, ends stripped, so re-indented or trailing-space-damaged lines
   still match). A placement is ranked by (exact before whitespace-insensitive,
   smaller offset before larger); the best one wins. If two placements tie
   (say, the same lines both 2 above and 2 below) the hunk is **ambiguous and
   refused**.
3. Once a hunk was placed with an offset, later hunks of the same diff are
   expected to be displaced by the same amount (``patch`` does the same), and a
   displaced hunk is never placed before the end of the previous one.
4. Context lines matched whitespace-insensitively keep the document's text;
   only ``+`` lines come from the model.

A step is all-or-nothing: every hunk of one diff applies or none does, and the
result must pass :func:`python_syntax_error` (``ast.parse``) before it is
offered. Every refusal is a :class:`StepResult` with a human-readable
``reason``; nothing here raises on bad model output.

Diffs are parsed with ``unidiff``; missing ``---``/``+++`` headers are added.
``unidiff`` silently ignores lines it does not understand (and lines past a
hunk's stated length), so every non-blank line of the diff must be accounted
for, or the diff is refused: a hunk whose header undercounts its body would
otherwise be applied in part.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from os.path import commonprefix
from typing import Literal

from unidiff import PatchSet
from unidiff.errors import UnidiffParseError

from model_runtime.errors import EditseqError

from .editpath import Hunk, split_edits

__all__ = [
    "OFFSET_WINDOW",
    "POSITION_ENCODINGS",
    "DiffError",
    "DiffKind",
    "Placement",
    "Position",
    "Range",
    "SequenceResult",
    "StaleDocumentError",
    "StepResult",
    "TextEdit",
    "apply_diff",
    "apply_edit_sequence",
    "apply_text_edits",
    "parse_diff",
    "python_syntax_error",
    "text_edits",
]

#: How many lines either way a hunk with context may be moved from its stated position.
OFFSET_WINDOW = 5

#: LSP position encodings: UTF-16 code units (LSP default, VS Code), bytes (Neovim), code points.
POSITION_ENCODINGS = ("utf-16", "utf-8", "utf-32")

DiffKind = Literal["lintseq", "unified"]
Validator = Callable[[str], "str | None"]

_HEADERLESS_PREFIX = "--- a\n+++ b\n"
# Lines of a diff that are not hunk bodies but are fine to see: file headers,
# git metadata, hunk headers and the no-newline marker.
_NON_BODY = re.compile(
    r"^(--- |\+\+\+ |diff --git |index |\\ |@@ -\d+(,\d+)? \+\d+(,\d+)? @@)"
)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class DiffError(EditseqError, ValueError):
    """A diff that cannot be read; the message is the reason shown to the user."""


class StaleDocumentError(ValueError):
    """The document changed since the step was computed; its edits would clobber the change."""


def python_syntax_error(text: str) -> str | None:
    """``None`` if ``text`` parses as Python, else a one-line reason naming the line.

    ``ast.parse`` is the running interpreter's own grammar, so what passes here
    is what the user's Python will accept.
    """
    try:
        ast.parse(text.removeprefix("\ufeff"))  # a UTF-8 BOM, which Python accepts in a file
    except SyntaxError as exc:
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    except (ValueError, RecursionError, MemoryError, SystemError) as exc:  # NUL bytes, absurd nesting
        return f"{type(exc).__name__}: {exc}"
    return None


# --------------------------------------------------------------------------- parsing


def parse_diff(diff: str) -> list[Hunk]:
    """Parse one diff (with or without file headers) into hunks, or raise :class:`DiffError`.

    Refused: no hunk at all, more than one file, a truncated hunk, and any
    non-blank line that belongs to no hunk.
    """
    text = diff.replace("\r\n", "\n")
    if not text.strip():
        raise DiffError("empty diff")
    if not text.endswith("\n"):
        text += "\n"
    added = 0
    if not text.lstrip("\n").startswith(("--- ", "diff --git ")):
        text, added = _HEADERLESS_PREFIX + text, _HEADERLESS_PREFIX.count("\n")
    try:
        patch = PatchSet(text)
    except UnidiffParseError as exc:
        hint = " (truncated?)" if "shorter" in str(exc) else ""
        raise DiffError(f"malformed diff: {exc}{hint}") from None
    if len(patch) > 1:
        raise DiffError(f"the diff edits {len(patch)} files; a step edits one document")
    if not patch or not len(patch[0]):
        raise DiffError("no hunk found (expected '@@ -a,b +c,d @@' lines)")
    kept = [_hunk_lines(hunk) for hunk in patch[0]]
    _check_all_lines_used(text.split("\n"), kept, added)
    return [_to_hunk(hunk, lines) for hunk, lines in zip(patch[0], kept)]


def _hunk_lines(hunk) -> list:
    """The hunk's body lines up to its header counts.

    ``unidiff`` appends blank lines that follow a complete hunk to it as
    context; they are separators, not content.
    """
    lines, old, new = [], 0, 0
    for line in hunk:
        if line.line_type == "\\":
            continue
        if old == hunk.source_length and new == hunk.target_length:
            break
        old += line.line_type in (" ", "-")
        new += line.line_type in (" ", "+")
        lines.append(line)
    return lines


def _check_all_lines_used(diff_lines: list[str], kept: list[list], added: int) -> None:
    used = {line.diff_line_no - 1 for lines in kept for line in lines}  # unidiff counts from 1
    for number, line in enumerate(diff_lines):
        if number in used or not line.strip() or _NON_BODY.match(line):
            continue
        raise DiffError(
            f"diff line {number + 1 - added} belongs to no hunk "
            f"(stray text, or a header that undercounts its body): {line[:60]!r}"
        )


def _to_hunk(hunk, lines: list) -> Hunk:
    body = tuple(line.line_type + line.value.removesuffix("\n") for line in lines)
    return Hunk(
        hunk.source_start, hunk.source_length, hunk.target_start, hunk.target_length, body,
        str(hunk).rstrip("\n"),
    )


# --------------------------------------------------------------------------- applying


@dataclass(frozen=True, slots=True)
class Placement:
    """Where hunk ``hunk`` (1-based) went: its first line (1-based) in the file as it stood,
    how far that is from the stated position, and whether whitespace had to be ignored."""

    hunk: int
    line: int
    offset: int
    whitespace_insensitive: bool


@dataclass(frozen=True, slots=True)
class StepResult:
    """One diff applied to ``old``: ``new`` is the result, or ``old`` again with a ``reason``."""

    old: str
    new: str
    diff: str
    reason: str = ""
    placements: tuple[Placement, ...] = ()

    @property
    def applied(self) -> bool:
        return not self.reason

    def text_edits(self, document: str, encoding: str = "utf-16") -> list[TextEdit]:
        """Minimal edits turning ``document`` into this step's result.

        Raises :class:`StaleDocumentError` if ``document`` is not the text the
        step was applied to: edits computed against another text would undo
        whatever the user typed meanwhile.
        """
        if document != self.old:
            raise StaleDocumentError("the document changed since this step was computed")
        return text_edits(self.old, self.new, encoding)


@dataclass(frozen=True, slots=True)
class SequenceResult:
    """A diff sequence applied step by step from ``start``.

    ``steps`` holds the applied steps and, if one was refused, that one last;
    the diffs after a refused step are in ``not_attempted``, because they were
    written against a file that includes the refused one.
    """

    start: str
    steps: tuple[StepResult, ...]
    not_attempted: tuple[str, ...] = ()

    @property
    def applied(self) -> tuple[StepResult, ...]:
        return tuple(step for step in self.steps if step.applied)

    @property
    def rejection(self) -> StepResult | None:
        return next((step for step in self.steps if not step.applied), None)

    @property
    def program(self) -> str:
        """The text after the last applied step (``start`` if none applied)."""
        applied = self.applied
        return applied[-1].new if applied else self.start

    @property
    def ok(self) -> bool:
        return self.rejection is None


class _Refused(Exception):
    """Internal: a hunk cannot be placed; the message is the reason."""


def apply_diff(
    text: str,
    diff: str,
    *,
    kind: DiffKind = "unified",
    validate: Validator | None = python_syntax_error,
) -> StepResult:
    """Apply one diff to ``text`` as a single step (all hunks or none).

    ``kind`` says which side of the hunk headers gives positions (see the
    module docstring). ``validate`` returns a reason when the result is not
    acceptable (default: it must parse as Python); ``None`` skips the check,
    for documents that are not Python.
    """
    if kind not in ("lintseq", "unified"):
        raise ValueError(f"unknown diff kind {kind!r}; choose 'lintseq' or 'unified'")
    try:
        hunks = parse_diff(diff)
    except DiffError as exc:
        return StepResult(text, text, diff, str(exc))
    eol = _line_ending(text)
    lines = text.split(eol) if text else []
    try:
        placements = _apply_hunks(lines, hunks, kind)
    except _Refused as exc:
        return StepResult(text, text, diff, str(exc))
    new = eol.join(lines)
    problem = validate(new) if validate else None
    if problem:
        return StepResult(text, text, diff, f"the result does not parse: {problem}")
    return StepResult(text, new, diff, "", tuple(placements))


def apply_edit_sequence(
    completion: str | Sequence[str],
    start: str = "",
    *,
    kind: DiffKind = "lintseq",
    eos_token: str | None = None,
    validate: Validator | None = python_syntax_error,
) -> SequenceResult:
    """Apply a ``<|diff|>``-separated completion (or a list of diffs) step by step.

    The first refused step ends the sequence: later steps are positioned
    against a file that includes it, so applying them would misplace code.
    """
    diffs = split_edits(completion, eos_token) if isinstance(completion, str) else [
        d for d in completion if d.strip()
    ]
    steps: list[StepResult] = []
    current = start
    for number, diff in enumerate(diffs, start=1):
        step = apply_diff(current, diff, kind=kind, validate=validate)
        if not step.applied:
            step = StepResult(current, current, diff, f"step {number}: {step.reason}")
            steps.append(step)
            return SequenceResult(start, tuple(steps), tuple(diffs[number:]))
        steps.append(step)
        current = step.new
    return SequenceResult(start, tuple(steps))


def _line_ending(text: str) -> str:
    """``\\r\\n`` for a file that uses it throughout, else ``\\n``.

    Model diffs never carry ``\\r``; keeping the document's line ending means
    inserted lines get it too and context compares equal.
    """
    newlines = text.count("\n")
    return "\r\n" if newlines and text.count("\r\n") == newlines else "\n"


def _apply_hunks(lines: list[str], hunks: list[Hunk], kind: DiffKind) -> list[Placement]:
    """Apply every hunk to ``lines`` in place (the caller passes a throwaway list)."""
    placements = []
    shift = carry = floor = 0
    for number, hunk in enumerate(hunks, start=1):
        if kind == "lintseq":
            stated = hunk.new_start - 1 if hunk.new_len else hunk.new_start
        else:
            stated = (hunk.old_start - 1 if hunk.old_len else hunk.old_start) + shift
        expected = stated + carry
        at, fuzzy = _place(lines, hunk, expected, floor, number)
        _splice(lines, hunk, at)
        carry += at - expected
        shift += hunk.new_len - hunk.old_len
        floor = at + hunk.new_len
        placements.append(Placement(number, at + 1, at - stated, fuzzy))
    return placements


def _normalise(line: str) -> str:
    return " ".join(line.split())


def _place(lines: list[str], hunk: Hunk, expected: int, floor: int, number: int) -> tuple[int, bool]:
    """Index where ``hunk``'s old lines start, and whether whitespace was ignored."""
    old = hunk.removed
    if not old:
        if not 0 <= expected <= len(lines):
            raise _Refused(
                f"hunk {number}: insertion after line {expected} is outside the file "
                f"({len(lines)} lines)"
            )
        return expected, False
    loose = [_normalise(line) for line in old]
    found = []  # (tier, distance, index): tier 0 exact, 1 whitespace-insensitive
    for offset in range(-OFFSET_WINDOW, OFFSET_WINDOW + 1):
        at = expected + offset
        if (offset and at < floor) or at < 0 or at + len(old) > len(lines):
            continue
        window = lines[at : at + len(old)]
        if window == old:
            found.append((0, abs(offset), at))
        elif [_normalise(line) for line in window] == loose:
            found.append((1, abs(offset), at))
    if not found:
        raise _Refused(
            f"hunk {number}: its context/removed lines (first: {old[0][:60]!r}) are not in the "
            f"file within {OFFSET_WINDOW} lines of line {expected + 1}; "
            "the diff was written against different text"
        )
    found.sort()
    best = found[0]
    ties = [at for tier, distance, at in found if (tier, distance) == best[:2]]
    if len(ties) > 1:
        where = " and ".join(str(at + 1) for at in ties)
        raise _Refused(
            f"hunk {number} is ambiguous: it fits equally well at lines {where}; "
            "refusing to guess"
        )
    return best[2], best[0] == 1


def _splice(lines: list[str], hunk: Hunk, at: int) -> None:
    """Replace the hunk's old lines at ``at``, keeping the document's own context lines."""
    segment, cursor = [], at
    for line in hunk.body:
        tag, content = line[:1], line[1:]
        if tag == " ":
            segment.append(lines[cursor])
            cursor += 1
        elif tag == "-":
            cursor += 1
        else:
            segment.append(content)
    lines[at:cursor] = segment


# --------------------------------------------------------------------------- LSP edits


@dataclass(frozen=True, slots=True)
class Position:
    """0-based line and character, the character counted in the negotiated encoding's units."""

    line: int
    character: int


@dataclass(frozen=True, slots=True)
class Range:
    start: Position
    end: Position


@dataclass(frozen=True, slots=True)
class TextEdit:
    """Replace ``range`` of the original document with ``new_text`` (LSP ``TextEdit`` semantics)."""

    range: Range
    new_text: str


def _check_encoding(encoding: str) -> None:
    if encoding not in POSITION_ENCODINGS:
        raise ValueError(f"unknown position encoding {encoding!r}; use one of {POSITION_ENCODINGS}")


def _units(text: str, encoding: str) -> int:
    if encoding == "utf-16":
        return len(text.encode("utf-16-le", "surrogatepass")) // 2
    if encoding == "utf-8":
        return len(text.encode("utf-8", "surrogatepass"))
    return len(text)


def lsp_lines(text: str) -> list[str]:
    """Lines with their breaks, split where LSP splits (``\\n``, ``\\r\\n``, ``\\r`` only).

    ``str.splitlines`` also splits at form feeds and U+2028, which editors do
    not, and would shift every later line number.
    """
    out, pos = [], 0
    for match in _LINE_BREAK.finditer(text):
        out.append(text[pos : match.end()])
        pos = match.end()
    if pos < len(text):
        out.append(text[pos:])
    return out


def advance(line: int, text: str, encoding: str) -> Position:
    """The position reached from the start of ``line`` after ``text``."""
    breaks = list(_LINE_BREAK.finditer(text))
    if breaks:
        return Position(line + len(breaks), _units(text[breaks[-1].end() :], encoding))
    return Position(line, _units(text, encoding))


def text_edits(old: str, new: str, encoding: str = "utf-16") -> list[TextEdit]:
    """Minimal LSP edits that turn ``old`` into ``new``.

    Minimal means unchanged lines are never rewritten (``difflib`` opcodes over
    lines), and within a changed region the common prefix and suffix are
    trimmed, so a one-character fix is a one-character edit and the user's
    cursor, folds and marks elsewhere survive. A ``\\r\\n`` is never split.
    """
    _check_encoding(encoding)
    a, b = lsp_lines(old), lsp_lines(new)
    edits = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        before, after = "".join(a[i1:i2]), "".join(b[j1:j2])
        prefix = len(commonprefix([before, after]))
        room = min(len(before), len(after)) - prefix
        suffix = len(commonprefix([before[::-1], after[::-1]])[:room])
        if 0 < prefix < len(before) and before[prefix - 1 : prefix + 1] == "\r\n":
            prefix -= 1
        end = len(before) - suffix
        if 0 < end < len(before) and before[end - 1 : end + 1] == "\r\n":
            suffix -= 1
            end += 1
        edits.append(
            TextEdit(
                Range(advance(i1, before[:prefix], encoding), advance(i1, before[:end], encoding)),
                after[prefix : len(after) - suffix],
            )
        )
    return edits


def _offset(table: list[tuple[int, str]], position: Position, encoding: str) -> int:
    """String index of an LSP position; raises ``ValueError`` if it is not on a character boundary."""
    if not 0 <= position.line < len(table):
        raise ValueError(f"line {position.line} is outside the document ({len(table)} lines)")
    start, content = table[position.line]
    units = 0
    for index, char in enumerate(content):
        if units == position.character:
            return start + index
        units += _units(char, encoding)
        if units > position.character:
            raise ValueError(f"{position} falls inside a character")
    if units == position.character:
        return start + len(content)
    raise ValueError(f"{position} is past the end of line {position.line}")


def apply_text_edits(text: str, edits: Sequence[TextEdit], encoding: str = "utf-16") -> str:
    """Apply LSP edits to ``text`` as an editor does: all ranges refer to the original text.

    Edits must not overlap; insertions at the same position keep their order.
    Raises ``ValueError`` for overlapping edits and positions that are off the
    document or inside a character.
    """
    _check_encoding(encoding)
    table, pos = [], 0
    for match in _LINE_BREAK.finditer(text):
        table.append((pos, text[pos : match.start()]))
        pos = match.end()
    table.append((pos, text[pos:]))
    spans = sorted(
        ((_offset(table, e.range.start, encoding), _offset(table, e.range.end, encoding), e.new_text)
         for e in edits),
        key=lambda span: span[:2],
    )
    out, cursor = [], 0
    for start, end, new_text in spans:
        if start < cursor or end < start:
            raise ValueError("text edits overlap or have a reversed range")
        out += [text[cursor:start], new_text]
        cursor = end
    out.append(text[cursor:])
    return "".join(out)
