"""``editseq eval humaneval``: pass@k of a model (one-shot and refine rounds) or of given samples.

``editseq eval repair``: the refine loop on buggy functions (a HumanEvalPack-schema file, or
mutants of HumanEval's canonical solutions) against a no-model baseline of single-edit mutations.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from model_runtime import defaults

from .arguments import MODEL_HELP, add_backend_arguments, add_strategy_argument, positive_int


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
    humaneval.add_argument("--format", dest="prompt_format", choices=defaults.WRITE_FORMATS,
                           default=defaults.PROMPT_FORMAT,
                           help="the prompt format the model speaks: lintseq or chat (default: auto, read off "
                                "the model)")
    humaneval.add_argument("--no-progress", action="store_true", help="no progress bar")
    humaneval.set_defaults(handler=run)
    _register_repair(benchmarks)


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
                                    timeout_s=args.timeout, workers=args.workers, seed=args.seed,
                                    prompt_format=args.prompt_format)
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


# --------------------------------------------------------------------------- eval repair


def _register_repair(benchmarks: argparse._SubParsersAction) -> None:
    repair = benchmarks.add_parser(
        "repair", help="repair buggy functions with the refine loop, against a no-model baseline",
        description=(
            "Repair buggy functions until their tests pass: each problem runs the refine loop of "
            "`editseq refine` (round 0 runs the buggy code; each round shows the model the first failing "
            "assertion) and, side by side, a no-model baseline that runs the buggy function's single-edit "
            "mutations in order, with the same budget of 1 + rounds x candidates test runs per problem (the "
            "first is the buggy code). Problems come from --problems (HumanEvalPack's schema: task_id, "
            "declaration, buggy_solution, test, entry_point) or --mutants N (bugs drawn from HumanEval's "
            "canonical solutions with --seed, kept only if they fail the tests). Writes summary.json, "
            "results.jsonl, table.md and repair.png (and problems.jsonl for mutants) into --out. "
            "Exit status 2: bad input, or a model or endpoint that cannot be used."
        ),
    )
    source = repair.add_mutually_exclusive_group(required=True)
    source.add_argument("--problems", type=Path, metavar="FILE",
                        help="JSON Lines (or a JSON array) in HumanEvalPack's schema")
    source.add_argument("--mutants", type=positive_int, metavar="N",
                        help="N single-edit bugs of HumanEval's canonical solutions that fail the tests")
    repair.add_argument("--seed", type=int, default=defaults.SEED,
                        help=f"seed of the mutants and of sampling (default: {defaults.SEED})")
    repair.add_argument("--model", help=MODEL_HELP + "; not with --baseline-only")
    add_backend_arguments(repair, backend_help="run --model in-process (transformers, default) or through an "
                                               "OpenAI-compatible endpoint (openai)")
    repair.add_argument("--rounds", type=int, default=defaults.ROUNDS,
                        help=f"repair rounds after round 0 (default: {defaults.ROUNDS})")
    repair.add_argument("--candidates", "-k", type=int, default=defaults.CANDIDATES,
                        help=f"candidates per round (default: {defaults.CANDIDATES})")
    add_strategy_argument(repair)
    repair.add_argument("--temperature", type=float, default=defaults.TEMPERATURE, help="0 means greedy (default)")
    repair.add_argument("--top-p", type=float, default=defaults.TOP_P)
    repair.add_argument("--max-new-tokens", type=int, default=defaults.MAX_NEW_TOKENS)
    repair.add_argument("--limit", type=positive_int, default=None, metavar="L",
                        help="only the first L problems of --problems; with --mutants, draw from the first L "
                             "HumanEval problems only")
    repair.add_argument("--workers", type=positive_int, default=2,
                        help="problems run at once (default: 2); the model is shared, tests overlap")
    repair.add_argument("--timeout", type=float, default=3.0, help="seconds per test run (default: 3)")
    repair.add_argument("--python", default=None, metavar="EXE",
                        help="interpreter for the tests (default: python3 on PATH)")
    repair.add_argument("--out", type=Path, default=Path("eval-repair"), help="output folder (default: eval-repair)")
    arms = repair.add_mutually_exclusive_group()
    arms.add_argument("--no-baseline", action="store_true", help="run the model arm only")
    arms.add_argument("--baseline-only", action="store_true", help="run the no-model baseline only (no --model)")
    repair.add_argument("--no-progress", action="store_true", help="no progress bar")
    repair.set_defaults(handler=run_repair)


def _fail_repair(message: str, code: int = 2) -> int:
    print(f"editseq eval repair: {message}", file=sys.stderr)
    return code


def run_repair(args: argparse.Namespace) -> int:
    from model_runtime.errors import EditseqError

    if args.baseline_only and args.model is not None:
        return _fail_repair("--baseline-only runs no model: drop --model, or drop --baseline-only")
    if not args.baseline_only and args.model is None:
        args.model = defaults.MODEL
    if not args.timeout > 0:
        return _fail_repair(f"--timeout must be a positive number of seconds, got {args.timeout}")
    try:
        report = _repair(args)
    except (EditseqError, OSError, ValueError, KeyError) as exc:
        return _fail_repair(str(exc))
    from model_runtime.evaluation.repair import write_report

    data = write_report(report, args.out)
    print((args.out / "table.md").read_text(encoding="utf-8"), end="")
    print(f"wrote {args.out}/ (summary.json, results.jsonl, table.md, repair.png"
          f"{', problems.jsonl' if report.mutants is not None else ''}) in {data['seconds']['total']:.1f} s")
    return 0


def _repair(args: argparse.Namespace):
    import contextlib

    from tqdm import tqdm

    from model_runtime.evaluation.problems import load_problems
    from model_runtime.evaluation.repair import build_mutants, evaluate_repair, read_problems
    from model_runtime.run.engine import opened_backend

    from .arguments import run_config

    if args.baseline_only:
        args.model = defaults.MODEL  # a RunConfig names a model; the baseline never loads it
    config = run_config(args, rounds=args.rounds, candidates=args.candidates, strategy=args.strategy,
                            prompt_format=args.prompt_format, max_new_tokens=args.max_new_tokens,
                        temperature=args.temperature, top_p=args.top_p, seed=args.seed, python=args.python)
    mutants, started = None, time.perf_counter()
    if args.problems is not None:
        problems = read_problems(args.problems, args.limit)
    else:
        mutants = build_mutants(load_problems(args.limit), args.mutants, args.seed, timeout_s=args.timeout,
                                workers=args.workers, python=args.python)
        problems = mutants.problems
        print(f"editseq eval repair: {mutants.found} of {args.mutants} mutants found (seed {args.seed}; "
              f"{mutants.checked} checked, {mutants.passing} passed the tests and were dropped)",
              file=sys.stderr)
        if not problems:
            raise ValueError("no mutant fails the tests: nothing to repair")
    building = time.perf_counter() - started
    opened = contextlib.nullcontext(None) if args.baseline_only else opened_backend(config)
    with opened as backend, tqdm(total=len(problems), unit="problem", desc="repair",
                                 disable=args.no_progress) as bar:
        report = evaluate_repair(problems, config, backend, baseline=not args.no_baseline, timeout_s=args.timeout,
                                 workers=args.workers, progress=bar.update)
    report.mutants = mutants
    report.seconds = {"mutants": round(building, 3), **report.seconds,
                      "total": round(time.perf_counter() - started, 3)}
    report.extra = {"source": str(args.problems) if args.problems is not None else "mutants",
                    "endpoint": args.endpoint if args.backend == "openai" and not args.baseline_only else None}
    return report
