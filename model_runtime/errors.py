"""The one base of every error the engine raises for a user.

A front end (the CLI, the pytest plugin, the language server) catches
:class:`EditseqError` and shows its message; it never matches on the text.
Messages say what went wrong and what to do, without a program name in front:
each front end adds its own (``editseq refine: ...``, ``editseq: ...``).
Errors keep their older bases too (``ValueError`` for bad input), so code that
caught those still does.
"""

from __future__ import annotations

__all__ = ["EditseqError"]


class EditseqError(Exception):
    """An error a user can act on: bad input, a model or server that cannot be used, a run that cannot start."""
