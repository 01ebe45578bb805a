"""Generation through any OpenAI-compatible endpoint: vLLM, llama.cpp, Ollama, LM Studio, ours.

This is the scale-out path: the model runs in a server on the user's GPU
(vLLM, or anything speaking the same protocol, such as
:mod:`model_runtime.backends.openai_server`) and the editor talks to it over HTTP.
Serve a LintSeq model folder with vLLM like this::

    vllm serve ./model_dir --served-model-name lsp --host 127.0.0.1 --port 8000 \\
        --max-model-len 2048 [--api-key KEY]

then use ``OpenAIConfig(base_url="http://127.0.0.1:8000/v1", model="lsp")``.

**Two routes.** A prompt goes to ``/completions``; a chat request (one with
``messages``) goes to ``/chat/completions``, so that the server renders the
turns with the model's own chat template. Both are streamed (Server-Sent
Events; with ``n > 1`` the choices interleave by ``index``) and read the same
way, only the text of a chunk sits elsewhere (``text``, or ``delta.content``,
which chat servers leave out of role-only and final chunks). A diff is shown as
soon as it is complete, and ``generate`` is the same stream collected. Greedy
requests ask for one choice and copy it ``k`` times, as the in-process backend
does (greedy candidates are identical; some servers refuse ``n > 1`` at
temperature 0). ``min_tokens`` (vLLM's extra) carries ``min_new_tokens``.

**The model id.** :meth:`OpenAIBackend.load` (called on first use when nobody
called it) reads ``/models`` and resolves ``config.model`` to one served id,
which every request then carries. The first rule that names any served id
decides: the exact id (an alias such as llama.cpp's ``--alias`` is an id); an
id whose file name is the setting, with or without ``.gguf`` on either side
(llama.cpp serves paths such as ``/models/foo-Q4.gguf``: ``foo-Q4`` names it);
an Ollama ``name:tag`` for a setting without a tag (``foo:latest``, else the
only ``foo:<tag>``); the id ignoring case. No match, or several, is a
:class:`~.base.ModelLoadError` listing what the server serves.

**Servers that do not do ``n``.** llama.cpp's server refuses ``n > 1`` with an
HTTP error; Ollama, LM Studio and llama-cpp-python accept it and stream one
choice. A sampled request for ``k > 1`` candidates then falls back to ``k``
single-choice requests run side by side (candidate ``i`` with seed
``seed + i``, so that the candidates differ and stay repeatable): on an error
status it retries all ``k``; when the stream ends with choice 0 only, it
keeps that candidate and asks for the others. The backend remembers the
server's limit, so later requests go straight to single-choice requests.
Every request runs in a worker thread and all their events reach the caller
through one queue, as they arrive.

**Token counts.** A :class:`~.base.Completion`'s ``new_tokens`` is the
server's own count (``usage.completion_tokens``, asked for with
``stream_options.include_usage``) when the request had one choice (greedy
requests, ``k == 1``, each single-choice request above); a multi-choice
request's usage is a total, so there each candidate counts its text chunks,
one per token on vLLM and ours, several on llama.cpp and Ollama. A candidate the
client itself stopped (a stop string the server let through) also counts
chunks. ``prompt_tokens`` is the server's, from any of the requests.

**The model's profile.** :meth:`OpenAIBackend.profile` says which prompt
formats the model speaks: ``config.prompt_format`` when it names one, else the
``editseq`` object our server adds to its ``/models`` entry, else a guess from
the id (``lintseq`` in it: a LintSeq model; otherwise a chat model).

By default the body carries ``"skip_special_tokens": false`` (a vLLM extra
that others ignore): vLLM otherwise drops special tokens from the text, and
with them ``<|diff|>`` in models that registered it as special. It also
carries ``"repeat_penalty": 1.0`` and ``"min_p": 0.0``: llama.cpp's servers
(llama-cpp-python's defaults to a repeat penalty of 1.1) would otherwise
reshape the distribution the request's temperature and top-p describe, and
greedy text would differ from the model's own (measured: 0 of 8 HumanEval
answers equal with the penalty, see ``benchmarks/servers.py``). Ollama's
OpenAI layer ignores both; its model default (often 1.1) applies there.

Failures are :class:`~.base.EndpointError` subclasses: unreachable,
timed out, HTTP error status (with an excerpt of the body), malformed answer.
"""

