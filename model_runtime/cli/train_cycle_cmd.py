"""``editseq train cycle-collect`` and ``editseq train cycle``: CYCLE's self-refinement data and training.

``cycle-collect`` samples the current model on problems with tests and
imports verified refine trajectories, writing repair and plain rows
(:mod:`model_runtime.training.cycle_data`); ``cycle`` fine-tunes on them mixed with
LintSeq rows, with past-generation masking (:mod:`model_runtime.training.cycle_training`).
Exit status 2: bad input (missing or malformed files, bad numbers, a model or
endpoint that cannot be used).
"""

from __future__ import annotations

import argparse
import sys

from model_runtime import defaults

from . import train_flags
from .arguments import MODEL_HELP, add_backend_arguments, positive_int

__all__ = ["register_jobs"]

EXIT_BAD_INPUT = 2


def register_jobs(jobs: argparse._SubParsersAction) -> None:
    _register_collect(jobs)
    _register_train(jobs)


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a probability in [0, 1], got {value}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


# --------------------------------------------------------------------------- cycle-collect


def _register_collect(jobs: argparse._SubParsersAction) -> None:
    parser = jobs.add_parser(
        "cycle-collect",
        help="collect CYCLE repair data: the model's failing samples with feedback and a fix",
        description=(
            "Sample the model on problems with tests (HumanEval-schema JSONL, e.g. `editseq corpus`'s "
            "problems.jsonl) in the lintseq format, as `editseq eval` does, and run every program in the "
            "sandbox. Each failing sample becomes a repair row: the faulty function, the execution feedback "
            "(one failing test) and the diff steps to the most similar correct solution (the canonical one "
            "or a passing sample). Passing samples become plain rows. --trajectories adds repair rows from "
            "verified `editseq refine` runs (RefineResult JSON). Rows go to --out (JSONL, written atomically); "
            "train on them with `editseq train cycle`."
        ),
    )
    parser.add_argument("--model", help=MODEL_HELP)
    add_backend_arguments(parser)
    parser.add_argument("--problems", nargs="+", default=[], metavar="FILE",
                        help="HumanEval-schema JSONL files (task_id, prompt, entry_point, test, canonical_solution)")
    parser.add_argument("--samples", "-k", type=positive_int, default=4, metavar="K",
                        help="samples per problem (default: 4)")
    parser.add_argument("--temperature", type=float, default=defaults.SAMPLING_TEMPERATURE,
                        help=f"sampling temperature (default: {defaults.SAMPLING_TEMPERATURE:g})")
    parser.add_argument("--top-p", type=float, default=defaults.TOP_P)
    parser.add_argument("--max-new-tokens", type=positive_int, default=defaults.MAX_NEW_TOKENS)
    parser.add_argument("--timeout", type=_positive, default=3.0, help="seconds per program (default: 3)")
    parser.add_argument("--workers", type=positive_int, default=2, help="parallel sandbox runs (default: 2)")
    parser.add_argument("--limit", type=positive_int, help="only the first L problems")
    parser.add_argument("--trajectories", nargs="+", default=[], metavar="FILE",
                        help="refine results (RefineResult.to_dict() JSON: an object, a list, or one per line)")
    parser.add_argument("--out", required=True, metavar="FILE", help="output JSONL (cycle.jsonl)")
    parser.add_argument("--seed", type=int, default=defaults.SEED)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run_collect)


