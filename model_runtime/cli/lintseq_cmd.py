"""``editseq lintseq``: refactor programs into linter-clean insertion edit paths."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from .arguments import positive_int

#: Where ``--from-repo`` writes without ``-o``: inside the repository, in a folder git ignores.
REPO_OUTPUT = ".editseq/lintseq-paths.jsonl"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "lintseq",
        help="refactor programs into LintSeq edit paths (training data)",
        description=(
            "Refactor each program of a JSONL file (or each documented function and class of a "
            "repository) into sequences of insertion diffs, each leaving a program the linter "
            "finds error-free. Output rows: edit_path, index, source_file, source_<prompt-field>, "
            "source_<code-field>; one row per path."
        ),
    )
    parser.add_argument("input", nargs="?", metavar="INPUT.jsonl", help="input rows (JSON lines)")
    parser.add_argument("-o", "--output", metavar="OUTPUT.jsonl",
                        help="where to write the paths (written atomically; with --from-repo the default is "
                             f"DIR/{REPO_OUTPUT}, which git ignores)")
    parser.add_argument("--from-repo", metavar="DIR",
                        help="take documented functions and classes of this repository as input "
                             "(honours .gitignore)")
    parser.add_argument("--code-field", default="response", help="field holding the program (default: response)")
    parser.add_argument("--prompt-field", default="instruction",
                        help="field holding the instruction (default: instruction)")
    parser.add_argument("--paths-per-sample", "-s", type=positive_int, default=1, metavar="N",
                        help="independent paths per program (the paper uses 5; default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--workers", "-w", type=positive_int, default=1, metavar="W",
                        help="worker processes (default: 1)")
    parser.add_argument("--linter", choices=("pyflakes", "pylint"), default="pyflakes",
                        help="pyflakes: fast, in memory (default); pylint: the paper's configuration")
    parser.add_argument("--num-samples", "-n", type=positive_int, metavar="N",
                        help="process only the first N programs")
    parser.add_argument("--trivia-as-candidates", action="store_true",
                        help="let comment and blank lines be picked for deletion on their own")
    parser.add_argument("--split-global-defs", action="store_true",
                        help="do not keep multi-line UPPERCASE module constants whole")
    parser.add_argument("--indent-bias", type=float, default=1.0,
                        help="weight per indentation level when picking lines (default: 1.0)")
    parser.add_argument("--max-rounds", type=positive_int, default=512,
                        help="deletion rounds per path before the rest becomes one edit (default: 512)")
    parser.add_argument("--max-lines", type=positive_int, default=5000, metavar="N",
                        help="skip longer programs (counted as too-long; default: 5000)")
    parser.add_argument("--max-seconds", type=float, default=60.0, metavar="S",
                        help="abandon a path after S seconds and skip the program (time-limit; default: 60)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from model_runtime.lintseq.sampler import LintSeqOptions
    from model_runtime.lintseq.data import InputError, LintSeqJob, read_jsonl_programs, run_lintseq

    if not (math.isfinite(args.max_seconds) and 0 < args.max_seconds <= 86400):
        print(f"editseq lintseq: --max-seconds must be from 0 to 86400, got {args.max_seconds}", file=sys.stderr)
        return 2
    if bool(args.input) == bool(args.from_repo):
        print("editseq lintseq: give either INPUT.jsonl or --from-repo DIR", file=sys.stderr)
        return 2
    defaulted = args.output is None
    if defaulted:
        if not args.from_repo:
            print("editseq lintseq: give the output file (-o OUTPUT.jsonl)", file=sys.stderr)
            return 2
        args.output = str(_ignored_output(Path(args.from_repo)))
    job = LintSeqJob(
        code_field=args.code_field,
        prompt_field=args.prompt_field,
        paths_per_sample=args.paths_per_sample,
        seed=args.seed,
        workers=args.workers,
        linter=args.linter,
        num_samples=args.num_samples,
        options=LintSeqOptions(
            skip_trivia=not args.trivia_as_candidates,
            keep_global_defs=not args.split_global_defs,
            indent_bias=args.indent_bias,
            max_rounds=args.max_rounds,
            max_lines=args.max_lines,
            max_seconds=args.max_seconds,
        ),
    )
    scan = None
    if args.from_repo:
        from model_runtime.corpus.repo import RepoScan, repo_programs

        if not os.path.isdir(args.from_repo):
            print(f"editseq lintseq: not a directory: {args.from_repo}", file=sys.stderr)
            return 2
        scan = RepoScan()
        programs = repo_programs(args.from_repo, scan)
        total = None
    else:
        if os.path.exists(args.output) and os.path.exists(args.input) and os.path.samefile(args.input, args.output):
            print(f"editseq lintseq: the output {args.output} is the input: writing it would destroy the rows "
                  "being read; choose another output", file=sys.stderr)
            return 2
        programs = read_jsonl_programs(args.input, args.code_field, args.prompt_field)
        total = _count_rows(args.input)
        if args.num_samples is not None and total is not None:
            total = min(total, args.num_samples)

    if args.linter == "pylint":
        try:
            import pylint  # noqa: F401
        except ImportError:
            print("editseq lintseq: --linter pylint needs pylint (pip install 'editseq[pylint]')",
                  file=sys.stderr)
            return 2

    from tqdm import tqdm

    bar = tqdm(total=total, unit="prog", desc="lintseq", disable=args.quiet, file=sys.stderr,
               dynamic_ncols=True)
    try:
        summary = run_lintseq(programs, args.output, job, progress=bar.update)
    except InputError as exc:
        bar.close()
        print(f"editseq lintseq: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        bar.close()
        print(f"editseq lintseq: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    bar.close()
    line = summary.line()
    if scan is not None:
        skipped = ", ".join(f"{k}: {v}" for k, v in sorted(scan.skipped_files.items()))
        line += f"; repository: {scan.files} files, {scan.pairs} documented definitions"
        if skipped:
            line += f", files skipped ({skipped})"
    if defaulted:
        line += f"; written to {args.output}"
    print(line)
    return 0


def _ignored_output(repo: Path) -> Path:
    """``DIR/.editseq/lintseq-paths.jsonl``, in a folder whose ``.gitignore`` ignores it (as the failure
    report's): the repository walked is not left with an untracked file."""
    path = repo / REPO_OUTPUT
    path.parent.mkdir(parents=True, exist_ok=True)
    ignore = path.parent / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n", encoding="utf-8")
    return path


def _count_rows(path: str) -> int | None:
    """Rows in the input, for the progress bar's total (a fast byte scan; None if unreadable)."""
    try:
        with open(path, "rb") as handle:
            return sum(1 for raw in handle if raw.strip())
    except OSError:
        return None