from __future__ import annotations

import json
import queue
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
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
    ModelProfile,
    StreamEvent,
)
from .streaming import CandidateTracker

__all__ = ["OpenAIBackend", "OpenAIConfig", "match_model", "served_profile"]

_EXCERPT = 300
#: Served ids named in a "no such model" error; a hub-sized list would bury the message.
_LISTED = 20
#: How often a stream waiting for the server looks at its cancel event.
_POLL_S = 0.05
_COMPLETIONS = "/completions"
_CHAT = "/chat/completions"
_PROMPT_FORMATS = ("auto", "lintseq", "chat")
_MATCHING = ("a setting names a served id exactly, by its file name with or without .gguf (llama.cpp serves "
             "paths), as an Ollama name without its tag (foo for foo:latest), or ignoring case")


@dataclass(frozen=True, slots=True)
class OpenAIConfig:
    """Where the endpoint is, which model, and how long to wait for it."""

    base_url: str = defaults.ENDPOINT
    #: The served model name (vLLM's ``--served-model-name``), matched as the module doc says.
    model: str = "lsp"
    api_key: str | None = None
    connect_timeout_s: float = 5.0
    #: Longest silence tolerated while waiting for the next streamed chunk.
    read_timeout_s: float = 120.0
    #: Merged into every request body last (server-specific extras).
    extra_body: dict[str, Any] = field(
        default_factory=lambda: {"skip_special_tokens": False, "repeat_penalty": 1.0, "min_p": 0.0})
    #: ``lintseq`` or ``chat`` to say what the model speaks; ``auto`` asks the server (see ``profile``).
    prompt_format: str = "auto"
    #: How many one-choice requests may run at once when the server will not give ``n`` choices in one.
    #: 1 by default: llama.cpp's server runs one generation per slot (one slot unless ``-np``), and
    #: llama-cpp-python's server *interrupts* a streaming request when another arrives (its
    #: ``interrupt_requests``), so parallel requests there cut each other short. Raise it for a server
    #: with several slots (llama.cpp ``-np 4``, Ollama's ``OLLAMA_NUM_PARALLEL``).
    parallel_requests: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.parallel_requests <= 64:
            raise ValueError(f"parallel_requests must be from 1 to 64, got {self.parallel_requests}")
        if self.prompt_format not in _PROMPT_FORMATS:
            raise ValueError(f"prompt_format must be one of {', '.join(_PROMPT_FORMATS)}, "
                             f"got {self.prompt_format!r}")


def match_model(setting: str, served: Sequence[str]) -> list[str]:
    """The served ids ``setting`` names, by the first rule that names any (see the module doc).

    One id is a match; several are an ambiguity the caller reports; none, no match.
    """
    served = list(dict.fromkeys(served))
    if setting in served:
        return [setting]

    def stem(name: str) -> str:
        return name[:-5] if name.lower().endswith(".gguf") else name

    by_file = [i for i in served if stem(re.split(r"[/\\]", i)[-1]) == stem(setting)]
    if by_file:
        return by_file
    if ":" not in setting:
        tagged = [i for i in served if i.partition(":")[0] == setting and ":" in i]
        if f"{setting}:latest" in tagged:
            return [f"{setting}:latest"]
        if tagged:
            return tagged
    return [i for i in served if i.lower() == setting.lower()]


def served_profile(entry: Any) -> ModelProfile | None:
    """The profile in a ``/models`` entry's ``editseq`` object (our server's), if it is a valid one."""
    info = entry.get("editseq") if isinstance(entry, dict) else None
    if not isinstance(info, dict):
        return None
    formats, repair = info.get("formats"), info.get("repair")
    if not isinstance(formats, list) or not formats or not all(isinstance(f, str) and f for f in formats):
        return None
    if repair is not None and not isinstance(repair, str):
        return None
    return ModelProfile(tuple(formats), repair, "server")


