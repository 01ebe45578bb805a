"""What every generation backend takes, returns and raises.

The language server must not care whether a model runs in-process
(transformers) or behind an HTTP endpoint (vLLM or any OpenAI-compatible
server): both take a :class:`GenerationRequest`, return a
:class:`GenerationResult`, and stream the same events, so that an edit can be
shown the moment its diff is complete, whichever backend produced it. Errors
are classes here too, so callers catch one hierarchy (:class:`BackendError`)
and never an exception from torch or httpx.

Pure Python on purpose: importing this module must stay cheap (no torch).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from model_runtime.edits.editpath import split_edits
from model_runtime import defaults
from model_runtime.errors import EditseqError

__all__ = [
    "Backend",
    "BackendError",
    "BackendOutOfMemory",
    "CandidateEvent",
    "Completion",
    "DoneEvent",
    "EditEvent",
    "EndpointError",
    "EndpointHTTPError",
    "EndpointTimeout",
    "EndpointUnreachable",
    "GenerationRequest",
    "GenerationResult",
    "MalformedResponse",
    "MissingDiffToken",
    "ModelLoadError",
    "ModelProfile",
    "StreamEvent",
    "TextEvent",
    "sampled_request",
]


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One prompt, ``k`` candidates. ``temperature == 0`` means greedy decoding.

    ``stop`` strings end a candidate and are not part of its text (OpenAI's
    rule, so both backends agree). ``seed`` makes sampling repeatable.

    A chat request has ``messages`` (``(role, content)`` pairs) and an empty
    ``prompt``: the in-process backend renders them with the model's own chat
    template, an HTTP backend sends them to ``/v1/chat/completions``, so the
    turn markers are always the model's. ``min_new_tokens`` keeps end-of-text
    away for that many tokens (capped by ``max_new_tokens``).
    """

    prompt: str
    k: int = 1
    max_new_tokens: int = defaults.MAX_NEW_TOKENS
    min_new_tokens: int = defaults.MIN_NEW_TOKENS
    messages: tuple[tuple[str, str], ...] = ()
    temperature: float = defaults.TEMPERATURE
    #: 1.0: no nucleus truncation unless asked (front ends ask for ``defaults.TOP_P``).
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))
        if not 1 <= self.k <= 4 * defaults.LIMITS["candidates"]:
            raise ValueError(f"k must be from 1 to {4 * defaults.LIMITS['candidates']}, got {self.k}")
        if not 1 <= self.max_new_tokens <= defaults.LIMITS["max_new_tokens"]:
            raise ValueError(f"max_new_tokens must be from 1 to {defaults.LIMITS['max_new_tokens']}, "
                             f"got {self.max_new_tokens}")
        if not (math.isfinite(self.temperature) and 0 <= self.temperature <= defaults.LIMITS["temperature"]):
            raise ValueError(f"temperature must be from 0 to {defaults.LIMITS['temperature']:g}, got {self.temperature}")
        if self.min_new_tokens < 0:
            raise ValueError(f"min_new_tokens must not be negative, got {self.min_new_tokens}")
        object.__setattr__(self, "min_new_tokens", min(self.min_new_tokens, self.max_new_tokens))
        messages = tuple((str(role), str(content)) for role, content in self.messages)
        object.__setattr__(self, "messages", messages)
        if messages and self.prompt:
            raise ValueError("a request has a prompt or chat messages, not both")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def sampled_request(sampling, prompt, *, k: int = 1, seed_offset: int = 0,
                    stop: tuple[str, ...] = ()) -> GenerationRequest:
    """A request with ``sampling``'s numbers: the one way a budget or settings object becomes a request.

    ``sampling`` is any object with ``max_new_tokens``, ``temperature``,
    ``top_p`` and ``seed`` (the refine budget, the evaluation and collection
    settings) and optionally ``min_new_tokens``; ``seed_offset`` varies the
    seed per problem. ``prompt`` is the text, or ``(role, content)`` chat
    messages. Building the request also checks the numbers, so settings call
    it once when made.
    """
    seed = None if sampling.seed is None else sampling.seed + seed_offset
    messages: tuple = ()
    if not isinstance(prompt, str):
        prompt, messages = "", tuple(prompt)
    return GenerationRequest(prompt=prompt, k=k, max_new_tokens=sampling.max_new_tokens,
                             min_new_tokens=getattr(sampling, "min_new_tokens", defaults.MIN_NEW_TOKENS),
                             messages=messages, temperature=sampling.temperature, top_p=sampling.top_p,
                             seed=seed, stop=stop)


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """What a model was trained to read and write, and so how the refine loop should ask it.

    ``formats`` are prompt format names (``lintseq``, ``cycle``, ``chat``);
    ``repair`` is the model's own repair strategy (``rank``) or ``None``;
    ``origin`` says where the profile came from, for logs and errors
    (``manifest``, ``tokenizer``, ``server``, ``model id``, ``setting``).
    """

    formats: tuple[str, ...]
    repair: str | None = None
    origin: str = ""

    @property
    def writes(self) -> str:
        """The format the model writes a function in: the first of ``lintseq`` and ``chat`` it lists."""
        return next((f for f in self.formats if f in ("lintseq", "chat")), "lintseq")

    @property
    def strategy(self) -> str:
        """The repair strategy ``auto`` stands for with this model."""
        if self.repair == "rank":
            return "rank"
        return "generate" if "cycle" in self.formats else "rewrite"

    def describe(self) -> str:
        return f"formats {', '.join(self.formats) or 'none'} (from the {self.origin or 'defaults'})"


