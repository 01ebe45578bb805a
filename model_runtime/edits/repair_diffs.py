"""The ``cycle`` answer for a repair: unified-diff steps that turn the faulty code into the good code.

CYCLE's model answers a repair prompt with the whole good program; ours
answers with a *sequence* of unified diffs (the ``cycle`` format in
:mod:`model_runtime.prompting.formats`), so a fix reaches the editor as reviewable
steps. Training data therefore needs, for every (faulty, good) pair, the
diff sequence the model should write. :func:`repair_diffs` makes it:

1. The two texts are aligned line by line: a longest common subsequence
   of lines, ties broken towards matching lines at the same position
   (:func:`align`), so swapping two ``return`` lines reads as two one-line
   replacements, not as a line moved across the function (``difflib``'s
   matcher picks the first longest block and would move it). Every maximal
   run of unmatched lines is a *changed block*.
2. Blocks are applied in file order, one step each. A step is positioned
   against the text as it stands after the previous steps (the ``-a,b`` side
   of its hunk header numbers lines in that text), in ``difflib``'s unified
   spelling with ``context`` lines of context and no file headers, exactly
   what :func:`~model_runtime.edits.diff_apply.apply_diff` (``kind="unified"``)
   applies.
3. The applier refuses a step whose result does not parse
   (``ast.parse``), so a block whose intermediate text would not parse (say,
   a new ``if`` line whose body is the next block) is merged with the
   following blocks until it does; the merged step may hold several hunks.
4. The result is checked by applying it: the steps must give ``good``
   exactly, or :class:`RepairDiffError` says why.

Texts are split on ``\\n`` only, as the applier splits them (a final newline
is an empty last line); texts with other line breaks (``\\r``, form feed,
``\\x1c``..., U+2028) or the ``<|diff|>`` separator cannot be written as
``cycle`` answers and are refused.
"""

from __future__ import annotations

import difflib
import re

from model_runtime.errors import EditseqError

from .diff_apply import apply_edit_sequence, python_syntax_error
from .editpath import DIFF_TOKEN

__all__ = ["DEFAULT_CONTEXT", "RepairDiffError", "align", "apply_repair", "repair_diffs"]

#: Context lines around each change, as ``diff -u`` and GNU ``patch`` use.
DEFAULT_CONTEXT = 3

#: Characters that some line splitter (``str.splitlines``, unidiff) would treat as a line break.
_OTHER_BREAKS = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


class RepairDiffError(EditseqError, ValueError):
    """No valid ``cycle`` answer leads from the faulty code to the good code; the message says why."""


def _lines(text: str) -> list[str]:
    """Lines as the applier sees them (``text.split("\\n")``, nothing for an empty text)."""
    return text.split("\n") if text else []


def _check_text(text: str, name: str) -> None:
    if DIFF_TOKEN in text:
        raise RepairDiffError(f"the {name} code contains {DIFF_TOKEN}, the diff separator")
    bad = _OTHER_BREAKS.search(text)
    if bad:
        raise RepairDiffError(f"the {name} code contains a line break other than \\n ({bad.group()!r})")
    for line in text.split("\n"):
        # In a diff body these would read as file headers ('--- ', '+++ ') once prefixed.
        if line.startswith(("-- ", "++ ")):
            raise RepairDiffError(f"the {name} code has a line that would read as a diff header: {line[:40]!r}")


#: Above this many cells (lines x lines) the alignment falls back to ``difflib``'s matcher.
_ALIGN_CELLS = 400_000

Opcode = tuple[str, int, int, int, int]


def align(a: list[str], b: list[str]) -> list[Opcode]:
    """``difflib``-style opcodes (``equal``, ``replace``, ``delete``, ``insert``) from ``a`` to ``b``.

    The matched lines are a longest common subsequence; among those, the one
    whose matched lines are least displaced (sum of ``|i - j|``) wins, so a
    line is kept in place rather than matched far away. Quadratic, which is
    nothing for a function; very long texts use ``difflib`` instead.
    """
    n, m = len(a), len(b)
    if n * m > _ALIGN_CELLS:
        return difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    weight = (n + m + 1) ** 2  # one more match always beats any displacement saved
    score = [[0] * (m + 1) for _ in range(n + 1)]  # best for a[i:], b[j:]
    for i in range(n - 1, -1, -1):
        row, below = score[i], score[i + 1]
        for j in range(m - 1, -1, -1):
            best = below[j] if below[j] >= row[j + 1] else row[j + 1]
            if a[i] == b[j]:
                matched = below[j + 1] + weight - abs(i - j)
                if matched > best:
                    best = matched
            row[j] = best
    pairs, i, j = [], 0, 0
    while i < n and j < m:
        if a[i] == b[j] and score[i][j] == score[i + 1][j + 1] + weight - abs(i - j):
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif score[i][j] == score[i + 1][j]:
            i += 1
        else:
            j += 1
    opcodes: list[Opcode] = []
    i = j = 0
    for pi, pj in [*pairs, (n, m)]:
        if i < pi or j < pj:
            tag = "replace" if i < pi and j < pj else ("delete" if i < pi else "insert")
            opcodes.append((tag, i, pi, j, pj))
        if (pi, pj) != (n, m):
            if opcodes and opcodes[-1][0] == "equal":
                _, i1, _, j1, _ = opcodes.pop()
                opcodes.append(("equal", i1, pi + 1, j1, pj + 1))
            else:
                opcodes.append(("equal", pi, pi + 1, pj, pj + 1))
        i, j = pi + 1, pj + 1
    return opcodes


