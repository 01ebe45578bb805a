"""The HTTP backend against servers that are not vLLM: no ``n``, other model ids.

Our server plays them with real generations: ``max_n=1`` refuses ``n > 1``
with an HTTP error as llama.cpp's server does, ``ignore_n`` streams one choice
whatever ``n`` asks as Ollama and LM Studio do, and ``model_name`` serves the
ids those servers use (a GGUF path, an Ollama ``name:tag``). Which requests
the backend sent is read off its own HTTP client (an httpx event hook).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from model_runtime.backends import (
    CandidateEvent,
    EditEvent,
    GenerationRequest,
    ModelLoadError,
    OpenAIBackend,
    OpenAIConfig,
    TextEvent,
)
from model_runtime.backends.openai_backend import match_model
from model_runtime.backends.openai_server import running_server


@pytest.fixture(scope="module")
def refusing(local):
    """Refuses ``n > 1`` (llama.cpp's server)."""
    with running_server(local, model_name="tiny", max_n=1) as server:
        yield server


@pytest.fixture(scope="module")
def ignoring(local):
    """Streams one choice whatever ``n`` asks (Ollama, LM Studio)."""
    with running_server(local, model_name="tiny", ignore_n=True) as server:
        yield server


@pytest.fixture(scope="module")
def prompt(tiny_lintseq_model):
    return tiny_lintseq_model.sample_prompts[1]


def recording(base_url: str, model: str = "tiny", parallel: int = 1) -> tuple[OpenAIBackend, list[dict]]:
    """A backend and the list its client appends each POSTed body to."""
    backend = OpenAIBackend(OpenAIConfig(base_url=base_url, model=model, read_timeout_s=30,
                                         parallel_requests=parallel))
    bodies: list[dict] = []
    client = backend._http()
    client.event_hooks = {"request": [lambda r: r.method == "POST" and bodies.append(json.loads(r.content))]}
    return backend, bodies


def one_by_one(local, request: GenerationRequest) -> list:
    """What ``k`` single-choice requests with seeds ``seed + i`` give, in process."""
    return [
        local.generate(GenerationRequest(request.prompt, k=1, max_new_tokens=request.max_new_tokens,
                                         temperature=request.temperature, seed=request.seed + i)).completions[0]
        for i in range(request.k)
    ]


def sampled(prompt: str, seed: int) -> GenerationRequest:
    return GenerationRequest(prompt, k=3, max_new_tokens=60, temperature=1.2, seed=seed)


def test_a_server_refusing_n_gets_single_choice_requests_side_by_side(local, refusing, prompt):
    backend, bodies = recording(refusing.base_url)
    request = sampled(prompt, seed=11)
    events = list(backend.stream(request, text_deltas=True))
    result = events[-1].result
    expected = one_by_one(local, request)
    assert [(c.text, c.finish_reason, c.new_tokens) for c in result.completions] == [
        (c.text, c.finish_reason, c.new_tokens) for c in expected]
    assert [c.index for c in result.completions] == [0, 1, 2] and len({c.text for c in expected}) > 1
    for completion in result.completions:  # every candidate streamed its diffs and its end
        assert [e.diff for e in events if isinstance(e, EditEvent) and e.candidate == completion.index] == (
            completion.edits)
        assert [e.completion for e in events if isinstance(e, CandidateEvent) and e.candidate == completion.index] == [
            completion]
    assert [(b["n"], b.get("seed")) for b in bodies[:1]] == [(3, 11)]  # refused with HTTP 400
    assert sorted((b["n"], b["seed"]) for b in bodies[1:]) == [(1, 11), (1, 12), (1, 13)]
    assert backend._single_choice
    # Remembered: the next request goes straight to single-choice requests.
    bodies.clear()
    backend.generate(sampled(prompt, seed=20))
    assert sorted((b["n"], b["seed"]) for b in bodies) == [(1, 20), (1, 21), (1, 22)]
    # Greedy candidates are still one request, copied.
    bodies.clear()
    greedy = backend.generate(GenerationRequest(prompt, k=2, max_new_tokens=60))
    assert [b["n"] for b in bodies] == [1] and greedy.completions[0].text == greedy.completions[1].text


def test_a_server_ignoring_n_gets_the_missing_candidates_asked_one_by_one(local, ignoring, prompt):
    backend, bodies = recording(ignoring.base_url)
    request = sampled(prompt, seed=11)
    result = backend.generate(request)
    # Candidate 0 is the first request's only choice (its token count the server's usage); 1 and 2 asked after.
    assert result.completions == tuple(
        type(c)(i, c.text, c.new_tokens, c.finish_reason) for i, c in enumerate(one_by_one(local, request)))
    assert (bodies[0]["n"], bodies[0]["seed"]) == (3, 11)
    assert sorted((b["n"], b["seed"]) for b in bodies[1:]) == [(1, 12), (1, 13)]
    assert backend._single_choice
    bodies.clear()
    backend.generate(sampled(prompt, seed=30))
    assert sorted((b["n"], b["seed"]) for b in bodies) == [(1, 30), (1, 31), (1, 32)]


@pytest.mark.parametrize("parallel", [1, 4])
def test_cancelling_single_choice_requests_returns_promptly_and_frees_the_server(local, refusing, prompt, parallel):
    """One request at a time by default (llama-cpp-python's server interrupts a stream when another
    arrives); ``parallel_requests`` lets a server with several slots take them at once."""
    backend, bodies = recording(refusing.base_url, parallel=parallel)
    backend._single_choice = True  # as learnt above
    cancel = threading.Event()
    events = backend.stream(GenerationRequest(prompt, k=4, max_new_tokens=900, temperature=2.0, seed=5), cancel,
                            text_deltas=True)
    next(e for e in events if isinstance(e, TextEvent))
    cancel.set()
    started = time.perf_counter()
    result = list(events)[-1].result
    assert result.cancelled and time.perf_counter() - started < 2.0
    assert len(bodies) == parallel  # the queued ones never started
    short = GenerationRequest(prompt, max_new_tokens=50)
    assert backend.generate(short).completions == local.generate(short).completions


@pytest.mark.parametrize(
    ("served", "settings"),
    [
        ("/models/tiny-Q8.gguf", ["/models/tiny-Q8.gguf", "tiny-Q8", "tiny-Q8.gguf"]),  # llama.cpp: the file path
        ("tiny:latest", ["tiny", "TINY:LATEST"]),  # Ollama: name:tag
        ("Tiny-Coder", ["tiny-coder"]),  # case
    ],
)
def test_a_model_setting_resolves_to_the_served_id(local, prompt, served, settings):
    request = GenerationRequest(prompt, max_new_tokens=30)
    expected = local.generate(request).completions
    with running_server(local, model_name=served) as server:  # it answers 404 to any other model name
        for setting in settings:
            backend = OpenAIBackend(OpenAIConfig(server.base_url, setting))
            assert backend.generate(request).completions == expected  # resolved on first use, no load() call
            assert backend.model_id == served
        with pytest.raises(ModelLoadError, match=f"serves no model matching 'tiny-q4'; it serves: {served} "
                                                 r"\(a setting names a served id exactly, by its file name"):
            OpenAIBackend(OpenAIConfig(server.base_url, "tiny-q4")).load()


def test_model_matching_rules():
    served = ["/m/a/coder.gguf", "/m/b/coder.gguf", "qwen:7b", "qwen:latest", "llama:8b", "Mixed", "mixed-2"]
    assert match_model("qwen", served) == ["qwen:latest"]  # latest first
    assert match_model("llama", served) == ["llama:8b"]  # the only tag
    assert match_model("qwen:7b", served) == ["qwen:7b"]
    assert match_model("coder", served) == ["/m/a/coder.gguf", "/m/b/coder.gguf"]  # ambiguous
    assert match_model("mixed", served) == ["Mixed"]
    assert match_model("Mixed", ["mixed", "Mixed"]) == ["Mixed"]  # exact before case-insensitive
    assert match_model("coder.gguf", ["/x/coder"]) == ["/x/coder"]
    assert match_model(r"C:\models\x.gguf", [r"C:\models\x.gguf"]) == [r"C:\models\x.gguf"]
    assert match_model("x", [r"C:\models\x.gguf"]) == [r"C:\models\x.gguf"]
    assert match_model("nothing", served) == [] and match_model("qwen:3b", served) == []


class _ModelList(BaseHTTPRequestHandler):
    """Test scaffolding: a ``/models`` list only (the names are what the tests below are about)."""

    ids: list[str] = []

    def log_message(self, format, *args):  # noqa: A002
        pass

    def do_GET(self):
        body = json.dumps({"object": "list", "data": [{"id": i, "object": "model"} for i in self.ids]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def model_list():
    handler = type("Handler", (_ModelList,), {"ids": [f"model-{i:02}:q4" for i in range(30)] + ["/a/x.gguf",
                                                                                                   "/b/x.gguf"]})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_no_match_and_ambiguity_are_load_errors_naming_the_served_ids(model_list):
    with pytest.raises(ModelLoadError) as caught:
        OpenAIBackend(OpenAIConfig(model_list, "gpt-17")).load()
    message = str(caught.value)
    assert "model-00:q4, model-01:q4" in message and "model-19:q4" in message and "model-20:q4" not in message
    assert "and 12 more" in message
    with pytest.raises(ModelLoadError, match=r"'x' is ambiguous .* /a/x.gguf, /b/x.gguf; set the full id"):
        OpenAIBackend(OpenAIConfig(model_list, "x")).load()
    backend = OpenAIBackend(OpenAIConfig(model_list, "model-07"))
    backend.load()
    assert backend.model_id == "model-07:q4"
