"""``editseq train tokenizer|pretrain|export|gguf``: a model from scratch on the corpus, and shipping it."""

from __future__ import annotations

import argparse
import sys

from . import train_flags
from .arguments import positive_int

__all__ = ["register_jobs"]


def register_jobs(jobs: argparse._SubParsersAction) -> None:
    _register_tokenizer(jobs)
    _register_pretrain(jobs)
    _register_export(jobs)
    _register_gguf(jobs)


def _register_tokenizer(jobs: argparse._SubParsersAction) -> None:
    parser = jobs.add_parser(
        "tokenizer", help="train a byte-level BPE tokenizer on the corpus",
        description=("Train a byte-level BPE (<|endoftext|> eos/bos, <|pad|>, <|diff|> as a normal token) on "
                     "corpus files: pretrain.jsonl / programs.jsonl rows or plain source files. The folder "
                     "loads with AutoTokenizer; pass it to `train pretrain --tokenizer`."),
    )
    parser.add_argument("--data", required=True, nargs="+", metavar="FILE", help="corpus files")
    parser.add_argument("--out", required=True, metavar="DIR", help="tokenizer folder")
    parser.add_argument("--vocab-size", type=positive_int, default=8192, help="vocabulary (default: 8192)")
    parser.set_defaults(handler=_run_tokenizer)


def _run_tokenizer(args: argparse.Namespace) -> int:
    import time

    from model_runtime.training.pretraining import train_corpus_tokenizer
    from model_runtime.training.sft import TrainingError

    start = time.perf_counter()
    try:
        tokenizer = train_corpus_tokenizer(args.data, args.out, args.vocab_size)
    except (TrainingError, OSError) as exc:
        print(f"editseq train tokenizer: {exc}", file=sys.stderr)
        return 2
    print(f"train tokenizer: {len(tokenizer)} tokens in {time.perf_counter() - start:.1f} s; saved in {args.out}")
    return 0


def _register_pretrain(jobs: argparse._SubParsersAction) -> None:
    parser = jobs.add_parser(
        "pretrain", help="pretrain a causal LM on the code corpus (packed blocks)",
        description=("Pretrain a causal LM on whole source files (`editseq corpus` pretrain.jsonl), packed "
                     "into blocks with end-of-text between documents; loss on every token. --model size:NAME "
                     "builds a fresh Llama (tiny, mini, small, base ~30M) with the --tokenizer folder (trained "
                     "on the data when omitted); --model DIR continues pretraining a folder. The token stream "
                     "is cached in --out. Logs tokens/s and MFU (where the GPU's peak is known)."),
    )
    parser.add_argument("--data", required=True, nargs="+", metavar="FILE", help="pretrain.jsonl or source files")
    parser.add_argument("--model", default="size:base", metavar="size:NAME|DIR", help="default: size:base")
    parser.add_argument("--tokenizer", metavar="DIR", help="with size:NAME: tokenizer folder (`train tokenizer`)")
    parser.add_argument("--vocab-size", type=positive_int, default=8192,
                        help="with size:NAME and no --tokenizer: vocabulary of the tokenizer trained here")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (checkpoints, log, model)")
    parser.add_argument("--block-size", type=positive_int, default=1024, help="tokens per block (default: 1024)")
    parser.add_argument("--epochs", type=float, default=1.0, help="epochs (default: 1)")
    parser.add_argument("--max-steps", type=positive_int, metavar="N", help="optimizer steps; overrides --epochs")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default: 1e-3)")
    parser.add_argument("--lr-scheduler", choices=("cosine", "linear", "constant_with_warmup"), default="cosine")
    parser.add_argument("--warmup", type=float, default=0.02,
                        help="warmup: a fraction of the steps below 1, else a number of steps (default: 0.02)")
    parser.add_argument("--weight-decay", type=float, default=0.1, help="default: 0.1")
    parser.add_argument("--batch-size", type=positive_int, default=8, metavar="B", help="blocks per device batch")
    parser.add_argument("--grad-accum", type=positive_int, default=1, metavar="G")
    parser.add_argument("--save-steps", type=positive_int, default=500)
    parser.add_argument("--save-total-limit", type=positive_int, default=2)
    parser.add_argument("--logging-steps", type=positive_int, default=10)
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    train_flags.add_run_flags(parser)
    parser.set_defaults(handler=_run_pretrain)


