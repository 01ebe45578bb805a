"""Turning a candidate's growing text into diff events, the same way for every backend.

Backends deliver text in pieces of any size (a token, an SSE chunk); an
editor wants whole diffs. :class:`DiffSplitter` cuts the text at each
``<|diff|>`` as soon as it is complete and applies stop strings, so that the
diffs streamed are exactly :func:`~model_runtime.edits.editpath.split_edits` of the
final text. :class:`CandidateTracker` adds the bookkeeping (token count,
finish reason, events). :func:`iterate_in_thread` runs a blocking generation
in a worker thread and hands its events to the caller as an iterator.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence

from model_runtime.edits.editpath import DIFF_TOKEN, split_edits

from .base import CandidateEvent, Completion, EditEvent, StreamEvent, TextEvent

__all__ = ["CandidateTracker", "DiffSplitter", "iterate_in_thread"]

Emit = Callable[[StreamEvent], None]


class DiffSplitter:
    """Accumulates one candidate's text; returns each diff once it is closed.

    A stop string cuts the text where it starts (it is not part of the text)
    and ends the candidate; what precedes it becomes the last diff.

    Each :meth:`feed` costs O(chunk + longest stop string), whatever the text
    so far: the text is kept in pieces (joined once, by :attr:`text`), the
    open diff too, and the scans for ``<|diff|>`` and the stop strings look
    only at the new chunk plus the tail that could complete a match.
    """

    def __init__(self, stop: Sequence[str] = ()) -> None:
        self.stopped = False
        self._stop = tuple(s for s in stop if s)
        self._longest = max((len(s) for s in self._stop), default=0)
        self._parts: list[str] = []  # the text, in pieces
        self._length = 0
        self._joined = ""  # cache of "".join(self._parts)
        self._open: list[str] = []  # the open (not yet closed) diff, in pieces
        self._open_tail = ""  # its last len(DIFF_TOKEN) - 1 characters: where a split token may start
        self._tail = ""  # the text's last self._longest - 1 characters: where a stop string may start

    @property
    def text(self) -> str:
        if len(self._joined) != self._length:
            self._joined = "".join(self._parts)
            self._parts = [self._joined]
        return self._joined

    def between(self, start: int, end: int) -> str:
        """``text[start:end]`` for a recent ``start``, without joining the whole text."""
        pieces, offset = [], self._length
        for part in reversed(self._parts):
            if offset <= start:
                break
            pieces.append(part)
            offset -= len(part)
        recent = "".join(reversed(pieces))
        return recent[start - offset:end - offset]

    def feed(self, chunk: str) -> list[str]:
        """Add text; return the diffs it completes (all remaining ones if a stop string hit)."""
        if self.stopped or not chunk:
            return []
        if self._stop:
            window = self._tail + chunk
            cuts = [i for i in (window.find(s) for s in self._stop) if i >= 0]
            if cuts:  # keep what precedes the stop string; the tail part of it was kept already
                chunk = chunk[: max(0, min(cuts) - len(self._tail))]
                self._drop_tail(len(self._tail) - min(min(cuts), len(self._tail)))
                self.stopped = True
        diffs = self._add(chunk)
        if self.stopped:
            diffs += self.finish()
        return diffs

    def _add(self, chunk: str) -> list[str]:
        if not chunk:
            return []
        self._parts.append(chunk)
        self._length += len(chunk)
        if self._longest > 1:
            self._tail = (self._tail + chunk)[-(self._longest - 1):]
        diffs = []
        window = self._open_tail + chunk  # the open tail may hold the start of a split <|diff|>
        while (end := window.find(DIFF_TOKEN)) >= 0:
            diffs += split_edits("".join(self._open) + window[:end])
            self._open, window = [], window[end + len(DIFF_TOKEN):]
        self._set_open_tail(window)
        return diffs

    def _set_open_tail(self, window: str) -> None:
        """The open diff ends with ``window``: all but its last characters can no longer start a token."""
        keep = len(DIFF_TOKEN) - 1
        if len(window) > keep:
            self._open.append(window[:-keep])
            window = window[-keep:]
        self._open_tail = window

    def _drop_tail(self, count: int) -> None:
        """Take back the last ``count`` characters (the start of a stop string split across chunks)."""
        if count <= 0:
            return
        text = self.text[: self._length - count]
        self._parts, self._length, self._joined = [text], len(text), text
        self._tail = text[-(self._longest - 1):] if self._longest > 1 else ""
        opened = "".join(self._open) + self._open_tail
        self._open = []
        self._set_open_tail(opened[: max(0, len(opened) - count)])

    @property
    def settled(self) -> int:
        """How much of :attr:`text` is final: all of it, less a tail that may start a stop string."""
        if self.stopped:
            return self._length
        tail = self._tail
        for size in range(min(self._longest - 1, len(tail)), 0, -1):
            if any(s.startswith(tail[-size:]) for s in self._stop):
                return self._length - size
        return self._length

    def finish(self) -> list[str]:
        """End of text: the open diff, if it has any content, is complete."""
        rest = "".join(self._open) + self._open_tail
        self._open, self._open_tail = [], ""
        return split_edits(rest)


class CandidateTracker:
    """One candidate of a request: its text, token count, events and final :class:`Completion`."""

    def __init__(
        self, index: int, stop: Sequence[str] = (), emit: Emit | None = None, text_deltas: bool = False
    ) -> None:
        self.index = index
        self.new_tokens = 0
        self.completion: Completion | None = None
        self._splitter = DiffSplitter(stop)
        self._emit = emit
        self._text_deltas = text_deltas
        self._sent = 0  # text handed out in TextEvents
        self._steps = 0

    @property
    def done(self) -> bool:
        return self.completion is not None

    def add(self, text: str, tokens: int = 1) -> None:
        """Record ``tokens`` new tokens that decoded to ``text``; finishes on a stop string."""
        if self.done:
            return
        self.new_tokens += tokens
        diffs = self._splitter.feed(text)
        if self._emit is not None:
            self._emit_text(self._splitter.settled)
            self._emit_diffs(diffs)
        if self._splitter.stopped:
            self.finish("stop")

    def finish(self, reason: str) -> Completion:
        """End the candidate (idempotent: the first reason wins)."""
        if self.completion is None:
            rest = self._splitter.finish()
            if self._emit is not None:
                self._emit_text(len(self._splitter.text))
                self._emit_diffs(rest)
            self.completion = Completion(self.index, self._splitter.text, self.new_tokens, reason)
            if self._emit is not None:
                self._emit(CandidateEvent(self.completion))
        return self.completion

    def _emit_text(self, end: int) -> None:
        """Hand out text up to ``end``; text that may still turn into a stop string waits."""
        if self._text_deltas and end > self._sent:
            self._emit(TextEvent(self.index, self._splitter.between(self._sent, end)))
            self._sent = end

    def _emit_diffs(self, diffs: list[str]) -> None:
        for diff in diffs:
            self._steps += 1
            self._emit(EditEvent(self.index, self._steps, diff))


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = object()


def iterate_in_thread(
    work: Callable[[Emit, threading.Event], None], name: str = "editseq-generate"
) -> Iterator[StreamEvent]:
    """Run ``work(emit, abandoned)`` in a worker thread and yield what it emits.

    Generation blocks (a ``generate`` call owns the thread until it returns),
    so it runs beside the caller; events cross over through a queue. An
    exception in the worker is re-raised in the caller. If the caller stops
    iterating, ``abandoned`` is set, which the work treats as a cancellation,
    and the worker is joined so that the model is free when this returns.
    """
    events: queue.Queue = queue.Queue()
    abandoned = threading.Event()

    def target() -> None:
        try:
            work(events.put, abandoned)
        except BaseException as exc:  # handed to the caller, who decides
            events.put(_Failure(exc))
        finally:
            events.put(_END)

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    try:
        while (item := events.get()) is not _END:
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        abandoned.set()
        thread.join()
