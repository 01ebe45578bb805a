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

import logging
import threading

from lsprotocol import types as t
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInternalError,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcServerNotInitialized,
)
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


#: A request already answered with an error while it was being read (see ``structure_message``).
_ANSWERED = object()


class EditseqProtocol(LanguageServerProtocol):
    """pygls' protocol, with cancel events for long commands (see the module docstring)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cancel_events: dict[object, threading.Event] = {}
        self._initialize_seen = False

    def structure_message(self, data):
        """pygls raises on a request whose params do not fit the method and the request is never
        answered; here it is answered with the error, by its id, and otherwise dropped."""
        try:
            return super().structure_message(data)
        except (JsonRpcInvalidParams, JsonRpcInternalError) as exc:
            if not (isinstance(data, dict) and "id" in data and isinstance(data.get("method"), str)):
                raise
            error = type(exc)(f"invalid params for {data['method']}").to_response_error()
            self._send_response(data["id"], None, error)
            return _ANSWERED

    def handle_message(self, message) -> None:
        if message is _ANSWERED:
            return
        if self._shutdown and getattr(message, "method", t.EXIT) != t.EXIT and hasattr(message, "id"):
            # pygls drops requests after shutdown without an answer; the client would wait for ever.
            error = JsonRpcInvalidRequest(f"{message.method} after shutdown: only exit is accepted")
            self._send_response(message.id, None, error.to_response_error())
            return
        super().handle_message(message)

    def _handle_notification(self, method_name: str, params) -> None:
        """pygls files each notification's future under a fresh id and never removes it: about 4 KB
        stayed behind for every ``didOpen``/``didClose``/``didChange``. Finished ones go here (a
        finished request's is removed when its answer is sent, so any finished one left is such)."""
        super()._handle_notification(method_name, params)
        futures = self._request_futures
        for key in [key for key, future in futures.items() if future.done()]:
            futures.pop(key, None)

    def _handle_request(self, msg_id, method_name: str, params) -> None:
        """The protocol's session states, which pygls leaves to the server: before ``initialize`` a
        request gets -32002 (not an internal error with a traceback); a second ``initialize`` is
        refused (it would drop every open document); after ``shutdown`` only ``exit`` is taken."""
        refusal = None
        if method_name == t.INITIALIZE:
            if self._initialize_seen:
                refusal = JsonRpcInvalidRequest("the server is already initialized")
            self._initialize_seen = True
        elif not self._initialize_seen:
            refusal = JsonRpcServerNotInitialized(f"{method_name} before initialize")
        if refusal is not None:
            self._send_response(msg_id, None, refusal.to_response_error())
            return
        super()._handle_request(msg_id, method_name, params)

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


#: The largest message body read (a real one is a document: maxFileBytes is at most 50 MB).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: The longest header line read at once.
MAX_HEADER_BYTES = 64 * 1024


class BoundedInput:
    """The server's standard input, with bounds pygls's framing does not have.

    pygls reads a body with ``read(Content-Length)``, and CPython's buffered
    read allocates that size at once: a ``Content-Length`` of 10^12 killed the
    server with ``MemoryError``. Here a body over :data:`MAX_MESSAGE_BYTES` ends
    the input instead (logged; the server then exits 1, as for a client that
    went away), and a header line is read at most :data:`MAX_HEADER_BYTES` at a
    time. What stays pygls's: a wrong but modest ``Content-Length`` still
    desynchronises the stream (framing has no way to find the next message).
    """

    def __init__(self, raw) -> None:
        self._raw = raw

    def readline(self) -> bytes:
        return self._raw.readline(MAX_HEADER_BYTES)

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > MAX_MESSAGE_BYTES:
            logging.getLogger(__name__).error(
                "a message claims %s bytes (the limit is %s): closing the connection", n, MAX_MESSAGE_BYTES)
            return b""
        return self._raw.read(n)
