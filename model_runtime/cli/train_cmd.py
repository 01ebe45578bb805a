"""``editseq train lintseq``: LintSeq supervised fine-tuning with the HF Trainer."""

from __future__ import annotations

import argparse
import sys

from . import train_cycle_cmd, train_flags, train_pretrain_cmd, train_rank_cmd
from .arguments import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("train", help="train models (tokenizer, pretraining, LintSeq SFT, CYCLE, export)",
                            description="Train models on this machine.")
    jobs = parser.add_subparsers(dest="job", metavar="JOB", required=True)
    _register_lintseq(jobs)
    train_pretrain_cmd.register_jobs(jobs)
    train_cycle_cmd.register_jobs(jobs)
    train_rank_cmd.register_jobs(jobs)


def _register_lintseq(jobs: argparse._SubParsersAction) -> None:
    parser = jobs.add_parser(
        "lintseq",
        help="fine-tune a causal LM on `editseq lintseq` output (loss on the response only)",
        description=(
            "Fine-tune a causal LM on LintSeq edit paths (rows written by `editseq lintseq`), with "
            "the loss on the response only, a linear schedule, warmup ratio 0.001 and weight decay "
            "0.01 as in the paper; bf16 on a GPU that supports it, fp32 otherwise. "
            "--model size:tiny|mini|small|base builds a byte-level BPE tokenizer and a fresh Llama "
            "of that size FROM SCRATCH (base: ~30M parameters, the default size; tiny: tests); "
            "--model PATH fine-tunes an existing model folder, adding <|diff|> when its tokenizer "
            "lacks it. Writes checkpoint-N folders, loss_log.jsonl and the final model + tokenizer "
            "into --out (load it with `editseq generate --model OUT`)."
        ),
    )
    parser.add_argument("--data", required=True, nargs="+", metavar="PATHS.jsonl",
                        help="`editseq lintseq` output files")
    parser.add_argument("--model", required=True, metavar="PATH|size:NAME",
                        help="model folder, or size:tiny|mini|small|base to build one from scratch")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (checkpoints, log, model)")
    parser.add_argument("--tokenizer-from-data", action="store_true",
                        help="with size:...: train the tokenizer on the training data, not the stdlib")
    parser.add_argument("--vocab-size", type=positive_int, default=8192,
                        help="with size:...: tokenizer vocabulary (default: 8192)")
    train_flags.add_sft_flags(parser)
    parser.add_argument("--tokenizer", metavar="DIR",
                        help="with size:...: a tokenizer folder (`editseq train tokenizer`) instead of training one")
    train_flags.add_run_flags(parser)
    parser.set_defaults(handler=run_lintseq)


def run_lintseq(args: argparse.Namespace) -> int:
    from model_runtime.training.sft import SftSettings, TrainingError, train_lintseq_sft

    settings = SftSettings(
        data=tuple(args.data), model=args.model, out=args.out, tokenizer_from_data=args.tokenizer_from_data,
        vocab_size=args.vocab_size, tokenizer=args.tokenizer, **train_flags.sft_flag_settings(args),
        **train_flags.run_settings(args),
    )
    try:
        report = train_lintseq_sft(settings)
    except TrainingError as exc:
        print(f"editseq train lintseq: {exc}", file=sys.stderr)
        return 2
    data = (f"{report.examples} examples ({report.data.truncated} truncated, "
            f"{report.data.dropped_long_prompt} dropped)")
    print(train_flags.summary_line("lintseq", report, data))
    return 0
