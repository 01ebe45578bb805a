"""A small OpenAI-compatible completions server that generates with a local model.

Why it exists: the HTTP backend must be tested against a real server that
answers with real generations, and vLLM cannot run here (CUDA-only build, a
different torch pin). The same server lets a user without vLLM share one
loaded model between several editors on one machine.

It serves ``GET /v1/models`` and ``POST /v1/completions`` with ``n``,
``stop``, ``max_tokens``, ``temperature``, ``top_p``, ``seed``, ``stream``
(Server-Sent Events, choices interleaved by ``index``) and
``stream_options.include_usage``; unsupported options (``logprobs``,
``echo``) are refused with HTTP 400 rather than ignored. Generation is the
transformers backend's, so the in-process and HTTP paths give the same text.

Standard library only (``ThreadingHTTPServer``), and bound to 127.0.0.1:
there is no authentication, so it must never listen on a network.

Run it with ``python -m model_runtime.backends.openai_server MODEL_DIR [--port 8000]``.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .base import (
    Backend,
    BackendError,
    BackendOutOfMemory,
    CandidateEvent,
    Completion,
    DoneEvent,
    GenerationRequest,
    GenerationResult,
    TextEvent,
)
from model_runtime.errors import EditseqError

__all__ = ["CompletionServer", "ServerLimits", "main", "parse_completion_request", "running_server"]

HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Bounds on one request, so that one client cannot tie the model up for hours."""

    max_n: int = 16
    max_tokens: int = 4096
    max_stop: int = 16


class ApiError(EditseqError):
    """An error answer (a refused request, a failed generation) as an OpenAI-style error body."""

    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    request: GenerationRequest
    stream: bool
    include_usage: bool


