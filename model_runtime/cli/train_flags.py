"""Flags the training jobs share (``train lintseq``, ``train pretrain``, ``train cycle``), and their summary line."""

from __future__ import annotations

import argparse

from .arguments import positive_int


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
    """The :class:`~model_runtime.training.sft.SftSettings` fields of :func:`add_sft_flags`."""
    return dict(epochs=args.epochs, max_steps=args.max_steps or -1, learning_rate=args.lr, batch_size=args.batch_size,
                grad_accum=args.grad_accum, max_length=args.max_length, loss_reduction=args.loss_reduction,
                save_steps=args.save_steps, save_total_limit=args.save_total_limit,
                logging_steps=args.logging_steps, resume=args.resume, seed=args.seed,
                instruction_field=args.instruction_field, threads=args.threads, progress=not args.quiet)


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """Flags every Trainer job shares for long runs: chunking, device figures, speed."""
    parser.add_argument("--time-budget", type=float, metavar="MINUTES",
                        help="stop with a checkpoint MINUTES after the job started (data and model loading "
                             "included); --resume continues the same schedule (cut a long run into chunks)")
    parser.add_argument("--peak-tflops", type=float, metavar="T",
                        help="device peak TFLOP/s for the MFU figure (default: looked up for H100/H200/A100/L4)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (GPU runs)")
    parser.add_argument("--dataloader-workers", type=int, default=0, metavar="N",
                        help="data loader worker processes (default: 0)")


def run_settings(args: argparse.Namespace) -> dict:
    """The :class:`~model_runtime.training.sft.SftSettings` fields of :func:`add_run_flags`."""
    return {"time_budget_minutes": args.time_budget, "peak_tflops": args.peak_tflops, "compile": args.compile,
            "dataloader_workers": args.dataloader_workers}


def summary_line(job: str, report, data: str) -> str:
    """One line that says what a training run did, with its speed figures."""
    resumed = f", resumed from {report.resumed_from}" if report.resumed_from else ""
    loss = (f"loss {report.first_loss:.3f} -> {report.last_loss:.3f}"
            if report.first_loss is not None else "no loss logged")
    speed = f"{report.steps_per_second:.2f} steps/s"
    if report.tokens_per_second:
        speed += f", {report.tokens_per_second:,.0f} tokens/s"
    if report.mfu is not None:
        speed += f", MFU {100 * report.mfu:.1f} %"
    stopped = " (time budget reached; --resume continues)" if report.stopped_early else ""
    return (f"train {job}: {data}, {report.parameters / 1e6:.2f}M parameters, step {report.global_step}"
            f"{resumed}{stopped}, {loss}, {speed}, {report.precision}; model in {report.out}")
