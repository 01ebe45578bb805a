"""``editseq train rank``: teach a repair model to rank the single-edit repairs of a bug (the ``rank`` strategy)."""

from __future__ import annotations

import argparse
import sys

from .arguments import positive_int

__all__ = ["register_jobs"]

EXIT_BAD_INPUT = 2


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


#: ``RankSettings``' defaults, written out so that ``editseq --help`` imports no training code
#: (a test checks they agree).
DEFAULTS = {"steps": 1000, "negatives": 15, "learning_rate": 1e-4, "max_answer_tokens": 300, "save_every": 100,
            "seed": 0}


def register_jobs(jobs: argparse._SubParsersAction) -> None:
    parser = jobs.add_parser(
        "rank",
        help="fine-tune a repair model to put the true fix first among every single-edit repair of a bug",
        description=(
            "For each repair row (`editseq corpus --bugs K` bugs.jsonl, or `editseq train cycle-collect` "
            "output) whose fix is one single edit, score the true cycle answer and up to --negatives other "
            "single-edit answers of the same faulty code by their log-likelihood after the repair prompt "
            "(as the refine loop's rank strategy does) and train with a softmax cross-entropy over them. "
            "Stops after --steps steps or --minutes of wall clock with a checkpoint; run it again with the "
            "same --out to continue. The finished model lands in --out (then `editseq train export`)."
        ),
    )
    parser.add_argument("--data", required=True, nargs="+", metavar="BUGS.jsonl", help="repair rows")
    parser.add_argument("--model", required=True, metavar="DIR", help="model folder to fine-tune (the CYCLE model)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (checkpoint, log, model)")
    parser.add_argument("--steps", type=positive_int, default=DEFAULTS["steps"],
                        help="rows to train on, one per step (default: %(default)s)")
    parser.add_argument("--minutes", type=_positive, default=None,
                        help="stop this call after M minutes with a checkpoint (default: no limit)")
    parser.add_argument("--negatives", type=positive_int, default=DEFAULTS["negatives"],
                        help="other single-edit answers per row (default: %(default)s)")
    parser.add_argument("--learning-rate", type=_positive, default=DEFAULTS["learning_rate"],
                        help="AdamW learning rate after warm-up (default: %(default)s)")
    parser.add_argument("--max-answer-tokens", type=positive_int, default=DEFAULTS["max_answer_tokens"],
                        help="skip rows whose longest candidate answer is longer (default: %(default)s)")
    parser.add_argument("--save-every", type=positive_int, default=DEFAULTS["save_every"],
                        help="steps between checkpoints (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="row order and negatives")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from model_runtime.errors import EditseqError
    from model_runtime.training.rank_training import RankSettings, train_rank

    try:
        settings = RankSettings(data=tuple(args.data), model=args.model, out=args.out, steps=args.steps,
                                minutes=args.minutes, negatives=args.negatives, learning_rate=args.learning_rate,
                                max_answer_tokens=args.max_answer_tokens, save_every=args.save_every,
                                seed=args.seed)
        report = train_rank(settings)
    except EditseqError as exc:
        print(f"editseq train rank: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(report.skipped.items())) or "none"
    curve = (f"loss {report.first['loss']} -> {report.last['loss']}, top-1 {report.first['top1']} -> "
             f"{report.last['top1']}" if report.first else "no steps logged yet")
    status = f"finished; model in {args.out}" if report.finished else "not finished; run again to continue"
    print(f"train rank: step {report.step}/{args.steps} ({report.steps_this_call} this call"
          f"{', resumed' if report.resumed else ''}), {report.parameters / 1e6:.2f}M parameters, {curve}, "
          f"skipped: {skipped}, {report.seconds:.0f} s; {status}")
    return 0