class OpenAIBackend:
    """The :class:`~.base.Backend` for an OpenAI-compatible HTTP endpoint."""

    name = "openai"

    def __init__(self, config: OpenAIConfig | None = None) -> None:
        self.config = config or OpenAIConfig()
        self._client = None
        self._client_lock = threading.Lock()
        self._load_lock = threading.Lock()
        #: The served id ``config.model`` resolved to, and its ``/models`` entry.
        self._model_id: str | None = None
        self._entry: dict[str, Any] = {}
        #: The server answers one choice per request (refuses or ignores ``n > 1``).
        self._single_choice = False

    @property
    def model_id(self) -> str:
        """The served id requests carry (resolving ``config.model`` on first use)."""
        return self._served()[0]

    def load(self) -> None:
        """Check that the endpoint answers and serves ``config.model``; resolve it to the served id."""
        with self._load_lock:
            self._resolve()

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def profile(self) -> ModelProfile:
        """What the model speaks: the setting, else the server's word, else a guess from its id."""
        if self.config.prompt_format != "auto":
            return ModelProfile((self.config.prompt_format,), None, "setting")
        model_id, entry = self._served()
        profile = served_profile(entry)
        if profile is not None:
            return profile
        return ModelProfile(("lintseq",) if "lintseq" in model_id.lower() else ("chat",), None, "model id")

    def generate(self, request: GenerationRequest, cancel: threading.Event | None = None) -> GenerationResult:
        with closing(self.stream(request, cancel)) as events:
            for event in events:
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
        model_id, _ = self._served()
        yield from _Streaming(self, request, model_id, text_deltas).run(cancel)

    # -- the model list ----------------------------------------------------------------

    def _served(self) -> tuple[str, dict[str, Any]]:
        with self._load_lock:
            if self._model_id is None:
                self._resolve()
            return self._model_id, self._entry

    def _resolve(self) -> None:
        with self._errors("/models"):
            response = self._http().get("/models")
            self._raise_for_status(response, "/models")
        try:
            entries = response.json()["data"]
            served = [entry["id"] for entry in entries]
            if not all(isinstance(i, str) for i in served):
                raise TypeError("an id is not a string")
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedResponse(
                f"{self._url('/models')}: not a model list: {_excerpt(response.text)}"
            ) from exc
        matches = match_model(self.config.model, served)
        if len(matches) != 1:
            raise ModelLoadError(self._no_model(served, matches))
        self._model_id = matches[0]
        self._entry = next(entry for entry in entries if entry["id"] == matches[0])

    def _no_model(self, served: list[str], matches: list[str]) -> str:
        setting, url = self.config.model, self.config.base_url
        if matches:
            return (f"model {setting!r} is ambiguous at {url}: it names {', '.join(matches)}; "
                    f"set the full id ({_MATCHING})")
        listed = ", ".join(served[:_LISTED]) or "no models"
        if len(served) > _LISTED:
            listed += f" and {len(served) - _LISTED} more"
        return f"{url} serves no model matching {setting!r}; it serves: {listed} ({_MATCHING})"

    # -- protocol details ------------------------------------------------------------

    def _body(self, request: GenerationRequest, model_id: str, n: int, seed: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model_id}
        if request.messages:
            body["messages"] = [{"role": role, "content": content} for role, content in request.messages]
        else:
            body["prompt"] = request.prompt
        body.update({
            "n": n,
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stream": True,
            "stream_options": {"include_usage": True},
        })
        if request.min_new_tokens > 0:
            body["min_tokens"] = request.min_new_tokens
        if seed is not None:
            body["seed"] = seed
        if request.stop:
            body["stop"] = list(request.stop)
        body.update(self.config.extra_body)
        return body

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


@dataclass(eq=False)
class _Job:
    """One HTTP request of a stream: the trackers each of its choices feeds, and what it has seen."""

    body: dict[str, Any]
    #: Choice index -> trackers (greedy: every candidate copies choice 0).
    groups: list[list[CandidateTracker]]
    #: A single-choice request standing in for a choice the server would not give.
    fallback: bool = False
    seen: set[int] = field(default_factory=set)
    #: Finishes held until the stream ends, while one choice only has been seen, for the usage count.
    pending: dict[int, str] = field(default_factory=dict)
    completion_tokens: int | None = None
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class _Ended:
    job: _Job


