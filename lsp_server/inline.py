"""Inline completion from a finished run: its first step, when that is a pure insertion at the cursor.

Ghost text can only insert at the cursor. A run whose first step (checked to
parse, like every step) adds text exactly where the cursor is can be shown
that way in Neovim 0.12 and VS Code with no custom protocol; anything else
stays a code action.
"""

from __future__ import annotations

from lsprotocol import types as t

from model_runtime.step_edits import prefix_edits

from .runs import Outcome

__all__ = ["first_step_insertion"]


def first_step_insertion(outcome: Outcome, position: t.Position, encoding: str) -> str | None:
    """The text step 1 inserts at ``position``, or ``None`` if step 1 is anything else."""
    if outcome.steps < 1:
        return None
    pieces = prefix_edits(outcome.texts, 1, encoding)
    if len(pieces) != 1:
        return None
    edit = pieces[0].edit
    start, end = edit.range.start, edit.range.end
    if (start.line, start.character) != (end.line, end.character):
        return None
    if (start.line, start.character) != (position.line, position.character):
        return None
    return edit.new_text
