"""The ``editseq`` command line: one program, one subcommand per job.

Each subcommand lives in its own module and registers itself here. Modules
import their heavy dependencies (torch, transformers, pylint) inside the
handler, so ``editseq --help`` and light subcommands start fast.

A front end: runs go through :mod:`model_runtime.run`; flags take their
defaults from :mod:`model_runtime.defaults`; an
:class:`~model_runtime.errors.EditseqError` becomes a message and exit status
2. May import every engine package, and ``lsp_server`` (``editseq serve``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from model_runtime.cli import corpus_cmd, eval_cmd, generate_cmd, lintseq_cmd, refine_cmd, serve_cmd, train_cmd

__all__ = ["main", "build_parser"]

#: Subcommand modules; each has ``register(subparsers)``.
SUBCOMMANDS = (lintseq_cmd, generate_cmd, refine_cmd, serve_cmd, train_cmd, eval_cmd, corpus_cmd)


def build_parser() -> argparse.ArgumentParser:
    from model_runtime import __version__

    parser = argparse.ArgumentParser(
        prog="editseq",
        description="Edit-by-edit, test-driven code assistance: LintSeq data, models and refinement.",
    )
    parser.add_argument("--version", action="version", version=f"editseq {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from model_runtime.errors import EditseqError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except EditseqError as exc:  # one a subcommand did not word itself: still a message, not a traceback
        print(f"editseq {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("editseq: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
