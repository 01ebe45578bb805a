"""``editseq eval humaneval``: pass@k of a model (one-shot and refine rounds) or of given samples."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from model_runtime import defaults

from .arguments import MODEL_HELP, add_backend_arguments


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("eval", help="evaluate a model on a benchmark",
                            description="Evaluate a model, or given samples, on a benchmark.")
    benchmarks = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    humaneval = benchmarks.add_parser(
        "humaneval", help="HumanEval (164 problems), every program run in the sandbox",
        description=(
            "Sample a LintSeq model on HumanEval (HumanEvalPack-style instructions), run every program "
            "in the sandbox and report unbiased pass@k; with --refine-rounds, also CYCLE refine chains at "
            "the same number of samples per problem, with the tokens each arm spent. The model runs "
            "in-process (--backend transformers) or behind an OpenAI-compatible endpoint such as vLLM's "
            "(--backend openai --endpoint URL, --model the served name). --samples scores "
            "given completions instead. Writes summary.json, results.jsonl, table.md and pass_at_k.png "
            "into --out. Exit status 2: bad input, or a model or endpoint that cannot be used."
        ),
    )
    source = humaneval.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help=MODEL_HELP)
    source.add_argument("--samples", type=Path,
                        help="JSONL of {task_id, completion} (appended to the prompt) or {task_id, program}")
    add_backend_arguments(humaneval, backend_help="run --model in-process (transformers, default) or through an "
                                                  "OpenAI-compatible endpoint (openai)")
    humaneval.add_argument("--n", type=int, default=1, help="samples per problem (default: 1)")
    humaneval.add_argument("--temperature", type=float, default=None,
                           help=f"sampling temperature (default: {defaults.TEMPERATURE:g}, greedy, for --n 1; "
                                f"else {defaults.SAMPLING_TEMPERATURE:g})")
    humaneval.add_argument("--top-p", type=float, default=defaults.TOP_P)
    humaneval.add_argument("--max-new-tokens", type=int, default=defaults.MAX_NEW_TOKENS)
    humaneval.add_argument("--refine-rounds", type=int, default=0,
                           help="repair rounds per refine chain; 0 runs the one-shot arm only (default)")
    humaneval.add_argument("--limit", type=int, default=None, help="only the first L problems")
    humaneval.add_argument("--out", type=Path, default=Path("eval-humaneval"),
                           help="output folder (default: eval-humaneval)")
    humaneval.add_argument("--timeout", type=float, default=3.0, help="seconds per problem (default: 3)")
    humaneval.add_argument("--workers", type=int, default=2, help="parallel sandbox runs (default: 2)")
    humaneval.add_argument("--seed", type=int, default=defaults.SEED)
    humaneval.add_argument("--no-progress", action="store_true", help="no progress bar")
    humaneval.set_defaults(handler=run)


def _fail(message: str, code: int = 1) -> int:
    print(f"editseq eval humaneval: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from model_runtime.errors import EditseqError
    from model_runtime.evaluation.report import write_report
    from model_runtime.evaluation.run import EvalSettings, evaluate_model, evaluate_samples, read_samples

    if args.limit is not None and args.limit < 1:
        return _fail("--limit must be at least 1", 2)
    if args.samples is not None and args.backend != "transformers":
        return _fail("--backend openai samples a served model: give --model (the served name), not --samples", 2)
    try:
        if args.samples is not None:
            total = sum(len(v) for v in read_samples(args.samples).values())
            if args.limit is not None:
                total = None  # the bar counts sample runs; with a limit we do not know them up front
            with tqdm(total=total, unit="run", desc="humaneval", disable=args.no_progress) as bar:
                report = evaluate_samples(args.samples, limit=args.limit, timeout_s=args.timeout,
                                          workers=args.workers, progress=bar.update)
        else:
            temperature = args.temperature if args.temperature is not None else (
                defaults.TEMPERATURE if args.n == 1 else defaults.SAMPLING_TEMPERATURE)
            settings = EvalSettings(n=args.n, temperature=temperature, top_p=args.top_p,
                                    max_new_tokens=args.max_new_tokens, refine_rounds=args.refine_rounds,
                                    timeout_s=args.timeout, workers=args.workers, seed=args.seed)
            report = _run_model(args, settings, evaluate_model, tqdm)
            # Which model answered, so a summary.json says what it measured.
            report.settings.update(model=args.model, backend=args.backend,
                                   endpoint=args.endpoint if args.backend == "openai" else None)
    except (EditseqError, OSError, ValueError, KeyError) as exc:
        return _fail(str(exc), 2)
    data = write_report(report, args.out)
    print((args.out / "table.md").read_text(encoding="utf-8"), end="")
    print(f"wrote {args.out}/ (summary.json, results.jsonl, table.md, pass_at_k.png) "
          f"in {data['seconds']['total']:.1f} s")
    return 0


def _run_model(args: argparse.Namespace, settings, evaluate_model, tqdm):
    from .arguments import loaded_backend

    with loaded_backend(args) as backend:
        with tqdm(total=args.limit or 164, unit="problem", desc="humaneval", disable=args.no_progress) as bar:
            return evaluate_model(backend, settings, limit=args.limit, progress=bar.update)
