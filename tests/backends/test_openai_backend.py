"""The HTTP backend against the real OpenAI-compatible server (real generations), and its error paths."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from model_runtime.backends import (
    EditEvent,
    EndpointError,
    EndpointHTTPError,
    EndpointTimeout,
    EndpointUnreachable,
    GenerationRequest,
    MalformedResponse,
    ModelLoadError,
    OpenAIBackend,
    OpenAIConfig,
    TextEvent,
    TransformersBackend,
)
from model_runtime.backends.openai_server import running_server


@pytest.fixture(scope="module")
def local(tiny_lintseq_model):
    backend = TransformersBackend(str(tiny_lintseq_model.folder))
    backend.load()
    return backend


@pytest.fixture(scope="module")
def server(local):
    with running_server(local, model_name="tiny") as server:
        yield server


@pytest.fixture()
def remote(server):
    backend = OpenAIBackend(OpenAIConfig(base_url=server.base_url, model="tiny", read_timeout_s=30))
    yield backend
    backend.close()


def test_greedy_text_over_http_equals_in_process(local, remote, tiny_lintseq_model):
    remote.load()
    for prompt in tiny_lintseq_model.sample_prompts[:3]:
        request = GenerationRequest(prompt, max_new_tokens=200)
        expected = local.generate(request)
        result = remote.generate(request)
        assert result.completions == expected.completions  # text, token count, finish reason
        assert result.prompt_tokens == expected.prompt_tokens
        streamed = [e.diff for e in remote.stream(request) if isinstance(e, EditEvent)]
        assert streamed == expected.completions[0].edits


def test_n_sampled_candidates_interleave_and_match_in_process(local, remote, tiny_lintseq_model):
    request = GenerationRequest(
        tiny_lintseq_model.sample_prompts[1], k=3, max_new_tokens=80, temperature=1.0, seed=4, stop=("@@ -2",)
    )
    expected = local.generate(request)
    events = list(remote.stream(request, text_deltas=True))
    result = events[-1].result
    assert [c.text for c in result.completions] == [c.text for c in expected.completions]
    assert [c.finish_reason for c in result.completions] == [c.finish_reason for c in expected.completions]
    order = [e.candidate for e in events if isinstance(e, TextEvent)]
    assert set(order) == {0, 1, 2} and order != sorted(order)  # chunks of the choices interleave
    for completion in result.completions:
        assert "@@ -2" not in completion.text
        diffs = [e.diff for e in events if isinstance(e, EditEvent) and e.candidate == completion.index]
        assert diffs == completion.edits


def test_cancelling_an_http_stream_returns_promptly_and_frees_the_server(local, remote, tiny_lintseq_model):
    prompt = tiny_lintseq_model.sample_prompts[0]
    cancel = threading.Event()
    request = GenerationRequest(prompt, k=4, max_new_tokens=900, temperature=2.0, seed=5)
    events = remote.stream(request, cancel, text_deltas=True)
    next(e for e in events if isinstance(e, TextEvent))
    cancel.set()
    started = time.perf_counter()
    result = list(events)[-1].result
    assert result.cancelled and time.perf_counter() - started < 2.0
    # The server noticed the closed connection and stopped generating.
    short = GenerationRequest(prompt, max_new_tokens=50)
    assert remote.generate(short).completions == local.generate(short).completions


def test_server_json_answers_and_request_validation(server, tiny_lintseq_model):
    base = server.base_url
    models = httpx.get(base + "/models").json()
    assert [m["id"] for m in models["data"]] == ["tiny"]
    body = {"model": "tiny", "prompt": tiny_lintseq_model.sample_prompts[0], "max_tokens": 12, "n": 2,
            "temperature": 0.7, "seed": 1}
    answer = httpx.post(base + "/completions", json=body, timeout=30).json()
    assert answer["object"] == "text_completion" and [c["index"] for c in answer["choices"]] == [0, 1]
    assert answer["usage"]["completion_tokens"] <= 24 and answer["usage"]["prompt_tokens"] > 10
    for bad, param in [({"n": 0}, "n"), ({"top_p": 1.5}, "top_p"), ({"stop": [1]}, "stop"),
                       ({"prompt": None}, "prompt"), ({"logprobs": 1}, "logprobs")]:
        response = httpx.post(base + "/completions", json={**body, **bad})
        assert response.status_code == 400 and response.json()["error"]["param"] == param
    assert httpx.post(base + "/completions", content=b"{not json").status_code == 400
    assert httpx.post(base + "/completions", json={**body, "model": "other"}).status_code == 404
    assert httpx.get(base + "/nothing").status_code == 404


def test_refused_connection():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = OpenAIBackend(OpenAIConfig(base_url=f"http://127.0.0.1:{port}/v1"))
    with pytest.raises(EndpointUnreachable, match=str(port)):
        backend.generate(GenerationRequest("x"))
    with pytest.raises(EndpointUnreachable):
        backend.load()


def test_http_errors_carry_status_and_server_message(server):
    bad_body = OpenAIBackend(OpenAIConfig(server.base_url, "tiny", extra_body={"max_tokens": "lots"}))
    with pytest.raises(EndpointHTTPError, match="max_tokens must be an integer") as caught:
        bad_body.generate(GenerationRequest("x"))
    assert caught.value.status == 400 and caught.value.url.endswith("/v1/completions")
    wrong_model = OpenAIBackend(OpenAIConfig(server.base_url, "gpt-17"))
    with pytest.raises(EndpointHTTPError, match="gpt-17") as caught:
        wrong_model.generate(GenerationRequest("x"))
    assert caught.value.status == 404
    with pytest.raises(ModelLoadError, match="gpt-17"):
        wrong_model.load()


class _BrokenHandler(BaseHTTPRequestHandler):
    """Test scaffolding for the error paths only: answers that are not the completions protocol."""

    def log_message(self, format, *args):  # noqa: A002
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.path.startswith("/slow"):
            time.sleep(1.0)
        bodies = {
            "/html": ("text/html", b"<html>not json at all</html>"),
            "/badjson": ("text/event-stream", b"data: {\"choices\": [\n\n"),
            "/badindex": ("text/event-stream", b'data: {"choices": [{"index": 7, "text": "x"}]}\n\n'),
            "/truncated": ("text/event-stream", b'data: {"choices": [{"index": 0, "text": "x"}]}\n\n'),
            "/failing": ("text/event-stream", b'data: {"error": {"message": "CUDA out of memory"}}\n\n'),
        }
        kind, body = bodies.get(self.path.split("/v1")[0], ("text/plain", b"?"))
        try:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except BrokenPipeError:  # the timeout test's client has left
            pass


@pytest.fixture(scope="module")
def broken_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BrokenHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/html", "expected an event stream, got text/html: <html>not json"),
        ("/badjson", "not JSON"),
        ("/badindex", "index 7"),
        ("/truncated", r"ended before data: \[DONE\]"),
    ],
)
def test_malformed_responses(broken_server, path, message):
    backend = OpenAIBackend(OpenAIConfig(base_url=f"{broken_server}{path}/v1"))
    with pytest.raises(MalformedResponse, match=message):
        backend.generate(GenerationRequest("x"))


def test_an_error_reported_mid_stream_is_raised(broken_server):
    backend = OpenAIBackend(OpenAIConfig(base_url=f"{broken_server}/failing/v1"))
    with pytest.raises(EndpointError, match="CUDA out of memory"):
        backend.generate(GenerationRequest("x"))


def test_timeout(broken_server):
    backend = OpenAIBackend(OpenAIConfig(base_url=f"{broken_server}/slow/v1", read_timeout_s=0.2))
    with pytest.raises(EndpointTimeout):
        backend.generate(GenerationRequest("x"))
