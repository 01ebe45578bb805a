"""editseq's protocol definitions: its names in LSP, how its messages reach the user, and the JSON-RPC class.

Names: the commands (``editseq.write``, ``editseq.refine``, ``editseq.apply``),
the code action kinds, and the ``editseq/status`` notification are defined
here once; the editor plugins (``editors/``) use the same strings.

Messages: every message the server shows (a ``window/showMessage``, an error
answer, a progress end, a code action title) starts with ``editseq: ``, added
by :func:`for_user` at the one place the message is shown. Neither the
engine's messages (:class:`~model_runtime.errors.EditseqError`) nor the
server's own (:class:`RunFailed`, :class:`~.model_host.ModelUnavailable`,
the settings problems) carry it, so it is never doubled nor missing.

The protocol class adds one thing to pygls': ``$/cancelRequest`` reaches long
commands. pygls answers a cancelled ``workspace/executeCommand`` at once but
lets the command's coroutine run on (clients.md §1.4, pitfall 2), so a
cancelled refinement would keep the model and the tests busy. Commands
register a :class:`threading.Event` under their request id; a cancel for that
id sets it, which stops the engine (model and sandbox) within a fraction of a
second.

Shutdown while a request is in flight: pygls cancels the pending requests
while iterating over the very dict their callbacks remove them from, and
fails the ``shutdown`` request ("dictionary changed size during
iteration"). :meth:`EditseqProtocol.cancel_pending` cancels them first, over a copy.
"""

from __future__ import annotations

import threading

from lsprotocol import types as t
from pygls.exceptions import JsonRpcException
from pygls.protocol import LanguageServerProtocol

from model_runtime.errors import EditseqError

__all__ = ["APPLY_COMMAND", "CODE_ACTION_KINDS", "COMMANDS", "FIX_KIND", "PREFIX", "STATUS_METHOD", "WRITE_KIND",
           "EditseqProtocol", "RunFailed", "action_kind", "for_user", "request_failed"]

#: The notification that carries the model's state (``loading``, ``ready``, ``busy``, ``error``) to the client.
STATUS_METHOD = "editseq/status"
WRITE_KIND = "refactor.rewrite.editseq"
FIX_KIND = "quickfix.editseq"
CODE_ACTION_KINDS = (WRITE_KIND, FIX_KIND)
#: The command each kind of run goes through; a "fix" is a refine against the failing test.
COMMANDS = {"write": "editseq.write", "refine": "editseq.refine", "fix": "editseq.refine"}
APPLY_COMMAND = "editseq.apply"
#: What every message and title the server shows starts with (see the module docstring).
PREFIX = "editseq: "


class RunFailed(EditseqError):
    """A run could not start, or its result is gone; the message (without :data:`PREFIX`) says why."""


def for_user(message: object) -> str:
    """``message`` (text or an error) as the user sees it: with :data:`PREFIX`, added here only."""
    return f"{PREFIX}{message}"


def action_kind(action: str) -> str:
    """The code action kind of a run's ``action`` (``write``, ``refine`` or ``fix``)."""
    return FIX_KIND if action == "fix" else WRITE_KIND


def request_failed(exc: EditseqError) -> JsonRpcException:
    """LSP's ``RequestFailed``: the request was valid, the work could not be done; the message says why."""
    return JsonRpcException(for_user(exc), code=t.LSPErrorCodes.RequestFailed.value)


class EditseqProtocol(LanguageServerProtocol):
    """pygls' protocol, with cancel events for long commands (see the module docstring)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cancel_events: dict[object, threading.Event] = {}

    def _handle_cancel_notification(self, msg_id) -> None:
        super()._handle_cancel_notification(msg_id)
        event = self.cancel_events.get(msg_id)
        if event is not None:
            event.set()

    def cancel_pending(self) -> None:
        """Cancel every request in flight except the current one (see the module docstring)."""
        current = self.msg_id
        for msg_id, future in list(self._request_futures.items()):
            if msg_id != current and not future.done():
                future.cancel()
        for event in self.cancel_events.values():
            event.set()