def _fail(job: str, message: str) -> int:
    print(f"editseq train {job}: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def run_collect(args: argparse.Namespace) -> int:
    from model_runtime.errors import EditseqError
    from model_runtime.training.cycle_data import (
        CollectCounts,
        CollectSettings,
        collect_cycle_data,
        import_trajectories,
        read_problems,
        write_rows,
    )

    if not args.problems and not args.trajectories:
        return _fail("cycle-collect", "nothing to collect from: give --problems (with --model) or --trajectories")
    if args.problems and not args.model:
        return _fail("cycle-collect", "--problems needs --model, the model to sample")
    try:
        settings = CollectSettings(samples=args.samples, temperature=args.temperature, top_p=args.top_p,
                                   max_new_tokens=args.max_new_tokens, timeout_s=args.timeout,
                                   workers=args.workers, seed=args.seed)
        problems = [p for path in args.problems for p in read_problems(path)]
    except (OSError, ValueError) as exc:
        return _fail("cycle-collect", str(exc))
    if args.problems and not problems:
        return _fail("cycle-collect", f"no problems in {', '.join(args.problems)}")
    if args.limit is not None:
        problems = problems[: args.limit]
    try:
        rows, counts = [], CollectCounts()
        if args.trajectories:  # cheap and checks its input: before loading a model
            rows, counts = import_trajectories(args.trajectories)
        if problems:
            sampled, sample_counts = _collect(args, problems, settings, collect_cycle_data)
            rows = sampled + rows
            _merge(counts, sample_counts)
    except (EditseqError, OSError, ValueError) as exc:
        return _fail("cycle-collect", str(exc))
    written = write_rows(args.out, rows)
    print(f"train cycle-collect: {counts.summary()}; wrote {written} rows to {args.out}")
    return 0


def _merge(into, other) -> None:
    for name in ("problems", "samples", "passed", "failed", "timeouts", "errors", "not_run", "canonical_failed",
                 "repair_rows", "plain_rows"):
        setattr(into, name, getattr(into, name) + getattr(other, name))
    into.skipped.update(other.skipped)


def _collect(args: argparse.Namespace, problems, settings, collect_cycle_data):
    from tqdm import tqdm

    from .arguments import loaded_backend

    with loaded_backend(args) as backend:
        total = len(problems) * settings.samples + sum(bool(p.canonical_solution.strip()) for p in problems)
        with tqdm(total=total, unit="run", desc="cycle-collect", disable=args.no_progress) as bar:
            return collect_cycle_data(backend, problems, settings, progress=bar.update)


# --------------------------------------------------------------------------- cycle (training)


def _register_train(jobs: argparse._SubParsersAction) -> None:
    parser = jobs.add_parser(
        "cycle",
        help="fine-tune on CYCLE repair rows mixed with LintSeq rows (past-generation masking)",
        description=(
            "Fine-tune a model folder on `editseq train cycle-collect` rows: each repair row is the cycle "
            "prompt (problem, faulty code, execution feedback) answered by the diff steps to the good "
            "code, loss on the answer only; with probability --pgm each token of the faulty-code/feedback "
            "block is hidden from attention (CYCLE's past-generation mask). Plain rows (collected passing "
            "samples and --lintseq-data) are mixed in at --lintseq-ratio per repair row. Writes "
            "checkpoint-N folders, loss_log.jsonl and the model into --out."
        ),
    )
    parser.add_argument("--data", required=True, nargs="+", metavar="CYCLE.jsonl",
                        help="`editseq train cycle-collect` output files")
    parser.add_argument("--lintseq-data", nargs="+", default=[], metavar="PATHS.jsonl",
                        help="`editseq lintseq` output files for the plain part of the mix")
    parser.add_argument("--lintseq-ratio", type=_non_negative, default=3.0, metavar="R",
                        help="plain examples per repair example (default: 3, repair = 25%% of the mix)")
    parser.add_argument("--pgm", type=_probability, default=0.05, metavar="P",
                        help="past-generation mask probability per faulty-code/feedback token (default: 0.05; "
                             "the paper's value is unconfirmed; 0 turns it off)")
    parser.add_argument("--model", required=True, metavar="DIR",
                        help="model folder to fine-tune (usually the one the data was collected from)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (checkpoints, log, model)")
    train_flags.add_sft_flags(parser)
    train_flags.add_run_flags(parser)
    parser.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    from model_runtime.training.cycle_training import CycleSettings, train_cycle
    from model_runtime.training.sft import SftSettings, TrainingError

    if args.model.startswith("size:"):
        return _fail("cycle", "--model must be a trained model folder: CYCLE fine-tunes the model it collected from")
    training = SftSettings(data=tuple(args.lintseq_data), model=args.model, out=args.out,
                           **train_flags.sft_flag_settings(args), **train_flags.run_settings(args))
    settings = CycleSettings(data=tuple(args.data), lintseq_data=tuple(args.lintseq_data),
                             lintseq_ratio=args.lintseq_ratio, pgm=args.pgm, training=training)
    try:
        report, mix = train_cycle(settings)
    except TrainingError as exc:
        return _fail("cycle", str(exc))
    data = (f"{mix.repair} repair + {mix.plain} plain examples ({mix.plain_collected} collected, "
            f"{mix.plain_lintseq} lintseq; repair {100 * mix.repair_share:.0f} %), pgm {args.pgm:g}, "
            f"{report.data.truncated} truncated, {report.data.dropped_long_prompt} dropped")
    print(train_flags.summary_line("cycle", report, data))
    return 0
