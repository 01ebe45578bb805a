"""Arguments shared by the subcommands: one spelling, one default (from :mod:`model_runtime.defaults`)."""

from __future__ import annotations

import argparse
import contextlib

from model_runtime import defaults

MODEL_HELP = ("model folder or hub id (transformers), or the served model name (openai); default: "
              f"{defaults.MODEL}, the model shipped inside editseq")


def positive_int(text: str) -> int:
    """An ``argparse`` type: an integer of at least 1, with a message naming the value otherwise."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_backend_arguments(parser: argparse.ArgumentParser, *, backend_help: str | None = None) -> None:
    """``--backend``, ``--endpoint`` and ``--device``: where the model runs."""
    parser.add_argument("--backend", choices=defaults.BACKENDS, default=defaults.BACKEND, help=backend_help)
    parser.add_argument("--endpoint", default=defaults.ENDPOINT,
                        help="base URL of the OpenAI-compatible server (openai backend)")
    parser.add_argument("--device", default=defaults.DEVICE,
                        help="auto (cuda, then mps, then cpu), or a torch device")


def add_verify_argument(parser: argparse.ArgumentParser) -> None:
    """``--verify``: what must still pass besides the failing tests."""
    parser.add_argument("--verify", choices=defaults.VERIFY_SCOPES, default=defaults.VERIFY,
                        help="besides the failing tests, the tests that passed before must still pass: those in "
                             "the same files (files, default), the whole suite (suite), or none (failing)")


def add_strategy_argument(parser: argparse.ArgumentParser) -> None:
    """``--strategy`` (how repair rounds find candidates) and ``--format`` (what the model speaks)."""
    parser.add_argument("--strategy", choices=defaults.STRATEGIES, default=defaults.STRATEGY,
                        help="repair rounds: sample CYCLE repair diffs (generate), test the single-edit repairs "
                             "the model finds likeliest (rank), or ask in the model's own format with the failure "
                             "as context (rewrite); auto follows the model: its manifest, else generate for "
                             f"CYCLE-trained models, else rewrite (default: {defaults.STRATEGY})")
    parser.add_argument("--format", dest="prompt_format", choices=defaults.WRITE_FORMATS,
                        default=defaults.PROMPT_FORMAT,
                        help="the prompt format the model speaks: lintseq (LintSeq models) or chat (instruct "
                             "models; over HTTP, /v1/chat/completions); auto reads it off the model's manifest, "
                             "tokenizer or served entry (LintSeq when the served id says so, else chat) "
                             f"(default: {defaults.PROMPT_FORMAT})")


def run_config(args: argparse.Namespace, **settings):
    """The :class:`~model_runtime.run.config.RunConfig` of ``args``' model and backend flags, plus ``settings``."""
    from model_runtime.run.config import RunConfig

    return RunConfig(model=args.model, backend=args.backend, endpoint=args.endpoint, device=args.device,
                     **settings)


@contextlib.contextmanager
def loaded_backend(args: argparse.Namespace):
    """The backend ``--backend/--model/--endpoint/--device`` name, loaded, closed afterwards.

    Loading first means an OpenAI endpoint is checked (it answers and serves
    ``--model``) before any work starts. Failures are
    :class:`~model_runtime.errors.EditseqError` with a message naming the flag.
    """
    from model_runtime.run.engine import opened_backend

    with opened_backend(run_config(args)) as backend:
        yield backend