class _Streaming:
    """One :meth:`OpenAIBackend.stream` call: its requests in worker threads, their events in one queue.

    Workers touch trackers only while holding :attr:`lock` and only until
    :attr:`stop` is set, so the caller's thread can end the stream (cancelled,
    failed, abandoned) at once instead of waiting for a silent server: a worker
    notices at its next chunk and closes its connection, which tells the
    server to stop generating.
    """

    def __init__(self, backend: OpenAIBackend, request: GenerationRequest, model_id: str, text_deltas: bool):
        self.backend = backend
        self.request = request
        self.model_id = model_id
        self.chat = bool(request.messages)
        self.path = _CHAT if self.chat else _COMPLETIONS
        self.url = backend._url(self.path)
        self.events: queue.Queue = queue.Queue()
        self.trackers = [CandidateTracker(i, request.stop, self.events.put, text_deltas) for i in range(request.k)]
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.jobs: list[_Job] = []
        self.running = 0
        self.queued: list[int] = []  # candidates waiting for their one-choice request
        self.singles_running = 0
        self.prompt_tokens: int | None = None
        self.cancel: threading.Event | None = None

    def run(self, cancel: threading.Event | None) -> Iterator[StreamEvent]:
        request, start = self.request, time.perf_counter()
        self.cancel = cancel
        try:
            if request.greedy or request.k == 1:
                self._start(_Job(self._body(1, request.seed), [self.trackers]))
            elif self.backend._single_choice:
                self._start_singles(range(request.k))
            else:
                self._start(_Job(self._body(request.k, request.seed), [[t] for t in self.trackers]))
            while self.running:
                try:
                    item = self.events.get(timeout=_POLL_S)
                except queue.Empty:
                    item = None
                if isinstance(item, _Ended):
                    self.running -= 1
                    self._ended(item.job)
                elif item is not None:
                    yield item
                if cancel is not None and cancel.is_set():
                    break
            with self.lock:
                self.stop.set()
                for job in self.jobs:  # finished before the cancel, only waiting for the usage count
                    for index, reason in job.pending.items():
                        for tracker in job.groups[index]:
                            tracker.finish(reason)
                for tracker in self.trackers:
                    tracker.finish("cancelled")  # a no-op for finished ones
            yield from self._drain()
            yield DoneEvent(GenerationResult(
                completions=tuple(t.completion for t in self.trackers),
                prompt_tokens=self.prompt_tokens,
                seconds=time.perf_counter() - start,
            ))
        finally:
            with self.lock:
                self.stop.set()

    # -- the caller's side -----------------------------------------------------------

    def _body(self, n: int, seed: int | None) -> dict[str, Any]:
        return self.backend._body(self.request, self.model_id, n, seed)

    def _start(self, job: _Job) -> None:
        self.jobs.append(job)
        self.running += 1
        threading.Thread(target=self._work, args=(job,), name="editseq-openai-request", daemon=True).start()

    def _start_singles(self, indexes: Iterable[int]) -> None:
        """Queue one-choice requests for ``indexes``; at most ``parallel_requests`` run at once."""
        self.queued.extend(indexes)
        self._start_queued()

    def _start_queued(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            self.queued.clear()
            return
        seed = self.request.seed
        while self.queued and self.singles_running < self.backend.config.parallel_requests:
            i = self.queued.pop(0)
            body = self._body(1, None if seed is None else seed + i)
            self.singles_running += 1
            self._start(_Job(body, [[self.trackers[i]]], fallback=True))

    def _ended(self, job: _Job) -> None:
        """A request is over: raise its failure, fall back to single choices, or check its choices."""
        multi = len(job.groups) > 1
        if job.error is not None:
            if multi and isinstance(job.error, EndpointHTTPError):  # llama.cpp: "Only one completion choice"
                self._start_singles(range(len(job.groups)))
                return
            raise job.error
        if job.fallback:
            self.backend._single_choice = True
            self.singles_running -= 1
        with self.lock:
            unfinished = [i for i in sorted(job.seen) if not job.groups[i][0].done]
        if unfinished:
            raise MalformedResponse(
                f"{self.url}: stream ended without a finish_reason for choice {unfinished[0]} (cut short: "
                "llama-cpp-python's server does this to a stream when another request arrives; keep "
                "parallel_requests at 1 for it)")
        if multi and job.seen == {0}:  # Ollama, LM Studio, llama-cpp-python: n ignored
            self.backend._single_choice = True
            self._start_singles(range(1, len(job.groups)))
            return
        missing = [i for i in range(len(job.groups)) if i not in job.seen]
        if missing:
            raise MalformedResponse(f"{self.url}: stream ended without a finish_reason for choice {missing[0]}")
        if job.fallback:
            self._start_queued()

    def _drain(self) -> Iterator[StreamEvent]:
        while True:
            try:
                item = self.events.get_nowait()
            except queue.Empty:
                return
            if not isinstance(item, _Ended):
                yield item

    # -- the workers' side -----------------------------------------------------------

    def _work(self, job: _Job) -> None:
        try:
            self._transfer(job)
        except BaseException as exc:  # handed to the caller's thread, which decides
            job.error = exc
        finally:
            self.events.put(_Ended(job))

    def _transfer(self, job: _Job) -> None:
        backend = self.backend
        with backend._errors(self.path):
            with backend._http().stream("POST", self.path, json=job.body) as response:
                backend._raise_for_status(response, self.path)
                for chunk in _sse_chunks(response, self.url):
                    with self.lock:
                        if self.stop.is_set():
                            return
                        self._chunk(job, chunk)
        with self.lock:
            if not self.stop.is_set():
                self._settle(job)

    def _chunk(self, job: _Job, chunk: dict) -> None:
        if "error" in chunk:  # vLLM (and our server) report failures mid-stream this way
            raise EndpointError(f"{self.url} failed while streaming: {_error_excerpt(json.dumps(chunk))}")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            if _is_count(usage.get("prompt_tokens")):
                self.prompt_tokens = usage["prompt_tokens"]
            if _is_count(usage.get("completion_tokens")):
                job.completion_tokens = usage["completion_tokens"]
        for choice in chunk.get("choices") or ():
            self._choice(job, choice)

    def _choice(self, job: _Job, choice: Any) -> None:
        """One streamed choice: text for its candidates, maybe their finish."""
        url = self.url
        if not isinstance(choice, dict):
            raise MalformedResponse(f"{url}: a choice is not an object: {_excerpt(json.dumps(choice))}")
        index, reason = choice.get("index"), choice.get("finish_reason")
        if self.chat:
            delta = choice.get("delta")
            if delta is None:
                delta = {}
            if not isinstance(delta, dict):
                raise MalformedResponse(f"{url}: choice {index!r} has a delta that is not an object")
            text = delta.get("content")
            text = "" if text is None else text  # role-only and final chunks carry none
        else:
            text = choice.get("text", "")
        if not isinstance(index, int) or not 0 <= index < len(job.groups):
            raise MalformedResponse(f"{url}: choice index {index!r} is not one of the {len(job.groups)} asked")
        if not isinstance(text, str) or not (reason is None or isinstance(reason, str)):
            raise MalformedResponse(f"{url}: choice {index} has no text or a bad finish_reason")
        job.seen.add(index)
        if len(job.seen) > 1 and job.pending:  # several choices after all: no per-choice usage to wait for
            for waiting, why in job.pending.items():
                for tracker in job.groups[waiting]:
                    tracker.finish(why)
            job.pending.clear()
        for tracker in job.groups[index]:
            tracker.add(text, tokens=1 if text else 0)
        if reason is not None:
            if len(job.seen) == 1:
                job.pending[index] = reason
            else:
                for tracker in job.groups[index]:
                    tracker.finish(reason)

    def _settle(self, job: _Job) -> None:
        """The stream is over: a single choice takes the server's token count, then finishes."""
        if len(job.seen) == 1 and job.completion_tokens is not None:
            for tracker in job.groups[next(iter(job.seen))]:
                if not tracker.done:
                    tracker.new_tokens = job.completion_tokens
        for index, reason in job.pending.items():
            for tracker in job.groups[index]:
                tracker.finish(reason)
        job.pending.clear()


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


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
