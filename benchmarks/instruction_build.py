"""Instruction building per module: one shared InstructionBuilder against a fresh one per function.

A training scan (``editseq corpus``, ``editseq lintseq --from-repo``) asks
for the instruction of every documented function of a file, from one
:class:`model_runtime.prompting.instruction.InstructionBuilder`. The builder keeps
what does not depend on the function (line numbers, each context item's
stub and size), so building all of a file's functions should cost little
more than building one. This measures that on a fixed set of standard
library files, side by side in one run: for each file, parsed once,

* one: a fresh builder and one function (what the editor does per request),
  the mean over a sample of the file's functions;
* fresh each: that times the number of functions, i.e. no reuse at all;
* shared: one builder for all documented functions (what the scan does),
  best of ``--repeat`` runs;

and prints the fresh-each/shared ratio. Parsing is timed apart and left out
of all three.

    python benchmarks/instruction_build.py [--sample 10] [--repeat 3] [--max-tokens 512]

Not a test.
"""

from __future__ import annotations

import argparse
import os
import sys
import sysconfig
import time
from pathlib import Path

FILES = [
    "tkinter/__init__.py",
    "_pydecimal.py",
    "turtle.py",
    "typing.py",
    "argparse.py",
    "email/message.py",
    "textwrap.py",
]


def documented_functions(body, prefix: str = "") -> list[str]:
    """Qualified names of the documented functions and methods, as ``extract_pairs`` walks them."""
    import libcst as cst

    names = []
    for node in body:
        if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            name = prefix + node.name.value
            if isinstance(node, cst.FunctionDef) and node.get_docstring():
                names.append(name)
            if isinstance(node, cst.ClassDef) and isinstance(node.body, cst.IndentedBlock):
                names += documented_functions(node.body.body, name + ".")
    return names


def build_all(module, names: list[str], max_tokens: int) -> float:
    from model_runtime.prompting.instruction import InstructionBuilder, InstructionTooLong

    started = time.perf_counter()
    builder = InstructionBuilder(module)
    for name in names:
        try:
            builder.build(name, max_tokens=max_tokens)
        except InstructionTooLong:
            pass
    return time.perf_counter() - started


def build_one(module, name: str, max_tokens: int) -> float:
    from model_runtime.prompting.instruction import InstructionBuilder, InstructionTooLong

    started = time.perf_counter()
    try:
        InstructionBuilder(module).build(name, max_tokens=max_tokens)
    except InstructionTooLong:
        pass
    return time.perf_counter() - started


def main() -> None:
    import libcst as cst

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sample", type=int, default=10, help="functions per file timed with a fresh builder")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the shared builder per file (best kept)")
    parser.add_argument("--max-tokens", type=int, default=512, help="instruction budget (the scan's default)")
    args = parser.parse_args()

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, budget {args.max_tokens} tokens, "
          f"fresh-builder sample {args.sample} functions/file, shared best of {args.repeat}")
    header = (f"{'file':<22} {'funcs':>5} {'parse s':>8} {'one ms':>8} {'fresh each s':>13} "
              f"{'shared s':>9} {'per func ms':>11} {'ratio':>7}")
    print(header)
    print("-" * len(header))
    total_fresh = total_shared = 0.0
    for rel in FILES:
        path = stdlib / rel
        if not path.is_file():
            print(f"{rel:<22} (not in this interpreter's standard library)")
            continue
        started = time.perf_counter()
        module = cst.parse_module(path.read_text(encoding="utf-8"))
        parse = time.perf_counter() - started
        names = documented_functions(module.body)
        if not names:
            continue
        step = max(1, len(names) // args.sample)
        sample = names[::step][: args.sample]
        one = sum(build_one(module, name, args.max_tokens) for name in sample) / len(sample)
        fresh = one * len(names)
        shared = min(build_all(module, names, args.max_tokens) for _ in range(args.repeat))
        total_fresh += fresh
        total_shared += shared
        print(f"{rel:<22} {len(names):>5} {parse:>8.2f} {one * 1e3:>8.1f} {fresh:>13.2f} "
              f"{shared:>9.3f} {shared / len(names) * 1e3:>11.2f} {fresh / shared:>6.1f}x")
    if total_shared:
        print(f"{'all':<22} {'':>5} {'':>8} {'':>8} {total_fresh:>13.2f} {total_shared:>9.3f} "
              f"{'':>11} {total_fresh / total_shared:>6.1f}x")


if __name__ == "__main__":
    main()
