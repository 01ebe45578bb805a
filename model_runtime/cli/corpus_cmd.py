"""``editseq corpus``: build the offline training corpus from installed Python code and repositories."""

from __future__ import annotations

import argparse
import os
import sys

from .arguments import positive_int


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _threshold(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "corpus",
        help="build training data (pairs, whole files, doctest problems) from installed code",
        description=(
            "Collect instruction/program pairs (one per documented function, method and class), "
            "whole files for pretraining, and HumanEval-style problems mined from doctest examples "
            "(each checked in the sandbox) from the standard library, site-packages and repositories. "
            "Filters: size, HumanEval decontamination, exact and near duplicates. Writes "
            "programs.jsonl (editseq lintseq input), pretrain.jsonl, problems.jsonl and report.json "
            "into DIR, replacing them only when the run succeeds. With --bugs K, also bugs.jsonl: "
            "CYCLE repair rows (editseq train cycle --data) from K synthetic bugs of each kept function."
        ),
    )
    parser.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder (created if needed)")
    parser.add_argument("--stdlib", action="store_true", help="the running interpreter's standard library "
                        "(without tests, idlelib, turtledemo)")
    parser.add_argument("--site-packages", action="store_true",
                        help="the interpreter's site-packages (without test folders)")
    parser.add_argument("--repo", action="append", default=[], metavar="DIR",
                        help="a repository or folder, as git sees it (honours .gitignore); repeatable")
    parser.add_argument("--max-files", type=positive_int, metavar="N",
                        help="a seeded random sample of N files over all sources; when problems are wanted, "
                             "up to half are files with doctest examples (default: all files)")
    parser.add_argument("--min-lines", type=positive_int, default=3, metavar="N",
                        help="shortest program kept, in lines, imports included (default: 3)")
    parser.add_argument("--max-lines", type=positive_int, default=60, metavar="N",
                        help="longest program kept, in lines (default: 60)")
    parser.add_argument("--max-chars", type=positive_int, default=6000, metavar="N",
                        help="longest program kept, in characters (default: 6000)")
    parser.add_argument("--instruction-tokens", type=positive_int, default=512, metavar="N",
                        help="estimated-token budget of an instruction: signature and docstring, then nearby "
                             "context while it fits; longer docstrings are skipped (default: 512)")
    parser.add_argument("--max-file-chars", type=positive_int, default=200_000, metavar="N",
                        help="largest whole file kept for pretraining, in characters (default: 200000)")
    parser.add_argument("--near-dup-threshold", type=_threshold, default=0.85, metavar="F",
                        help="MinHash Jaccard similarity at which code is a near duplicate; 0 turns the "
                             "check off (default: 0.85)")
    parser.add_argument("--ngram", type=positive_int, default=13, metavar="N",
                        help="word n-gram length shared with a HumanEval prompt or solution that marks "
                             "contamination (default: 13)")
    parser.add_argument("--no-decontaminate", action="store_true",
                        help="keep code that shares n-grams with HumanEval")
    parser.add_argument("--max-problems", type=_non_negative_int, metavar="N",
                        help="stop after N validated problems; 0 makes none (default: all)")
    parser.add_argument("--workers", "-w", type=positive_int, default=1, metavar="W",
                        help="worker processes for parsing and sandbox runs at once (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the file sample and problem order (default: 0)")
    parser.add_argument("--bugs", type=_non_negative_int, default=0, metavar="K",
                        help="also write bugs.jsonl: K single-edit mutants of each kept function (operator, "
                             "value, variable, function misuse, excess, missing logic) as CYCLE repair rows; "
                             "functions with a validated doctest problem get real test feedback "
                             "(default: 0, no bug data)")
    parser.add_argument("--bug-seed", type=int, metavar="N", help="seed of the mutants (default: --seed)")
    parser.add_argument("--bug-max-lines", type=positive_int, default=40, metavar="N",
                        help="longest function mutated, in lines without its imports (default: 40)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from model_runtime.corpus.build import (
        CorpusError,
        CorpusOptions,
        build_corpus,
        repo_source,
        site_packages_sources,
        stdlib_source,
    )

    if not (args.stdlib or args.site_packages or args.repo):
        print("editseq corpus: no source: give --stdlib, --site-packages and/or --repo DIR", file=sys.stderr)
        return 2
    if args.min_lines > args.max_lines:
        print(f"editseq corpus: --min-lines {args.min_lines} is above --max-lines {args.max_lines}",
              file=sys.stderr)
        return 2
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        print(f"editseq corpus: --out is not a folder: {args.out}", file=sys.stderr)
        return 2
    try:
        sources = ([stdlib_source()] if args.stdlib else []) \
            + (site_packages_sources() if args.site_packages else []) \
            + [repo_source(path) for path in args.repo]
    except CorpusError as exc:
        print(f"editseq corpus: --repo: {exc}", file=sys.stderr)
        return 2
    options = CorpusOptions(
        max_files=args.max_files,
        min_lines=args.min_lines,
        max_lines=args.max_lines,
        max_chars=args.max_chars,
        instruction_tokens=args.instruction_tokens,
        max_file_chars=args.max_file_chars,
        near_dup_threshold=args.near_dup_threshold or None,
        ngram=None if args.no_decontaminate else args.ngram,
        max_problems=args.max_problems,
        workers=args.workers,
        seed=args.seed,
        bugs=args.bugs,
        bug_seed=args.bug_seed,
        bug_max_lines=args.bug_max_lines,
    )

    from tqdm import tqdm

    bars: list = []

    def progress(stage: str, total: int | None):
        for bar in bars:
            bar.close()
        unit = {"files": "file", "bugs": "mutant"}.get(stage, "problem")
        bar = tqdm(total=total, unit=unit, desc=stage, disable=args.quiet, file=sys.stderr, dynamic_ncols=True)
        bars.append(bar)
        return bar.update

    try:
        report = build_corpus(sources, args.out, options, progress=progress)
    except CorpusError as exc:
        print(f"editseq corpus: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"editseq corpus: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    finally:
        for bar in bars:
            bar.close()
    for line in report.lines():
        print(line)
    print(f"wrote {os.path.join(args.out, 'programs.jsonl')} (and pretrain.jsonl, problems.jsonl, "
          + ("bugs.jsonl, " if args.bugs else "") + "report.json)")
    return 0
