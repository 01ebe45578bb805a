"""The HTTP backend against the real OpenAI-compatible server (real generations), and its error paths.

Two real tiny models: the session's LintSeq model (completions) and a chat
model trained here to answer two chats word for word, with a chat template set
on its tokenizer (the chat route, the served profile).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from model_runtime.backends import (
    CandidateEvent,
    EditEvent,
    EndpointError,
    EndpointHTTPError,
    EndpointTimeout,
    EndpointUnreachable,
    GenerationRequest,
    MalformedResponse,
    ModelLoadError,
    ModelProfile,
    OpenAIBackend,
    OpenAIConfig,
    TextEvent,
    TransformersBackend,
)
from model_runtime.backends.openai_backend import served_profile
from model_runtime.backends.openai_server import running_server
from model_runtime.backends.transformers_backend import render_chat

#: A chat template of our own: role markers as plain text, the answer after ``<|assistant|>``.
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
#: ``(messages, answer)``: the chats the chat model memorises.
CHATS = (
    ((("system", "You write Python."), ("user", "Add two numbers.")),
     "@@ -0,0 +1 @@\n+def add(a, b):\n<|diff|>@@ -1,0 +2 @@\n+    return a + b"),
    ((("user", "Negate a number."),), "@@ -0,0 +1,2 @@\n+def negate(x):\n+    return -x"),
)


def rendered(messages) -> str:
    """What :data:`CHAT_TEMPLATE` makes of ``messages`` (the prompts the chat model is trained on)."""
    return "".join(f"<|{role}|>\n{content}\n" for role, content in messages) + "<|assistant|>\n"


@pytest.fixture(scope="module")
def server(local):
    with running_server(local, model_name="tiny") as server:
        yield server


@pytest.fixture()
def remote(server):
    backend = OpenAIBackend(OpenAIConfig(base_url=server.base_url, model="tiny", read_timeout_s=30))
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def chat_local(tmp_path_factory):
    """A tiny model that answers :data:`CHATS`, its tokenizer carrying :data:`CHAT_TEMPLATE` (about 5 s)."""
    from transformers import AutoTokenizer

    from model_runtime.training.tiny_model import train_memorised_model

    folder = tmp_path_factory.mktemp("tiny-chat-model")
    report = train_memorised_model(folder, [(rendered(messages), answer) for messages, answer in CHATS])
    assert report.final_loss < 0.05, report
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    backend = TransformersBackend(str(folder))
    backend.load()
    for messages, _ in CHATS:  # the template renders exactly the prompts the model learnt
        assert render_chat(backend.loaded.tokenizer, messages) == rendered(messages)
    return backend


@pytest.fixture(scope="module")
def chat_server(chat_local):
    with running_server(chat_local, model_name="tiny-chat") as server:
        yield server


@pytest.fixture()
def chat_remote(chat_server):
    backend = OpenAIBackend(OpenAIConfig(base_url=chat_server.base_url, model="tiny-chat", read_timeout_s=30))
    yield backend
    backend.close()


def sse_payloads(response: httpx.Response) -> list:
    """The JSON payloads of an SSE answer, ``[DONE]`` excluded (which must end it)."""
    payloads = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert payloads[-1] == "[DONE]"
    return [json.loads(p) for p in payloads[:-1]]


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


# -- chat -------------------------------------------------------------------------------


def test_chat_over_http_equals_in_process(chat_local, chat_remote):
    for messages, answer in CHATS:
        request = GenerationRequest("", messages=messages, max_new_tokens=60)
        expected = chat_local.generate(request)
        assert expected.completions[0].text == answer and expected.completions[0].finish_reason == "stop"
        result = chat_remote.generate(request)
        assert result.completions == expected.completions  # text, token count (the server's), finish reason
        assert result.prompt_tokens == expected.prompt_tokens
        events = list(chat_remote.stream(request, text_deltas=True))
        assert [e.diff for e in events if isinstance(e, EditEvent)] == expected.completions[0].edits
        assert "".join(e.text for e in events if isinstance(e, TextEvent)) == answer
        assert [e.completion for e in events if isinstance(e, CandidateEvent)] == list(expected.completions)


def test_sampled_chat_candidates_match_in_process(chat_local, chat_remote):
    request = GenerationRequest("", messages=CHATS[0][0], k=3, max_new_tokens=40, temperature=1.5, seed=2)
    expected = chat_local.generate(request)
    result = chat_remote.generate(request)
    assert [(c.text, c.finish_reason) for c in result.completions] == [
        (c.text, c.finish_reason) for c in expected.completions]
    assert len({c.text for c in result.completions}) > 1  # hot enough that the candidates differ


def test_chat_route_answers_in_the_chat_shape(chat_server):
    base = chat_server.base_url
    messages = [{"role": role, "content": content} for role, content in CHATS[1][0]]
    body = {"model": "tiny-chat", "messages": messages, "max_tokens": 60, "temperature": 0}
    answer = httpx.post(base + "/chat/completions", json=body, timeout=30).json()
    assert answer["object"] == "chat.completion"
    assert answer["choices"] == [{"index": 0, "message": {"role": "assistant", "content": CHATS[1][1]},
                                  "logprobs": None, "finish_reason": "stop"}]
    assert answer["usage"]["prompt_tokens"] > 5 and answer["usage"]["completion_tokens"] > 5
    stream = {**body, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", base + "/chat/completions", json=stream, timeout=30) as response:
        chunks = sse_payloads(response)
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}  # a role, no content yet
    deltas = [choice["delta"] for c in chunks[1:] for choice in c["choices"]]
    assert "".join(d.get("content", "") for d in deltas) == CHATS[1][1]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop" and chunks[-2]["choices"][0]["delta"] == {}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == answer["usage"]


def test_chat_request_validation(chat_server, server):
    url = chat_server.base_url + "/chat/completions"
    body = {"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    for bad in [{"messages": None}, {"messages": []}, {"messages": [{"role": "user"}]},
                {"messages": [{"role": "user", "content": ["parts"]}]}, {"messages": ["hi"]},
                {"messages": [{"role": "user", "content": "x"}] * 257}]:
        response = httpx.post(url, json={**body, **bad})
        assert response.status_code == 400 and response.json()["error"]["param"] == "messages", bad
    for bad, param in [({"min_tokens": 6}, "min_tokens"), ({"min_tokens": -1}, "min_tokens"),
                       ({"tools": [{"type": "function"}]}, "tools"), ({"n": 17}, "n")]:
        response = httpx.post(url, json={**body, **bad})
        assert response.status_code == 400 and response.json()["error"]["param"] == param, bad
    # The LintSeq model has no chat template: a clear 400, streamed or not.
    lintseq = {**body, "model": "tiny"}
    for stream in (False, True):
        response = httpx.post(server.base_url + "/chat/completions", json={**lintseq, "stream": stream}, timeout=30)
        assert response.status_code == 400 and "no chat template" in response.json()["error"]["message"]
    with pytest.raises(EndpointHTTPError, match="no chat template") as caught:
        OpenAIBackend(OpenAIConfig(server.base_url, "tiny")).generate(
            GenerationRequest("", messages=(("user", "hi"),)))
    assert caught.value.status == 400 and caught.value.url.endswith("/v1/chat/completions")


# -- min_tokens, token counts -------------------------------------------------------------


def test_min_tokens_is_sent_and_honoured(local, remote, server, tiny_lintseq_model):
    prompt = tiny_lintseq_model.sample_prompts[2]
    natural = local.generate(GenerationRequest(prompt, max_new_tokens=300, min_new_tokens=0)).completions[0]
    assert natural.finish_reason == "stop"
    longer = GenerationRequest(prompt, max_new_tokens=300, min_new_tokens=natural.new_tokens + 20)
    expected = local.generate(longer)
    assert expected.completions[0].new_tokens >= natural.new_tokens + 20
    assert remote.generate(longer).completions == expected.completions
    response = httpx.post(server.base_url + "/completions", json={"prompt": prompt, "max_tokens": 4, "min_tokens": 5})
    assert response.status_code == 400 and response.json()["error"]["param"] == "min_tokens"


def test_token_counts_are_the_servers_usage_not_the_chunks(local, remote, server, tiny_lintseq_model):
    # The stop string (the path's two empty edits) holds text back, so a chunk often carries several tokens.
    stop = ("\n<|diff|>\n<|diff|>",)
    for prompt in tiny_lintseq_model.sample_prompts[:3]:
        request = GenerationRequest(prompt, max_new_tokens=200, stop=stop)
        expected = local.generate(request)
        body = {"model": "tiny", "prompt": prompt, "max_tokens": 200, "min_tokens": request.min_new_tokens,
                "temperature": 0, "stop": list(stop), "stream": True, "stream_options": {"include_usage": True}}
        with httpx.stream("POST", server.base_url + "/completions", json=body, timeout=30) as response:
            chunks = sse_payloads(response)
        text_chunks = sum(1 for c in chunks for choice in c["choices"] if choice["text"])
        assert chunks[-1]["usage"]["completion_tokens"] == expected.completions[0].new_tokens > text_chunks
        assert remote.generate(request).completions == expected.completions


# -- the model's profile ----------------------------------------------------------------------


class _NoProfile:
    """The LintSeq model behind a backend that cannot say what it speaks (no ``profile``)."""

    name = "plain"

    def __init__(self, backend):
        self._backend = backend

    def load(self):
        self._backend.load()

    def generate(self, request, cancel=None):
        return self._backend.generate(request, cancel)

    def stream(self, request, cancel=None, *, text_deltas=False):
        return self._backend.stream(request, cancel, text_deltas=text_deltas)


def test_profile_over_http(local, chat_local, remote, chat_remote, server):
    for here, there in [(local, remote), (chat_local, chat_remote)]:
        expected = here.profile()
        assert there.profile() == ModelProfile(expected.formats, expected.repair, "server")
        assert there.profile().strategy == expected.strategy
    assert httpx.get(server.base_url + "/models").json()["data"][0]["editseq"] == {
        "formats": list(local.profile().formats), "repair": local.profile().repair}
    chat = OpenAIBackend(OpenAIConfig(server.base_url, "tiny", prompt_format="chat"))
    assert chat.profile() == ModelProfile(("chat",), None, "setting")
    for name, formats in [("org/My-LintSeq-7B", ("lintseq",)), ("qwen2.5-coder", ("chat",))]:
        with running_server(_NoProfile(local), model_name=name) as plain:
            assert "editseq" not in httpx.get(plain.base_url + "/models").json()["data"][0]
            assert OpenAIBackend(OpenAIConfig(plain.base_url, name)).profile() == ModelProfile(
                formats, None, "model id")
    with pytest.raises(ValueError, match="prompt_format"):
        OpenAIConfig(prompt_format="cycle")


def test_only_a_well_formed_editseq_object_is_a_profile():
    assert served_profile({"id": "m", "editseq": {"formats": ["lintseq", "cycle"], "repair": "rank"}}) == (
        ModelProfile(("lintseq", "cycle"), "rank", "server"))
    for bad in [{}, {"editseq": []}, {"editseq": {"formats": []}}, {"editseq": {"formats": "lintseq"}},
                {"editseq": {"formats": [1]}}, {"editseq": {"formats": ["chat"], "repair": 3}}, None]:
        assert served_profile(bad) is None


# -- failures -------------------------------------------------------------------------------


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
    with pytest.raises(ModelLoadError, match="no model matching 'gpt-17'; it serves: tiny"):
        wrong_model.generate(GenerationRequest("x"))  # resolving the id on first use
    with pytest.raises(ModelLoadError, match="gpt-17"):
        wrong_model.load()


class _BrokenHandler(BaseHTTPRequestHandler):
    """Test scaffolding for the error paths only: answers that are not the completions protocol."""

    def log_message(self, format, *args):  # noqa: A002
        pass

    def do_GET(self):  # a model list naming the default model, so that requests get as far as POST
        body = b'{"object": "list", "data": [{"id": "lsp"}]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

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