def parse_completion_request(body: Any, limits: ServerLimits = ServerLimits()) -> ParsedRequest:
    """Validate a ``/v1/completions`` body; raise :class:`ApiError` naming the bad field."""
    if not isinstance(body, dict):
        raise ApiError("the request body must be a JSON object")
    for name in ("logprobs", "suffix"):
        if body.get(name) is not None:
            raise ApiError(f"{name} is not supported by this server", name)
    if body.get("echo"):
        raise ApiError("echo is not supported by this server", "echo")
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise ApiError("prompt must be a string (or a list of one string)", "prompt")
    stop = body.get("stop")
    stop = [] if stop is None else [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop) or len(stop) > limits.max_stop:
        raise ApiError(f"stop must be a string or a list of at most {limits.max_stop} strings", "stop")
    seed = body.get("seed")
    if seed is not None and not _is_int(seed):
        raise ApiError("seed must be an integer", "seed")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError("stream must be a boolean", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise ApiError("stream_options must be an object", "stream_options")
    request = GenerationRequest(
        prompt=prompt,
        k=_int(body, "n", 1, 1, limits.max_n),
        max_new_tokens=_int(body, "max_tokens", 16, 1, limits.max_tokens),
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0, low_open=True),
        seed=seed,
        stop=tuple(stop),
    )
    return ParsedRequest(request, stream, bool(options.get("include_usage")))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(body: dict, name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if value is None:
        value = default
    if not _is_int(value) or not low <= value <= high:
        raise ApiError(f"{name} must be an integer from {low} to {high}, got {value!r}", name)
    return value


def _number(body: dict, name: str, default: float, low: float, high: float, low_open: bool = False) -> float:
    value = body.get(name, default)
    if value is None:
        value = default
    ok = (_is_int(value) or isinstance(value, float)) and (low < value if low_open else low <= value)
    if not ok or value > high:
        bracket = "(" if low_open else "["
        raise ApiError(f"{name} must be a number in {bracket}{low}, {high}], got {value!r}", name)
    return float(value)


class CompletionServer(ThreadingHTTPServer):
    """The HTTP server; ``port=0`` picks a free port (see :attr:`base_url`)."""

    daemon_threads = True

    def __init__(
        self,
        backend: Backend,
        model_name: str = "editseq",
        port: int = 0,
        limits: ServerLimits = ServerLimits(),
        verbose: bool = False,
    ) -> None:
        super().__init__((HOST, port), _Handler)
        self.backend = backend
        self.model_name = model_name
        self.limits = limits
        self.verbose = verbose

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/v1"


@contextmanager
def running_server(
    backend: Backend, model_name: str = "editseq", port: int = 0
) -> Iterator[CompletionServer]:
    """A server answering in a background thread for the duration of the ``with`` block."""
    server = CompletionServer(backend, model_name, port)
    thread = threading.Thread(target=server.serve_forever, name="editseq-openai-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _Handler(BaseHTTPRequestHandler):
    server: CompletionServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        if self.path.rstrip("/") != "/v1/models":
            return self._error(ApiError(f"no route GET {self.path}", status=404))
        model = {"id": self.server.model_name, "object": "model", "created": 0, "owned_by": "editseq"}
        self._json(200, {"object": "list", "data": [model]})

    def do_POST(self) -> None:
        try:
            if self.path.rstrip("/") != "/v1/completions":
                raise ApiError(f"no route POST {self.path}", status=404)
            body = self._read_json()
            model = body.get("model") if isinstance(body, dict) else None
            if model is not None and model != self.server.model_name:
                raise ApiError(f"the model `{model}` does not exist", "model", status=404)
            parsed = parse_completion_request(body, self.server.limits)
        except ApiError as exc:
            return self._error(exc)
        except ValueError as exc:  # GenerationRequest's own checks
            return self._error(ApiError(str(exc)))
        if parsed.stream:
            return self._stream(parsed)
        try:
            result = self.server.backend.generate(parsed.request)
        except BackendError as exc:
            status = 503 if isinstance(exc, BackendOutOfMemory) else 500
            return self._error(ApiError(str(exc), status=status))
        choices = [_choice(c, c.text, c.finish_reason) for c in result.completions]
        self._json(200, {**self._envelope(), "choices": choices, "usage": _usage(result)})

    # -- helpers ---------------------------------------------------------------------

    def _read_json(self) -> Any:
        try:
            length = int(self.headers.get("Content-Length", "0"))
            return json.loads(self.rfile.read(length))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(f"the request body is not valid JSON: {exc}") from None

    def _envelope(self) -> dict[str, Any]:
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.server.model_name,
        }

    def _stream(self, parsed: ParsedRequest) -> None:
        """SSE: a chunk per text delta and per finished choice, usage if asked, then ``[DONE]``."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        envelope = self._envelope()
        cancel = threading.Event()
        try:
            with closing(self.server.backend.stream(parsed.request, cancel, text_deltas=True)) as events:
                for event in events:
                    if isinstance(event, TextEvent):
                        self._event({**envelope, "choices": [_choice(event, event.text, None)]})
                    elif isinstance(event, CandidateEvent):
                        done = event.completion
                        self._event({**envelope, "choices": [_choice(done, "", done.finish_reason)]})
                    elif isinstance(event, DoneEvent) and parsed.include_usage:
                        self._event({**envelope, "choices": [], "usage": _usage(event.result)})
            self._send(b"data: [DONE]\n\n")
        except (BrokenPipeError, ConnectionResetError):
            cancel.set()  # the client left; the closed stream already stopped generation
        except BackendError as exc:
            self._event({"error": {"message": str(exc), "type": type(exc).__name__, "code": 500}})

    def _event(self, payload: dict) -> None:
        self._send(b"data: " + json.dumps(payload).encode() + b"\n\n")

    def _send(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()

    def _json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, exc: ApiError) -> None:
        kind = "invalid_request_error" if exc.status < 500 else "server_error"
        self._json(
            exc.status,
            {"error": {"message": exc.message, "type": kind, "param": exc.param, "code": exc.status}},
        )


def _choice(item: TextEvent | Completion, text: str, finish_reason: str | None) -> dict[str, Any]:
    index = item.candidate if isinstance(item, TextEvent) else item.index
    return {"index": index, "text": text, "logprobs": None, "finish_reason": finish_reason}


def _usage(result: GenerationResult) -> dict[str, int]:
    prompt = result.prompt_tokens or 0
    new = result.new_tokens
    return {"prompt_tokens": prompt, "completion_tokens": new, "total_tokens": prompt + new}


def main(argv: list[str] | None = None) -> int:
    from .transformers_backend import TransformersBackend, TransformersConfig

    parser = argparse.ArgumentParser(
        prog="python -m model_runtime.backends.openai_server", description=__doc__.split("\n")[0]
    )
    parser.add_argument("model", help="a transformers model folder or hub id")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--name", default="editseq", help="the served model name clients send")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    backend = TransformersBackend(TransformersConfig(args.model, args.device, args.dtype))
    try:
        backend.load()
    except BackendError as exc:
        parser.exit(1, f"error: {exc}\n")
    server = CompletionServer(backend, args.name, args.port, verbose=args.verbose)
    print(f"serving {args.model} as {args.name!r} on {server.base_url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
