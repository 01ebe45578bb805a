"""Generation through any OpenAI-compatible ``/v1/completions`` endpoint.

This is the scale-out path: the model runs in a server on the user's GPU
(vLLM, or anything speaking the same protocol, such as
:mod:`model_runtime.backends.openai_server`) and the editor talks to it over HTTP.
Serve a LintSeq model folder with vLLM like this::

    vllm serve ./model_dir --served-model-name lsp --host 127.0.0.1 --port 8000 \\
        --max-model-len 2048 [--api-key KEY]

then use ``OpenAIConfig(base_url="http://127.0.0.1:8000/v1", model="lsp")``.

Every request is streamed (Server-Sent Events; with ``n > 1`` the choices
interleave by ``index``), so a diff is shown as soon as it is complete, and
``generate`` is the same stream collected. Greedy requests ask for one choice
and copy it ``k`` times, as the in-process backend does (greedy candidates are
identical; some servers refuse ``n > 1`` at temperature 0).

By default the body carries ``"skip_special_tokens": false`` (a vLLM extra
that others ignore): vLLM otherwise drops special tokens from the text, and
with them ``<|diff|>`` in models that registered it as special.

Failures are :class:`~.base.EndpointError` subclasses: unreachable,
timed out, HTTP error status (with an excerpt of the body), malformed answer.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from model_runtime import defaults

from .base import (
    DoneEvent,
    EndpointError,
    EndpointHTTPError,
    EndpointTimeout,
    EndpointUnreachable,
    GenerationRequest,
    GenerationResult,
    MalformedResponse,
    ModelLoadError,
    StreamEvent,
)
from .streaming import CandidateTracker

__all__ = ["OpenAIBackend", "OpenAIConfig"]

_EXCERPT = 300


@dataclass(frozen=True, slots=True)
class OpenAIConfig:
    """Where the endpoint is and how long to wait for it."""

    base_url: str = defaults.ENDPOINT
    #: The served model name (vLLM's ``--served-model-name``).
    model: str = "lsp"
    api_key: str | None = None
    connect_timeout_s: float = 5.0
    #: Longest silence tolerated while waiting for the next streamed chunk.
    read_timeout_s: float = 120.0
    #: Merged into every request body last (server-specific extras).
    extra_body: dict[str, Any] = field(default_factory=lambda: {"skip_special_tokens": False})


class OpenAIBackend:
    """The :class:`~.base.Backend` for an OpenAI-compatible HTTP endpoint."""

    name = "openai"

    def __init__(self, config: OpenAIConfig | None = None) -> None:
        self.config = config or OpenAIConfig()
        self._client = None
        self._client_lock = threading.Lock()

    def load(self) -> None:
        """Check that the endpoint answers and serves ``config.model``."""
        with self._errors("/models"):
            response = self._http().get("/models")
            self._raise_for_status(response, "/models")
        try:
            served = [m["id"] for m in response.json()["data"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedResponse(
                f"{self._url('/models')}: not a model list: {_excerpt(response.text)}"
            ) from exc
        if self.config.model not in served:
            raise ModelLoadError(
                f"{self.config.base_url} does not serve model {self.config.model!r} (it serves {served})"
            )

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def generate(self, request: GenerationRequest, cancel: threading.Event | None = None) -> GenerationResult:
        for event in self.stream(request, cancel):
            if isinstance(event, DoneEvent):
                return event.result
        raise AssertionError("stream ended without a DoneEvent")  # stream() always ends with one

    def stream(
        self,
        request: GenerationRequest,
        cancel: threading.Event | None = None,
        *,
        text_deltas: bool = False,
    ) -> Iterator[StreamEvent]:
        events: list[StreamEvent] = []
        trackers = [CandidateTracker(i, request.stop, events.append, text_deltas) for i in range(request.k)]
        choices = [trackers] if request.greedy else [[t] for t in trackers]
        start = time.perf_counter()
        prompt_tokens = None
        with self._errors("/completions"):
            body = self._body(request, len(choices))
            with self._http().stream("POST", "/completions", json=body) as response:
                self._raise_for_status(response, "/completions")
                for chunk in _sse_chunks(response, self._url("/completions")):
                    if "error" in chunk:  # vLLM (and our server) report failures mid-stream this way
                        raise EndpointError(
                            f"{self._url('/completions')} failed while streaming: "
                            f"{_error_excerpt(json.dumps(chunk))}"
                        )
                    usage = chunk.get("usage")
                    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
                        prompt_tokens = usage["prompt_tokens"]
                    for choice in chunk.get("choices") or ():
                        self._apply(choice, choices)
                    yield from events
                    events.clear()
                    if cancel is not None and cancel.is_set():
                        break
        cancelled = cancel is not None and cancel.is_set()
        for group in choices:
            if not group[0].done and not cancelled:
                raise MalformedResponse(
                    f"{self._url('/completions')}: stream ended without a finish_reason for choice "
                    f"{group[0].index}"
                )
            for tracker in group:
                tracker.finish("cancelled")
        yield from events
        result = GenerationResult(
            completions=tuple(t.completion for t in trackers),
            prompt_tokens=prompt_tokens,
            seconds=time.perf_counter() - start,
        )
        yield DoneEvent(result)

    # -- protocol details ------------------------------------------------------------

    def _body(self, request: GenerationRequest, n: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.config.model,
            "prompt": request.prompt,
            "n": n,
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.seed is not None:
            body["seed"] = request.seed
        if request.stop:
            body["stop"] = list(request.stop)
        body.update(self.config.extra_body)
        return body

    def _apply(self, choice: Any, choices: list[list[CandidateTracker]]) -> None:
        """One streamed choice: text for candidate ``index``, maybe its finish."""
        url = self._url("/completions")
        if not isinstance(choice, dict):
            raise MalformedResponse(f"{url}: a choice is not an object: {_excerpt(json.dumps(choice))}")
        index, text, reason = choice.get("index"), choice.get("text", ""), choice.get("finish_reason")
        if not isinstance(index, int) or not 0 <= index < len(choices):
            raise MalformedResponse(f"{url}: choice index {index!r} is not one of the {len(choices)} asked")
        if not isinstance(text, str) or not (reason is None or isinstance(reason, str)):
            raise MalformedResponse(f"{url}: choice {index} has no text or a bad finish_reason")
        for tracker in choices[index]:  # one chunk per token, as vLLM and our server stream
            tracker.add(text, tokens=1 if text else 0)
            if reason is not None:
                tracker.finish(reason)

    def _http(self):
        with self._client_lock:
            if self._client is None:
                import httpx

                headers = {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
                self._client = httpx.Client(
                    base_url=self.config.base_url.rstrip("/"),
                    headers=headers,
                    timeout=httpx.Timeout(self.config.read_timeout_s, connect=self.config.connect_timeout_s),
                )
            return self._client

    def _url(self, path: str) -> str:
        return self.config.base_url.rstrip("/") + path

    def _raise_for_status(self, response, path: str) -> None:
        if response.status_code >= 400:
            response.read()
            raise EndpointHTTPError(response.status_code, self._url(path), _error_excerpt(response.text))

    @contextmanager
    def _errors(self, path: str):
        """httpx's exceptions, as this package's."""
        import httpx

        url = self._url(path)
        try:
            yield
        except httpx.ConnectError as exc:
            raise EndpointUnreachable(f"cannot connect to {url}: {exc} (is the server running?)") from exc
        except httpx.TimeoutException as exc:
            raise EndpointTimeout(f"{url} did not answer in time ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise EndpointError(f"request to {url} failed: {type(exc).__name__}: {exc}") from exc


def _sse_chunks(response, url: str) -> Iterator[dict]:
    """The JSON objects of an SSE completion stream, up to ``data: [DONE]``."""
    kind = response.headers.get("content-type", "")
    if not kind.startswith("text/event-stream"):
        response.read()
        raise MalformedResponse(
            f"{url}: expected an event stream, got {kind or 'no content type'}: {_excerpt(response.text)}"
        )
    data: list[str] = []
    for line in response.iter_lines():
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
            continue
        if line or not data:  # comments, other fields, blank keep-alives
            continue
        payload, data = "\n".join(data), []
        if payload == "[DONE]":
            return
        try:
            chunk = json.loads(payload)
        except ValueError:
            raise MalformedResponse(f"{url}: an event is not JSON: {_excerpt(payload)}") from None
        if not isinstance(chunk, dict):
            raise MalformedResponse(f"{url}: an event is not a JSON object: {_excerpt(payload)}")
        yield chunk
    if data != ["[DONE]"]:  # a server may close right after its last line, blank or not
        raise MalformedResponse(f"{url}: the stream ended before data: [DONE]")


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "..."


def _error_excerpt(body: str) -> str:
    """The server's own message when the body is an OpenAI error object, else the body itself."""
    try:
        message = json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return _excerpt(body)
    return _excerpt(str(message))
