"""``editseq eval humaneval`` and ``pytest --editseq-refine`` through the OpenAI-compatible backend.

Real models behind the real loopback server (:mod:`model_runtime.backends.openai_server`),
real HumanEval problems in the real sandbox, real pytest subprocesses; nothing
mocked. The pytest runs reuse :func:`test_pytest_plugin.run_pytest` and add
this checkout to ``PYTHONPATH``, so that the subprocess imports the plugin
under test whatever package install the interpreter has.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from model_runtime.backends import TransformersBackend, TransformersConfig
from model_runtime.cli import main
from model_runtime.backends.openai_server import running_server
from refine_models import CLAMP, CLAMP_FIXED, repair_model, write_workspace
from test_pytest_plugin import run_pytest, sources, write

REPO = Path(__file__).resolve().parents[2]
ENV = {"PYTHONPATH": str(REPO)}


def _serve(folder: Path, name: str):
    backend = TransformersBackend(TransformersConfig(model=str(folder), device="cpu"))
    backend.load()
    return running_server(backend, model_name=name)


@pytest.fixture(scope="module")
def tiny_server(tiny_lintseq_model):
    with _serve(tiny_lintseq_model.folder, "tiny") as server:
        yield server


@pytest.fixture(scope="module")
def repair_server():
    with _serve(repair_model(), "repair") as server:
        yield server


@pytest.fixture()
def dead_endpoint() -> str:
    """A loopback URL nobody listens on (the port was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def _eval(out: Path, *args: str) -> int:
    return main(["eval", "humaneval", "--limit", "2", "--max-new-tokens", "48", "--out", str(out),
                 "--no-progress", *args])


# --------------------------------------------------------------------------- editseq eval humaneval


def test_eval_humaneval_through_the_openai_backend_matches_in_process(tiny_server, tiny_lintseq_model, tmp_path):
    remote, local = tmp_path / "remote", tmp_path / "local"
    assert _eval(remote, "--backend", "openai", "--endpoint", tiny_server.base_url, "--model", "tiny") == 0
    summary = json.loads((remote / "summary.json").read_text())
    assert summary["problems"] == 2 and summary["samples_per_problem"] == 1
    assert sum(summary["statuses"].values()) == 2 and set(summary["pass_at_k"]) == {"1"}
    assert summary["tokens"]["one_shot"] > 0 and summary["refine"] is None
    assert {"backend": "openai", "endpoint": tiny_server.base_url, "model": "tiny"}.items() <= summary["settings"].items()
    rows = [json.loads(line) for line in (remote / "results.jsonl").read_text().splitlines()]
    assert [r["task_id"] for r in rows] == ["HumanEval/0", "HumanEval/1"]

    # Greedy: the served model must write exactly what the in-process one writes.
    assert _eval(local, "--model", str(tiny_lintseq_model.folder), "--device", "cpu") == 0
    local_rows = [json.loads(line) for line in (local / "results.jsonl").read_text().splitlines()]
    fields = ("completion", "program", "status")
    assert [[{f: s[f] for f in fields} for s in r["samples"]] for r in rows] == \
           [[{f: s[f] for f in fields} for s in r["samples"]] for r in local_rows]
    # Token counts are not compared: the HTTP client counts streamed chunks, and this server's
    # chunks may hold several tokens (vLLM streams one token per chunk).
    assert all(0 < s["tokens"] <= 48 for r in rows for s in r["samples"])


def test_eval_humaneval_openai_errors_are_clear_and_exit_2(tiny_server, dead_endpoint, tmp_path, capsys):
    out = tmp_path / "out"
    assert _eval(out, "--backend", "openai", "--endpoint", dead_endpoint, "--model", "tiny") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"editseq eval humaneval: cannot reach the OpenAI-compatible endpoint {dead_endpoint} "
                          "(--endpoint): cannot connect to"), err
    assert "is the server running?" in err
    assert not (out / "summary.json").exists()

    assert _eval(out, "--backend", "openai", "--endpoint", tiny_server.base_url, "--model", "gpt-17") == 2
    assert "serves no model matching 'gpt-17'; it serves: tiny" in capsys.readouterr().err

    samples = tmp_path / "s.jsonl"
    samples.write_text('{"task_id": "HumanEval/0", "completion": "    return True\\n"}\n')
    assert _eval(out, "--backend", "openai", "--samples", str(samples)) == 2
    assert "give --model (the served name), not --samples" in capsys.readouterr().err
    assert not out.exists()


# --------------------------------------------------------------------------- pytest --editseq-refine


def test_pytest_refine_through_the_openai_backend_by_option_and_by_ini(repair_server, tmp_path):
    root, path, _, _ = write_workspace(tmp_path, "clamp")
    url = repair_server.base_url
    # A folder named like the served model must not be taken for a local model.
    (root / "repair").mkdir()
    run = run_pytest(root, "--editseq-refine", "--editseq-backend", "openai", "--editseq-endpoint", url,
                     "--editseq-model", "repair", env=ENV)
    out = run.stdout
    assert run.returncode == 1 and "1/1 function(s) verified green, 0 applied" in out, out + run.stderr
    row = next(line for line in out.splitlines() if line.startswith("clamp.py::clamp "))
    assert row.split() == ["clamp.py::clamp", "2", "verified", "2", "3/3", "no"]
    assert (root / path).read_text() == CLAMP

    write(root, {"pytest.ini": f"[pytest]\neditseq_backend = openai\neditseq_endpoint = {url}\n"
                               "editseq_model = repair\n"})
    run = run_pytest(root, "--editseq-refine", "--editseq-apply", env=ENV)
    assert "1/1 function(s) verified green, 1 applied" in run.stdout, run.stdout + run.stderr
    assert (root / path).read_text() == CLAMP_FIXED


def test_pytest_refine_with_an_unreachable_endpoint_says_so_once(dead_endpoint, tmp_path):
    root, _, _, _ = write_workspace(tmp_path, "clamp")
    write_workspace(root, "double")
    before = sources(root)
    run = run_pytest(root, "--editseq-refine", "--editseq-apply", "--editseq-backend", "openai",
                     "--editseq-endpoint", dead_endpoint, "--editseq-model", "repair", env=ENV)
    out = run.stdout
    assert run.returncode == 1, out + run.stderr
    message = (f"  error: cannot reach the OpenAI-compatible endpoint {dead_endpoint} (--editseq-endpoint): "
               "cannot connect")
    assert [line for line in out.splitlines() if "error:" in line] == [
        next(line for line in out.splitlines() if line.startswith(message))]
    assert "0/2 function(s) verified green, 0 applied" in out
    assert sources(root) == before

    write(root, {"pytest.ini": "[pytest]\neditseq_backend = vllm\n"})
    run = run_pytest(root, "--editseq-refine", "--editseq-model", "repair", env=ENV)
    assert run.returncode == 4 and "editseq_backend ini option must be one of transformers, openai" in run.stderr
    run = run_pytest(root, "--editseq-refine", "--editseq-model", "repair", "--editseq-backend", "openai",
                     "--editseq-endpoint", "localhost:8000", env=ENV)  # the option wins over the ini
    assert run.returncode == 4 and "must be an http:// or https:// URL" in run.stderr
