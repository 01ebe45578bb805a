"""The JSON-RPC protocol with one addition: ``$/cancelRequest`` reaches long commands.

pygls answers a cancelled ``workspace/executeCommand`` at once but lets the
command's coroutine run on (clients.md §1.4, pitfall 2), so a cancelled
refinement would keep the model and the tests busy. Commands register a
:class:`threading.Event` under their request id; a cancel for that id sets it,
which stops the engine (model and sandbox) within a fraction of a second.

Shutdown while a request is in flight: pygls cancels the pending requests
while iterating over the very dict their callbacks remove them from, and
fails the ``shutdown`` request ("dictionary changed size during
iteration"). :meth:`cancel_pending` cancels them first, over a copy.
"""

from __future__ import annotations

import threading

from pygls.protocol import LanguageServerProtocol

__all__ = ["EditseqProtocol"]


class EditseqProtocol(LanguageServerProtocol):
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