def _run_pretrain(args: argparse.Namespace) -> int:
    from model_runtime.training.pretraining import pretrain
    from model_runtime.training.sft import SftSettings, TrainingError

    settings = SftSettings(
        data=tuple(args.data), model=args.model, out=args.out, tokenizer=args.tokenizer,
        vocab_size=args.vocab_size, epochs=args.epochs, max_steps=args.max_steps or -1, learning_rate=args.lr,
        lr_scheduler=args.lr_scheduler, warmup_ratio=args.warmup, weight_decay=args.weight_decay,
        batch_size=args.batch_size, grad_accum=args.grad_accum, max_length=args.block_size,
        save_steps=args.save_steps, save_total_limit=args.save_total_limit, logging_steps=args.logging_steps,
        resume=args.resume, seed=args.seed, threads=args.threads, progress=not args.quiet,
        **train_flags.run_settings(args),
    )
    try:
        report = pretrain(settings)
    except TrainingError as exc:
        print(f"editseq train pretrain: {exc}", file=sys.stderr)
        return 2
    data = f"{report.data.documents} documents, {report.data.tokens} tokens in {report.examples} blocks of {args.block_size}"
    print(train_flags.summary_line("pretrain", report, data))
    return 0


def _register_export(jobs: argparse._SubParsersAction) -> None:
    parser = jobs.add_parser(
        "export", help="write a model as bf16 safetensors shards within size limits",
        description=("Rewrite a trained model folder (or checkpoint) in bf16 (default) safetensors shards of "
                     "at most --max-shard-mb megabytes, tokenizer included, and check the limits (default: "
                     "no file over 16 MiB, 64 MiB in all) before anything is replaced."),
    )
    parser.add_argument("--model", required=True, metavar="DIR", help="model folder or checkpoint")
    parser.add_argument("--out", required=True, metavar="DIR", help="export folder (replaced)")
    parser.add_argument("--dtype", choices=("bf16", "fp16", "fp32"), default="bf16")
    parser.add_argument("--max-shard-mb", type=float, default=15.0, help="shard size in MB (default: 15)")
    parser.add_argument("--max-file-mib", type=float, default=16.0, help="largest file allowed (default: 16)")
    parser.add_argument("--max-total-mib", type=float, default=64.0, help="whole export allowed (default: 64)")
    parser.set_defaults(handler=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from model_runtime.backends.embedded import resolve_model
    from model_runtime.training.export import MIB, ExportError, export_model

    try:
        report = export_model(resolve_model(args.model), args.out, dtype=args.dtype, max_shard_mb=args.max_shard_mb,
                              max_file_mib=args.max_file_mib, max_total_mib=args.max_total_mib)
    except ExportError as exc:
        print(f"editseq train export: {exc}", file=sys.stderr)
        return 2
    name, size = report.largest
    print(f"train export: {report.parameters / 1e6:.2f}M parameters in {report.dtype}, {len(report.files)} files, "
          f"{report.total_bytes / MIB:.1f} MiB in all, largest {name} {size / MIB:.1f} MiB; in {report.out}")
    return 0


def _register_gguf(jobs: argparse._SubParsersAction) -> None:
    parser = jobs.add_parser(
        "gguf", help="write a model as one GGUF file for llama.cpp, Ollama or LM Studio",
        description=("Convert a model folder editseq trained (a Llama with a byte-level BPE tokenizer; "
                     "`embedded` for the shipped model) to GGUF, so that llama.cpp's server, Ollama or "
                     "LM Studio can serve it to `--backend openai`. Needs the gguf package "
                     "(pip install 'editseq[gguf]')."),
    )
    parser.add_argument("--model", required=True, metavar="DIR", help="model folder, or `embedded`")
    parser.add_argument("--out", required=True, metavar="FILE", help="the .gguf file to write")
    parser.add_argument("--dtype", choices=("f32", "f16"), default="f32",
                        help="f32 computes what transformers computes; f16 halves the file (default: f32)")
    parser.set_defaults(handler=_run_gguf)


def _run_gguf(args: argparse.Namespace) -> int:
    from model_runtime.backends.embedded import resolve_model
    from model_runtime.errors import EditseqError
    from model_runtime.training.gguf_export import export_gguf

    try:
        report = export_gguf(resolve_model(args.model), args.out, dtype=args.dtype)
    except EditseqError as exc:
        print(f"editseq train gguf: {exc}", file=sys.stderr)
        return 2
    template = "with its chat template" if report.chat_template else "no chat template"
    print(f"train gguf: {report.tensors} tensors, {report.vocab} tokens, {template}, "
          f"{report.bytes / 2**20:.1f} MiB in {report.out}")
    return 0