@dataclass(frozen=True, slots=True)
class Completion:
    """One candidate.

    ``text`` is what the model wrote after the prompt, ``<|diff|>`` separators
    included, end-of-text and stop strings excluded. ``finish_reason`` is
    ``"stop"`` (end of text or a stop string), ``"length"`` (``max_new_tokens``
    reached) or ``"cancelled"``; an HTTP server may report others verbatim.
    ``new_tokens`` counts the tokens that carry text (end-of-text excluded);
    over HTTP it is the server's ``usage.completion_tokens`` for a one-choice
    request when the server sends it, else the number of streamed text chunks
    (one per token on vLLM; llama.cpp and Ollama may send several per chunk).
    """

    index: int
    text: str
    new_tokens: int
    finish_reason: str

    @property
    def edits(self) -> list[str]:
        """The non-empty diffs, in order (the same ones :class:`EditEvent` streamed)."""
        return split_edits(self.text)


@dataclass(frozen=True, slots=True)
class GenerationResult:
    """All candidates of one request, in index order."""

    completions: tuple[Completion, ...]
    #: ``None`` where an HTTP server did not say.
    prompt_tokens: int | None
    seconds: float

    @property
    def new_tokens(self) -> int:
        return sum(c.new_tokens for c in self.completions)

    @property
    def cancelled(self) -> bool:
        return any(c.finish_reason == "cancelled" for c in self.completions)


@dataclass(frozen=True, slots=True)
class TextEvent:
    """New text of one candidate (only when asked for: servers relay it, editors need diffs)."""

    candidate: int
    text: str


@dataclass(frozen=True, slots=True)
class EditEvent:
    """A complete diff: its closing ``<|diff|>`` (or the end of the text) has arrived.

    ``step`` counts a candidate's non-empty diffs from 1.
    """

    candidate: int
    step: int
    diff: str


@dataclass(frozen=True, slots=True)
class CandidateEvent:
    """A candidate has finished; no more events for it follow."""

    completion: Completion

    @property
    def candidate(self) -> int:
        return self.completion.index


@dataclass(frozen=True, slots=True)
class DoneEvent:
    """The last event of a stream."""

    result: GenerationResult


StreamEvent = TextEvent | EditEvent | CandidateEvent | DoneEvent


@runtime_checkable
class Backend(Protocol):
    """A way to run a code model.

    ``cancel`` is a :class:`threading.Event` any thread may set: generation
    stops before its next token and unfinished candidates end with
    ``finish_reason == "cancelled"`` (cancelling is not an error). Implementations
    are safe to call from several threads at once.
    """

    name: str

    def load(self) -> None:
        """Make the model ready (load weights, check the endpoint); idempotent."""
        ...

    def generate(
        self, request: GenerationRequest, cancel: threading.Event | None = None
    ) -> GenerationResult:
        """Generate all candidates and return them."""
        ...

    def stream(
        self,
        request: GenerationRequest,
        cancel: threading.Event | None = None,
        *,
        text_deltas: bool = False,
    ) -> Iterator[StreamEvent]:
        """Yield events as generation goes, ending with one :class:`DoneEvent`.

        Closing the iterator early cancels the generation.
        """
        ...


class BackendError(EditseqError):
    """Base of every error a backend raises."""


class ModelLoadError(BackendError):
    """The model (or its tokenizer) could not be loaded."""


class MissingDiffToken(ModelLoadError):
    """The model's tokenizer has no ``<|diff|>`` token, so it cannot speak the edit format."""


class BackendOutOfMemory(BackendError):
    """The device ran out of memory loading the model or generating; the process is fine."""


class EndpointError(BackendError):
    """Talking to an HTTP endpoint failed."""


class EndpointUnreachable(EndpointError):
    """No connection (refused, unknown host)."""


class EndpointTimeout(EndpointError):
    """The endpoint did not answer in time."""


class MalformedResponse(EndpointError):
    """The endpoint answered something that is not the OpenAI completions format."""


class EndpointHTTPError(EndpointError):
    """The endpoint answered with an HTTP error status; ``body`` is an excerpt of its answer."""

    def __init__(self, status: int, url: str, body: str) -> None:
        super().__init__(f"HTTP {status} from {url}: {body}")
        self.status = status
        self.url = url
        self.body = body
