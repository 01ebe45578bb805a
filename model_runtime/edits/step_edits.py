"""A run's steps as editor edits: the text after each step, and which step made each change.

An editor offers "apply steps 1..k" as one edit of the document as it was
when the run started; a reviewer still wants to see which step (and which
failure or lint message behind it) each change comes from. So the edit of a
prefix is the minimal edit from the original to step ``k``'s text, and every
piece of it is attributed to the last step that touched its lines, found by
carrying each line's origin through the steps one diff at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import SequenceMatcher

from .diff_apply import Range, TextEdit, advance, lsp_lines, apply_diff, text_edits

__all__ = ["AttributedEdit", "prefix_edits", "step_summary", "step_texts"]


@dataclass(frozen=True, slots=True)
class AttributedEdit:
    """An LSP edit against the original text and the 1-based step it belongs to."""

    edit: TextEdit
    step: int


def step_texts(original: str, diffs: list[str]) -> list[str]:
    """``[original, after step 1, ...]`` from file diffs that each apply to the previous text.

    Raises ``ValueError`` if a diff does not apply (the steps are not a chain).
    """
    texts = [original]
    for number, diff in enumerate(diffs, 1):
        step = apply_diff(texts[-1], diff)
        if not step.applied:
            raise ValueError(f"step {number} does not apply: {step.reason}")
        texts.append(step.new)
    return texts


def prefix_edits(texts: list[str], k: int, encoding: str = "utf-16") -> list[AttributedEdit]:
    """Edits from ``texts[0]`` to ``texts[k]``, each with the step that last changed its lines."""
    origin: list[int] = [0] * len(lsp_lines(texts[0]))  # 0: original line, j: written by step j
    original_index = list(range(len(origin)))
    deleted_at: dict[int, int] = {}
    current = lsp_lines(texts[0])
    for step in range(1, k + 1):
        after = lsp_lines(texts[step])
        new_origin, new_index = [], []
        for tag, i1, i2, j1, j2 in SequenceMatcher(None, current, after, autojunk=False).get_opcodes():
            if tag == "equal":
                new_origin += origin[i1:i2]
                new_index += original_index[i1:i2]
                continue
            for i in range(i1, i2):
                if original_index[i] is not None:
                    deleted_at[original_index[i]] = step
            new_origin += [step] * (j2 - j1)
            new_index += [None] * (j2 - j1)
        current, origin, original_index = after, new_origin, new_index
    lines0 = lsp_lines(texts[0])
    opcodes = [op for op in SequenceMatcher(None, lines0, current, autojunk=False).get_opcodes() if op[0] != "equal"]
    edits = text_edits(texts[0], texts[k], encoding)
    assert len(opcodes) == len(edits), "text_edits makes one edit per changed region"
    out = []
    for (_, i1, i2, j1, j2), edit in zip(opcodes, edits):
        runs = _runs(origin[j1:j2], k)
        if len(runs) <= 1:
            steps = [deleted_at[i] for i in range(i1, i2) if i in deleted_at] + [s for s in origin[j1:j2] if s]
            out.append(AttributedEdit(edit, max(steps, default=k)))
            continue
        # Lines from several steps in one region: one line-level edit per step, in order, so each
        # step's annotation covers exactly its own lines.
        start = advance(i1, "", encoding)
        end = advance(i1, "".join(lines0[i1:i2]), encoding)
        at = j1
        for number, (step, count) in enumerate(runs):
            text = "".join(current[at : at + count])
            span = Range(start, end) if number == 0 else Range(end, end)
            out.append(AttributedEdit(TextEdit(span, text), step))
            at += count
    return out


def _runs(origins: list[int], k: int) -> list[tuple[int, int]]:
    """``[(step, line count), ...]`` for consecutive lines written by the same step."""
    runs: list[tuple[int, int]] = []
    for step in origins:
        step = step or k
        if runs and runs[-1][0] == step:
            runs[-1] = (step, runs[-1][1] + 1)
        else:
            runs.append((step, 1))
    return runs


def step_summary(old: str, new: str, width: int = 60) -> str:
    """A short label for one step: its first added line, else what it removed."""
    a, b = old.splitlines(), new.splitlines()
    added, removed = [], 0
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag != "equal":
            added += [line.strip() for line in b[j1:j2] if line.strip()]
            removed += i2 - i1
    if added:
        text = added[0]
        return text if len(text) <= width else text[: width - 3] + "..."
    return f"remove {removed} line{'s' * (removed != 1)}"
