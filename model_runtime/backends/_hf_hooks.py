"""The pieces that sit inside ``model.generate``: per-token watching and detokenising.

Kept apart from :mod:`.transformers_backend` because defining a
``StoppingCriteria`` subclass imports torch and transformers; that module
imports this one only when it actually generates.

Why a stopping criterion rather than a streamer: transformers calls the
criteria with the whole batch after every token, *before* it decides whether
to go on, so one hook can read each candidate's new token, cut diffs and
stop strings, end exactly the candidates that are finished, and honour a
cancellation before the next token.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import torch
from transformers import StoppingCriteria

from .streaming import CandidateTracker

__all__ = ["IncrementalDecoder", "TokenWatcher"]


class IncrementalDecoder:
    """Decodes a token stream piece by piece, exactly as decoding it whole would.

    A token may end inside a multi-byte character, and some tokenizers
    (SentencePiece) change a token's text depending on what precedes it, so
    each new piece is the difference between decoding a short window with
    and without the newest tokens; nothing is returned while the text ends in
    an incomplete character.
    """

    def __init__(self, tokenizer) -> None:
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is not None:  # the Rust decoder, without transformers' Python layers
            self._decode = lambda ids: backend.decode(ids, skip_special_tokens=False)
        else:
            self._decode = lambda ids: tokenizer.decode(
                ids, skip_special_tokens=False, clean_up_tokenization_spaces=False
            )
        self._ids: list[int] = []
        self._prefix = 0  # start of the context window
        self._read = 0  # tokens already turned into text
        # tokenizers >= 0.21 does the same window arithmetic in Rust, one call per token.
        stream = _decode_stream() if backend is not None else None
        self._stream, self._backend, self._emitted = stream, backend, 0

    def push(self, token: int) -> str:
        self._ids.append(token)
        if self._stream is not None:
            piece = self._stream.step(self._backend, token) or ""
            self._emitted += len(piece)
            return piece
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self._prefix, self._read = self._read, len(self._ids)
            return after[len(before) :]
        return ""

    def flush(self) -> str:
        """Whatever is held back (an incomplete character decodes as U+FFFD)."""
        if self._stream is not None:  # once per candidate: the whole text, less what went out
            rest = self._decode(self._ids)[self._emitted:]
            self._emitted += len(rest)
            return rest
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        self._prefix = self._read = len(self._ids)
        return after[len(before) :]


def _decode_stream():
    try:
        from tokenizers.decoders import DecodeStream
    except ImportError:  # tokenizers < 0.21
        return None
    return DecodeStream(skip_special_tokens=False)


class TokenWatcher(StoppingCriteria):
    """Feeds each row's new token to its candidates; says which rows are finished.

    ``rows[r]`` lists the candidates row ``r`` of the batch produces: one
    each when sampling, all ``k`` of them for greedy decoding (identical by
    definition, so computed once).
    """

    def __init__(
        self,
        tokenizer,
        rows: Sequence[Sequence[CandidateTracker]],
        eos_ids: Sequence[int],
        cancels: Sequence[threading.Event],
    ) -> None:
        self.rows = rows
        self.decoders = [IncrementalDecoder(tokenizer) for _ in rows]
        self.eos_ids = frozenset(eos_ids)
        self.cancels = cancels
        self._none_done: torch.Tensor | None = None

    @property
    def cancelled(self) -> bool:
        return any(c.is_set() for c in self.cancels)

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        for row, token in enumerate(input_ids[:, -1].tolist()):
            trackers = self.rows[row]
            if trackers[0].done:  # finished rows receive padding
                continue
            if token in self.eos_ids:  # not counted: it carries no text
                self._add(row, self.decoders[row].flush(), tokens=0)
                for tracker in trackers:
                    tracker.finish("stop")
            else:
                self._add(row, self.decoders[row].push(token))
        if self.cancelled:
            done = [True] * len(self.rows)
        else:
            done = [trackers[0].done for trackers in self.rows]
        if not any(done):  # the usual step: one tensor made once, not one per token
            if self._none_done is None or self._none_done.device != input_ids.device:
                self._none_done = torch.zeros(len(self.rows), dtype=torch.bool, device=input_ids.device)
            return self._none_done
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    def finish(self, reason: str) -> None:
        """After ``generate``: end every candidate still open, with its held-back text."""
        for row, trackers in enumerate(self.rows):
            if not trackers[0].done:
                self._add(row, self.decoders[row].flush(), tokens=0)
            for tracker in trackers:
                tracker.finish(reason)

    def _add(self, row: int, text: str, tokens: int = 1) -> None:
        for tracker in self.rows[row]:
            tracker.add(text, tokens)
