"""A small OpenAI-compatible server that generates with a local model.

Why it exists: the HTTP backend must be tested against a real server that
answers with real generations, and vLLM cannot run here (CUDA-only build, a
different torch pin). The same server lets a user without vLLM share one
loaded model between several editors on one machine.

It serves ``GET /v1/models``, ``POST /v1/completions`` and
``POST /v1/chat/completions`` with ``n``, ``stop``, ``max_tokens``,
``min_tokens`` (vLLM's extra: no end of text before that many tokens),
``temperature``, ``top_p``, ``seed``, ``stream`` (Server-Sent Events, choices
interleaved by ``index``; chat chunks carry ``delta.content`` after a first
role-only delta) and ``stream_options.include_usage``; unsupported options
(``logprobs``, ``echo``, tools) are refused with HTTP 400 rather than
ignored. Generation is the transformers backend's, so the in-process and HTTP
paths give the same text; chat messages are rendered with the model's own
chat template, and a model without one answers the chat route with a 400. Each
``/v1/models`` entry carries an extra ``editseq`` object, the served model's
profile (``{"formats": [...], "repair": ...}``), so that a client can tell a
LintSeq model from a chat model without a setting.

``--max-n N`` (``running_server(max_n=...)``) refuses ``n > N`` the way
llama.cpp's server refuses ``n > 1``; ``running_server(ignore_n=True)``
answers one choice whatever ``n`` asks, as Ollama and LM Studio do. Both exist
so that the HTTP backend's handling of such servers is tested against real
generations.

Standard library only (``ThreadingHTTPServer``), and bound to 127.0.0.1:
there is no authentication, so it must never listen on a network.

Run it with ``python -m model_runtime.backends.openai_server MODEL_DIR [--port 8000] [--max-n N]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
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
    DoneEvent,
    GenerationRequest,
    GenerationResult,
    ModelLoadError,
    TextEvent,
)
from model_runtime.errors import EditseqError

__all__ = ["CompletionServer", "ServerLimits", "main", "parse_chat_request", "parse_completion_request",
           "running_server"]

HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Bounds on one request, so that one client cannot tie the model up for hours."""

    max_n: int = 16
    max_tokens: int = 4096
    max_stop: int = 16
    max_messages: int = 256
    #: Characters of prompt, or of all messages' content together.
    max_chars: int = 1_000_000


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
    if len(prompt) > limits.max_chars:
        raise ApiError(f"prompt must be at most {limits.max_chars} characters", "prompt")
    return _parse_generation(body, limits, prompt, (), default_max_tokens=16)


def parse_chat_request(body: Any, limits: ServerLimits = ServerLimits()) -> ParsedRequest:
    """Validate a ``/v1/chat/completions`` body; raise :class:`ApiError` naming the bad field.

    ``messages`` is a non-empty list of ``{"role": str, "content": str}``
    (text only: no content parts, no tool calls). ``max_tokens`` (or its newer
    name ``max_completion_tokens``) defaults to the server's limit, as a chat
    answer is meant to end by itself.
    """
    if not isinstance(body, dict):
        raise ApiError("the request body must be a JSON object")
    for name in ("logprobs", "top_logprobs", "tools", "functions", "tool_choice", "function_call"):
        if body.get(name):
            raise ApiError(f"{name} is not supported by this server", name)
    messages = body.get("messages")
    if not isinstance(messages, list) or not 1 <= len(messages) <= limits.max_messages:
        raise ApiError(f"messages must be a list of 1 to {limits.max_messages} messages", "messages")
    pairs = []
    for number, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(role, str) or not role or not isinstance(content, str):
            raise ApiError(f"message {number} must be an object with a string role and a string content",
                           "messages")
        pairs.append((role, content))
    if sum(len(content) for _, content in pairs) > limits.max_chars:
        raise ApiError(f"messages must hold at most {limits.max_chars} characters in all", "messages")
    if body.get("max_tokens") is None and body.get("max_completion_tokens") is not None:
        body = {**body, "max_tokens": body["max_completion_tokens"]}
    return _parse_generation(body, limits, "", tuple(pairs), default_max_tokens=limits.max_tokens)


