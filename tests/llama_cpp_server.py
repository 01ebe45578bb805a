"""llama-cpp-python's OpenAI-compatible server over a GGUF made from a tiny test model.

A server no one here wrote: llama.cpp (built from source by the
``llama-cpp-python`` package, cached outside the clone by ``.ci/run``), its
own tokenizer and sampler, its own HTTP layer (FastAPI). The model folder is
converted with :func:`model_runtime.training.gguf_export.export_gguf`; the
server then answers as llama.cpp does, quirks included: model ids are file
paths (unless aliased), ``n`` is ignored (one choice streamed), streamed
chunks carry no ``usage``.

Tests that need it skip when ``llama_cpp`` is not installed (the README's
``.[test]`` install does not build llama.cpp; ``.ci/run`` does).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

HOST = "127.0.0.1"


def llama_cpp_available() -> bool:
    try:
        import llama_cpp  # noqa: F401
        import llama_cpp.server  # noqa: F401
    except ImportError:
        return False
    return True


requires_llama_cpp = pytest.mark.skipif(
    not llama_cpp_available(), reason="llama-cpp-python[server] is not installed (.ci/run builds it)")


def gguf_of(model_folder: str | Path, out: str | Path) -> Path:
    """``model_folder`` as a GGUF file at ``out`` (f32: the same numbers as the in-process model)."""
    from model_runtime.training.gguf_export import export_gguf

    return export_gguf(model_folder, out).out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def llama_cpp_server(gguf: str | Path, *, alias: str | None = None, n_ctx: int = 1024,
                     log: str | Path | None = None) -> Iterator[str]:
    """Run ``python -m llama_cpp.server`` on ``gguf``; yields its base URL (``http://127.0.0.1:N/v1``)."""
    port = _free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", HOST, "--port", str(port),
               "--n_ctx", str(n_ctx), "--n_threads", "1", "--verbose", "False"]
    if alias:
        command += ["--model_alias", alias]
    out = open(log, "wb") if log else subprocess.DEVNULL
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    url = f"http://{HOST}:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {process.returncode} (log: {log})")
            try:
                if httpx.get(url + "/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("llama_cpp.server did not answer within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if out is not subprocess.DEVNULL:
            out.close()
