"""A finished run's steps in LSP terms: a prefix as a ``WorkspaceEdit``, its title, step 1 as ghost text.

Pure functions of an :class:`~.runs.Outcome`; whether the outcome still
applies is checked by the caller (:meth:`~.runbook.RunBook.step_edit`).

The edit is a ``TextDocumentEdit`` pinned to the version the run started
from, so a client applies it to that text or refuses it; every piece of it
is an ``AnnotatedTextEdit`` naming its step, with the step's label and the
failure or lint result behind it as the ``ChangeAnnotation``. Clients that
declare neither versioned document changes nor annotations (Neovim 0.11
declares neither) get plain ``changes``; the server then relies on its own
staleness check, made just before the edit is handed out.

Ghost text (``textDocument/inlineCompletion``) can only insert at the cursor.
A run whose first step (checked to parse, like every step) adds text exactly
where the cursor is can be shown that way in Neovim 0.12 and VS Code with no
custom protocol; anything else stays a code action.
"""

from __future__ import annotations

import dataclasses

from lsprotocol import types as t

from model_runtime.edits.step_edits import prefix_edits

from .protocol import for_user
from .runs import Outcome

__all__ = ["first_step_insertion", "prefix_title", "prefix_workspace_edit"]


def prefix_title(outcome: Outcome, k: int, done: int = 0) -> str:
    """``step 1/3: ...``, ``steps 1-2/3: ...``, and for all steps ``steps 1-3, passes 5/5 tests (2 failing +
    3 passing in their files)``: the counts say what was checked. With ``done`` steps applied already
    the rest count from there: ``step 2/3: ...``, ``steps 2-3, passes ...``."""
    n, label, first = outcome.steps, outcome.labels[k - 1], done + 1
    name = outcome.request.function
    if k < n:
        return for_user(f"{name} step {k}/{n}: {label}" if k == first else f"{name} steps {first}-{k}/{n}: {label}")
    steps = f"step {n}/{n}" if first == n else f"steps {first}-{n}"
    if not outcome.tested:
        return for_user(f"{name} {steps}, parses (no tests run)")
    verdict = "passes" if outcome.verified else "not verified:"
    checked = f" ({outcome.checked})" if outcome.checked else ""
    return for_user(f"{name} {steps}, {verdict} {outcome.passed}/{outcome.total} tests{checked}")


def _range(r) -> t.Range:
    return t.Range(start=t.Position(line=r.start.line, character=r.start.character),
                   end=t.Position(line=r.end.line, character=r.end.character))


def prefix_workspace_edit(outcome: Outcome, k: int, version: int, encoding: str,
                          capabilities: t.ClientCapabilities, done: int = 0) -> t.WorkspaceEdit:
    """Steps ``done+1..k`` of ``outcome`` as one edit of the document at ``version`` (which holds
    ``outcome.texts[done]``)."""
    workspace_edit = capabilities.workspace and capabilities.workspace.workspace_edit
    versioned = bool(workspace_edit and workspace_edit.document_changes)
    annotated = versioned and workspace_edit.change_annotation_support is not None
    uri, n = outcome.request.uri, outcome.steps
    pieces = [dataclasses.replace(p, step=p.step + done) for p in prefix_edits(outcome.texts[done:], k - done, encoding)]
    if not versioned:
        return t.WorkspaceEdit(changes={uri: [t.TextEdit(range=_range(p.edit.range), new_text=p.edit.new_text)
                                              for p in pieces]})
    annotations = None
    if annotated:
        edits = [t.AnnotatedTextEdit(range=_range(p.edit.range), new_text=p.edit.new_text,
                                     annotation_id=f"editseq-{outcome.id}-{p.step}") for p in pieces]
        annotations = {
            f"editseq-{outcome.id}-{j}": t.ChangeAnnotation(
                label=f"step {j}/{n}: {outcome.labels[j - 1]}", description=outcome.reasons[j - 1],
                needs_confirmation=False)
            for j in sorted({p.step for p in pieces})
        }
    else:
        edits = [t.TextEdit(range=_range(p.edit.range), new_text=p.edit.new_text) for p in pieces]
    document = t.TextDocumentEdit(
        text_document=t.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version), edits=edits)
    return t.WorkspaceEdit(document_changes=[document], change_annotations=annotations)


def first_step_insertion(outcome: Outcome, position: t.Position, encoding: str, done: int = 0) -> str | None:
    """The text the next step (``done + 1``) inserts at ``position``, or ``None`` if it is anything else."""
    if outcome.steps <= done:
        return None
    pieces = prefix_edits(outcome.texts[done:], 1, encoding)
    if len(pieces) != 1:
        return None
    edit = pieces[0].edit
    start, end = edit.range.start, edit.range.end
    if (start.line, start.character) != (end.line, end.character):
        return None
    if (start.line, start.character) != (position.line, position.character):
        return None
    return edit.new_text