def _parse_generation(body: dict, limits: ServerLimits, prompt: str, messages: tuple[tuple[str, str], ...],
                      default_max_tokens: int) -> ParsedRequest:
    """The fields both routes share: sampling, stop strings, lengths, streaming."""
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
    max_tokens = _int(body, "max_tokens", default_max_tokens, 1, limits.max_tokens)
    request = GenerationRequest(
        prompt=prompt,
        messages=messages,
        k=_int(body, "n", 1, 1, limits.max_n),
        max_new_tokens=max_tokens,
        # Absent means no minimum, as on vLLM (GenerationRequest's own default is the editor's).
        min_new_tokens=_int(body, "min_tokens", 0, 0, max_tokens),
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
    """The HTTP server; ``port=0`` picks a free port (see :attr:`base_url`).

    ``ignore_n`` answers one choice whatever ``n`` asks (Ollama's and LM
    Studio's behaviour, for tests of clients that must cope with it).
    """

    daemon_threads = True

    def __init__(
        self,
        backend: Backend,
        model_name: str = "editseq",
        port: int = 0,
        limits: ServerLimits = ServerLimits(),
        verbose: bool = False,
        *,
        ignore_n: bool = False,
    ) -> None:
        super().__init__((HOST, port), _Handler)
        self.backend = backend
        self.model_name = model_name
        self.limits = limits
        self.verbose = verbose
        self.ignore_n = ignore_n
        self._profile: dict[str, Any] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/v1"

    def profile(self) -> dict[str, Any] | None:
        """The served model's profile as the ``editseq`` object of its ``/v1/models`` entry, if it has one."""
        if self._profile is None:
            profile = getattr(self.backend, "profile", None)
            if not callable(profile):
                return None
            try:
                found = profile()
            except BackendError:
                return None
            self._profile = {"formats": list(found.formats), "repair": found.repair}
        return self._profile


@contextmanager
def running_server(
    backend: Backend, model_name: str = "editseq", port: int = 0, *, max_n: int | None = None,
    ignore_n: bool = False,
) -> Iterator[CompletionServer]:
    """A server answering in a background thread for the duration of the ``with`` block.

    ``max_n`` refuses requests for more choices (``max_n=1``: as llama.cpp's
    server); ``ignore_n`` streams one choice whatever ``n`` asks (as Ollama).
    """
    limits = ServerLimits() if max_n is None else ServerLimits(max_n=max_n)
    server = CompletionServer(backend, model_name, port, limits, ignore_n=ignore_n)
    thread = threading.Thread(target=server.serve_forever, name="editseq-openai-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


_ROUTES = {"/v1/completions": (parse_completion_request, False), "/v1/chat/completions": (parse_chat_request, True)}


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
        profile = self.server.profile()
        if profile is not None:
            model["editseq"] = profile
        self._json(200, {"object": "list", "data": [model]})

    def do_POST(self) -> None:
        try:
            route = _ROUTES.get(self.path.rstrip("/"))
            if route is None:
                raise ApiError(f"no route POST {self.path}", status=404)
            parse, chat = route
            body = self._read_json()
            model = body.get("model") if isinstance(body, dict) else None
            if model is not None and model != self.server.model_name:
                raise ApiError(f"the model `{model}` does not exist", "model", status=404)
            parsed = parse(body, self.server.limits)
            if self.server.ignore_n:
                parsed = dataclasses.replace(parsed, request=dataclasses.replace(parsed.request, k=1))
        except ApiError as exc:
            return self._error(exc)
        except ValueError as exc:  # GenerationRequest's own checks
            return self._error(ApiError(str(exc)))
        try:
            self.server.backend.load()  # a model that cannot load is the server's fault (500), not the request's
        except BackendError as exc:
            return self._error(_generation_error(exc, False))
        if parsed.stream:
            return self._stream(parsed, chat)
        try:
            result = self.server.backend.generate(parsed.request)
        except Exception as exc:
            return self._error(_generation_error(exc, chat))
        if chat:
            choices = [{"index": c.index, "message": {"role": "assistant", "content": c.text}, "logprobs": None,
                        "finish_reason": c.finish_reason} for c in result.completions]
        else:
            choices = [_choice(c.index, c.text, c.finish_reason, chat) for c in result.completions]
        envelope = self._envelope("chat.completion" if chat else "text_completion")
        self._json(200, {**envelope, "choices": choices, "usage": _usage(result)})

    # -- helpers ---------------------------------------------------------------------

    def _read_json(self) -> Any:
        try:
            length = int(self.headers.get("Content-Length", "0"))
            return json.loads(self.rfile.read(length))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(f"the request body is not valid JSON: {exc}") from None

    def _envelope(self, kind: str) -> dict[str, Any]:
        return {
            "id": f"{'chatcmpl' if kind.startswith('chat') else 'cmpl'}-{uuid.uuid4().hex}",
            "object": kind,
            "created": int(time.time()),
            "model": self.server.model_name,
        }

    def _stream(self, parsed: ParsedRequest, chat: bool) -> None:
        """SSE: a chunk per text delta and per finished choice, usage if asked, then ``[DONE]``.

        The first event is awaited before the headers go out, so that a
        request the model cannot take (chat messages for a model without a
        chat template) or a failure before the first token gets an HTTP error
        status rather than an error event in a 200 stream.
        """
        cancel = threading.Event()
        try:
            events = self.server.backend.stream(parsed.request, cancel, text_deltas=True)
        except Exception as exc:
            return self._error(_generation_error(exc, chat))
        with closing(events):
            try:
                first = [next(events)]
            except StopIteration:
                first = []
            except Exception as exc:
                return self._error(_generation_error(exc, chat))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            envelope = self._envelope("chat.completion.chunk" if chat else "text_completion")
            try:
                if chat:  # the role first, with no content (as OpenAI's first chunk)
                    roles = [{"index": i, "delta": {"role": "assistant"}, "logprobs": None, "finish_reason": None}
                             for i in range(parsed.request.k)]
                    self._event({**envelope, "choices": roles})
                for event in itertools.chain(first, events):
                    if isinstance(event, TextEvent):
                        self._event({**envelope, "choices": [_choice(event.candidate, event.text, None, chat)]})
                    elif isinstance(event, CandidateEvent):
                        done = event.completion
                        self._event({**envelope, "choices": [_choice(done.index, "", done.finish_reason, chat)]})
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


def _generation_error(exc: Exception, chat: bool) -> ApiError:
    """A failed generation as an error answer; anything else than the backend's errors is re-raised.

    On the chat route the model's load error (its tokenizer has no chat
    template: the model was already loaded before) and the chat template's own
    refusal (roles it does not take) are the request's fault: 400.
    """
    template_error = type(exc).__module__.startswith("jinja2")
    if chat and (isinstance(exc, ModelLoadError) or template_error):
        reason = str(exc) if not template_error else f"the model's chat template refused the messages: {exc}"
        return ApiError(reason, "messages")
    if not isinstance(exc, BackendError):
        raise exc
    return ApiError(str(exc), status=503 if isinstance(exc, BackendOutOfMemory) else 500)


def _choice(index: int, text: str, finish_reason: str | None, chat: bool) -> dict[str, Any]:
    if chat:
        return {"index": index, "delta": {"content": text} if text else {}, "logprobs": None,
                "finish_reason": finish_reason}
    return {"index": index, "text": text, "logprobs": None, "finish_reason": finish_reason}


def _usage(result: GenerationResult) -> dict[str, int]:
    prompt = result.prompt_tokens or 0
    new = result.new_tokens
    return {"prompt_tokens": prompt, "completion_tokens": new, "total_tokens": prompt + new}


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


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
    parser.add_argument("--max-n", type=_positive, default=ServerLimits().max_n, metavar="N",
                        help="refuse requests for more than N choices (1: as llama.cpp's server does)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    backend = TransformersBackend(TransformersConfig(args.model, args.device, args.dtype))
    try:
        backend.load()
    except BackendError as exc:
        parser.exit(1, f"error: {exc}\n")
    server = CompletionServer(backend, args.name, args.port, ServerLimits(max_n=args.max_n), verbose=args.verbose)
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
