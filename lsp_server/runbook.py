"""The server's runs, in flight and finished: shared while they run, offered while their text holds.

In flight: each run (write or refine) is one call into the engine
(:func:`~.runs.execute`) on a small run pool, and its progress comes back to
the event loop with ``call_soon_threadsafe``. A run is shared: the resolve of
a code action, and the command it falls back to when it takes longer than
``resolveTimeout``, attach to the same run (same :attr:`~.runs.RunRequest.key`)
rather than starting another.

Finished: a run with steps leaves an :class:`~.runs.Outcome`, one per function
and document, which remembers the text before and after each step. Its
remaining steps are offered while the document holds one of those texts:
after step 1 is applied, steps 2.. are still offered from there, and an undo
back to the original offers all of them again. Any other text offers nothing,
but the outcome is kept (undo may come back to it) until the function runs
again or the document closes. The check is repeated when an edit is handed out
(:meth:`RunBook.step_edit`), so no client ever gets an edit computed on
another text.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lsprotocol import types as t

from model_runtime.run.config import RunConfig

from .edits import prefix_workspace_edit
from .model_host import ModelHost
from .protocol import RunFailed
from .runs import Outcome, RunRequest, execute

log = logging.getLogger(__name__)

__all__ = ["Run", "RunBook"]


class Run:
    """A run in flight: its cancel event, its future on the loop, and who listens to its progress."""

    def __init__(self, request: RunRequest) -> None:
        self.request = request
        self.cancel = threading.Event()
        self.future: asyncio.Future | None = None
        self.listeners: list[Callable[[str], None]] = []
        self.last = ""

    def say(self, message: str) -> None:
        self.last = message
        for listener in list(self.listeners):
            listener(message)


class RunBook:
    """Runs in flight (by request key) and finished outcomes (by document); see the module docstring.

    ``document(uri)`` is the open document at ``uri`` or ``None``: staleness is
    judged against what the editor holds now.
    """

    def __init__(self, host: ModelHost, document: Callable[[str], Any]) -> None:
        self.host = host
        self._document = document
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="editseq-run")
        self._running: dict[tuple, Run] = {}
        self._outcomes: dict[str, list[Outcome]] = {}

    # -- in flight ------------------------------------------------------------------------

    def start(self, request: RunRequest, config: RunConfig) -> Run:
        """The run for ``request``: the one already in flight, or a new one on the run pool (call on the loop)."""
        run = self._running.get(request.key)
        # A cancelled run may still be winding down; a new request must not inherit its cancel.
        if run is not None and not run.future.done() and not run.cancel.is_set():
            return run
        run = self._running[request.key] = Run(request)
        loop = asyncio.get_running_loop()
        backend_future = self.host.backend(config)
        say = lambda message: loop.call_soon_threadsafe(run.say, message)  # noqa: E731

        def work() -> Outcome:
            say("loading the model" if not backend_future.done() else "starting")
            backend = backend_future.result()
            return execute(request, config, backend, run.cancel, say)

        self.host.run_started()
        log.info("%s %s::%s started (tests: %s)", request.action, request.path, request.function,
                 ", ".join(request.tests) or "none")
        run.future = asyncio.wrap_future(self._pool.submit(work))
        run.future.add_done_callback(lambda future: self._finished(run, future))
        return run

    def _finished(self, run: Run, future: asyncio.Future) -> None:
        self.host.run_finished()
        if self._running.get(run.request.key) is run:
            del self._running[run.request.key]
        request = run.request
        if future.cancelled() or future.exception() is not None:
            why = "cancelled" if future.cancelled() else f"failed: {future.exception()}"
            log.info("%s %s::%s %s", request.action, request.path, request.function, why)
            return
        outcome = future.result()
        log.info("%s %s::%s: %s", request.action, request.path, request.function, outcome.summary)
        if outcome.steps and not run.cancel.is_set():
            kept = [o for o in self._outcomes.get(outcome.request.uri, [])
                    if o.request.function != outcome.request.function]
            self._outcomes[outcome.request.uri] = [*kept, outcome]

    @staticmethod
    async def wait(run: Run) -> Outcome:
        """The run's outcome; the engine's errors (and :class:`~.model_host.ModelUnavailable`) come through as
        they are, all :class:`~model_runtime.errors.EditseqError`. Cancelling the wait leaves the run going."""
        return await asyncio.shield(run.future)

    def cancel_all(self) -> None:
        for run in list(self._running.values()):
            run.cancel.set()

    def close(self, wait_seconds: float = 0.0) -> None:
        """Cancel every run and stop the pool; with ``wait_seconds``, wait that long at most for the
        runs to wind down (their test processes killed) before returning."""
        self.cancel_all()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if wait_seconds > 0:
            waiter = threading.Thread(target=self._pool.shutdown, kwargs={"wait": True}, daemon=True)
            waiter.start()
            waiter.join(wait_seconds)

    # -- finished -------------------------------------------------------------------------

    def position(self, outcome: Outcome) -> tuple[int, int] | None:
        """``(version, done)``: the document holds ``outcome.texts[done]`` (steps ``1..done`` applied, some
        left) at ``version``; ``None`` if it holds none of them."""
        doc = self._document(outcome.request.uri)
        if doc is None:
            return None
        if doc.version == outcome.request.version:
            return doc.version, 0
        source = doc.source
        done = next((j for j, text in enumerate(outcome.texts[:-1]) if text == source), None)
        return None if done is None else (doc.version, done)

    def outcomes(self, uri: str, function: str | None = None) -> list[tuple[Outcome, int]]:
        """``(outcome, done)`` for each outcome with steps left to offer in ``uri`` (of ``function``, if given)."""
        found = []
        for outcome in self._outcomes.get(uri, []):
            if function is None or outcome.request.function == function:
                position = self.position(outcome)
                if position is not None:
                    found.append((outcome, position[1]))
        return found

    def forget(self, uri: str) -> None:
        """Forget every outcome of ``uri`` (the document was closed)."""
        self._outcomes.pop(uri, None)

    def find(self, run_id: str) -> Outcome:
        """The outcome with ``run_id``, or :class:`RunFailed` if it was dropped."""
        outcome = next((o for group in self._outcomes.values() for o in group if o.id == run_id), None)
        if outcome is None:
            raise RunFailed("this run's result is gone (the document changed); run it again")
        return outcome

    def step_edit(self, outcome: Outcome, k: int, encoding: str,
                  capabilities: t.ClientCapabilities) -> t.WorkspaceEdit:
        """Steps up to ``k`` of ``outcome`` (those not applied yet) as an edit of the document as it is now,
        checked fresh just before."""
        position = self.position(outcome)
        if position is None or not position[1] < k <= outcome.steps:
            raise RunFailed("the document changed since this run, or these steps are applied already "
                            "(run it again)")
        version, done = position
        return prefix_workspace_edit(outcome, k, version, encoding, capabilities, done=done)
