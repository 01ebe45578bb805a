"""``editseq train lintseq``: LintSeq supervised fine-tuning with the HF Trainer."""

from __future__ import annotations

import argparse
import sys

from . import train_cycle_cmd, train_pretrain_cmd
from .arguments import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("train", help="train models (tokenizer, pretraining, LintSeq SFT, CYCLE, export)",
                            description="Train models on this machine.")
    jobs = parser.add_subparsers(dest="job", metavar="JOB", required=True)
    _register_lintseq(jobs)
    train_pretrain_cmd.register_jobs(jobs)
    train_cycle_cmd.register_jobs(jobs)


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
    add_sft_flags(parser)
    parser.add_argument("--tokenizer", metavar="DIR",
                        help="with size:...: a tokenizer folder (`editseq train tokenizer`) instead of training one")
    train_pretrain_cmd.add_run_flags(parser)
    parser.set_defaults(handler=run_lintseq)


def add_sft_flags(parser: argparse.ArgumentParser) -> None:
    """The fine-tuning flags `train lintseq` and `train cycle` share (see :func:`sft_flag_settings`)."""
    parser.add_argument("--epochs", type=float, default=2.0, help="epochs (default: 2, the paper's)")
    parser.add_argument("--max-steps", type=positive_int, metavar="N", help="optimizer steps; overrides --epochs")
    parser.add_argument("--lr", type=float, default=3e-4,
                        help="peak learning rate (default: 3e-4; the paper uses 1e-5..5e-5 for 2B-14B models)")
    parser.add_argument("--batch-size", type=positive_int, default=8, metavar="B", help="per-device batch (default: 8)")
    parser.add_argument("--grad-accum", type=positive_int, default=1, metavar="G",
                        help="gradient accumulation steps (default: 1; the paper's effective batch is 512)")
    parser.add_argument("--max-length", type=positive_int, default=1024, metavar="L",
                        help="tokens per example, longer ones are truncated (default: 1024)")
    parser.add_argument("--loss-reduction", choices=("mean", "sum"), default="mean",
                        help="mean: per response token over each optimizer step (default); "
                             "sum: the reference code's literal sum")
    parser.add_argument("--save-steps", type=positive_int, default=500, help="checkpoint every N steps (default: 500)")
    parser.add_argument("--save-total-limit", type=positive_int, default=2,
                        help="checkpoints kept (default: 2)")
    parser.add_argument("--logging-steps", type=positive_int, default=10, help="log the loss every N steps (default: 10)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the last checkpoint in --out (from the start if there is none)")
    parser.add_argument("--instruction-field", default="source_instruction",
                        help="row field holding the instruction (default: source_instruction)")
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def sft_flag_settings(args: argparse.Namespace) -> dict:
    """The :class:`~model_runtime.training.SftSettings` fields of :func:`add_sft_flags`."""
    return dict(epochs=args.epochs, max_steps=args.max_steps or -1, learning_rate=args.lr, batch_size=args.batch_size,
                grad_accum=args.grad_accum, max_length=args.max_length, loss_reduction=args.loss_reduction,
                save_steps=args.save_steps, save_total_limit=args.save_total_limit,
                logging_steps=args.logging_steps, resume=args.resume, seed=args.seed,
                instruction_field=args.instruction_field, threads=args.threads, progress=not args.quiet)


def run_lintseq(args: argparse.Namespace) -> int:
    from model_runtime.training import SftSettings, TrainingError, train_lintseq_sft

    settings = SftSettings(
        data=tuple(args.data), model=args.model, out=args.out, tokenizer_from_data=args.tokenizer_from_data,
        vocab_size=args.vocab_size, tokenizer=args.tokenizer, **sft_flag_settings(args),
        **train_pretrain_cmd.run_settings(args),
    )
    try:
        report = train_lintseq_sft(settings)
    except TrainingError as exc:
        print(f"editseq train lintseq: {exc}", file=sys.stderr)
        return 2
    data = (f"{report.examples} examples ({report.data.truncated} truncated, "
            f"{report.data.dropped_long_prompt} dropped)")
    print(train_pretrain_cmd.summary_line("lintseq", report, data))
    return 0