class _Given(difflib.SequenceMatcher):
    """A matcher that reports given opcodes, so ``get_grouped_opcodes`` groups them with context."""

    def __init__(self, opcodes: list[Opcode]) -> None:
        super().__init__(None, [], [])
        self._given = opcodes

    def get_opcodes(self):
        return list(self._given) or [("equal", 0, 0, 0, 0)]


def _range(start: int, stop: int) -> str:
    """One side of a hunk header, as ``difflib.unified_diff`` spells it."""
    length = stop - start
    if length == 1:
        return str(start + 1)
    return f"{start if not length else start + 1},{length}"


def _unified(old: list[str], new: list[str], opcodes: list[Opcode], context: int) -> str:
    """``old`` to ``new`` as unified-diff hunks (no file headers) for the given alignment."""
    out: list[str] = []
    for group in _Given(opcodes).get_grouped_opcodes(context):
        first, last = group[0], group[-1]
        out.append(f"@@ -{_range(first[1], last[2])} +{_range(first[3], last[4])} @@")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out.extend(" " + line for line in old[i1:i2])
                continue
            out.extend("-" + line for line in old[i1:i2])
            out.extend("+" + line for line in new[j1:j2])
    return "\n".join(out)


def repair_diffs(faulty: str, good: str, *, context: int = DEFAULT_CONTEXT) -> list[str]:
    """The diff steps (one per changed block where possible) that turn ``faulty`` into ``good``.

    Returns ``[]`` when the texts are equal. Raises :class:`RepairDiffError`
    if ``good`` does not parse (the applier would refuse the last step), if a
    text cannot be written in a diff (see the module docstring), or if the
    steps do not reproduce ``good`` exactly when applied (a bug: never seen in
    the property tests).
    """
    if context < 0:
        raise ValueError(f"context must be >= 0, got {context}")
    if faulty == good:
        return []
    for text, name in ((faulty, "faulty"), (good, "good")):
        _check_text(text, name)
    problem = python_syntax_error(good)
    if problem:
        raise RepairDiffError(f"the good code does not parse: {problem}")
    a, b = _lines(faulty), _lines(good)
    blocks = [op for op in align(a, b) if op[0] != "equal"]
    diffs: list[str] = []
    done_a = done_b = 0  # the text now is b[:done_b] + a[done_a:]
    group: list[Opcode] = []
    for number, block in enumerate(blocks, start=1):
        group.append(block)
        _, _, i2, _, j2 = block
        state = b[:j2] + a[i2:]
        if number < len(blocks) and (state == [""] or python_syntax_error("\n".join(state))):
            # Merge with the next block: the applier refuses a step that does not parse, and
            # reads an empty text as no lines at all, not as one empty line.
            continue
        current = b[:done_b] + a[done_a:]
        diffs.append(_unified(current, state, _step_opcodes(group, done_a, done_b, len(current), len(state)), context))
        done_a, done_b, group = i2, j2, []
    if apply_repair(faulty, diffs) != good:
        raise RepairDiffError("internal error: the repair diffs do not reproduce the good code")
    return diffs


def _step_opcodes(group: list[Opcode], done_a: int, done_b: int, old_len: int, new_len: int) -> list[Opcode]:
    """The opcodes from the text before a step to the text after it (only ``group`` differs).

    Before the step, line ``i`` of the faulty text (``i >= done_a``) sits at
    ``i - done_a + done_b``; after it, lines of the good text up to the group's
    end sit at their own index and the faulty text's rest follows.
    """
    opcodes: list[Opcode] = []
    old_at = new_at = 0
    for tag, i1, i2, j1, j2 in group:
        o1, o2 = i1 - done_a + done_b, i2 - done_a + done_b
        if o1 > old_at:
            opcodes.append(("equal", old_at, o1, new_at, j1))
        opcodes.append((tag, o1, o2, j1, j2))
        old_at, new_at = o2, j2
    if old_at < old_len:
        opcodes.append(("equal", old_at, old_len, new_at, new_len))
    return opcodes


def apply_repair(faulty: str, diffs: list[str]) -> str | None:
    """The text ``diffs`` lead to from ``faulty`` as the ``cycle`` format applies them, or ``None``
    if a step is refused."""
    result = apply_edit_sequence(diffs, faulty, kind="unified")
    return result.program if result.ok else None
