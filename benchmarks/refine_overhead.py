"""Refinement overhead per round, outside the model and outside pytest itself.

Builds a 200-file workspace in a temporary folder (20 packages of 9 modules
plus a test file, a few KB each), then for each round: applies a repair diff
(:func:`~model_runtime.edits.diff_apply.apply_diff`, which parses the result),
runs the failing test in the :class:`~model_runtime.sandbox.runner.Sandbox`
(its own timings split the shadow copy, writing the candidate, the syntax
check, reading the results and the cleanup from the pytest process) and
formats the feedback. Also times counting the user's tasks for
``RLIMIT_NPROC`` (inside the ``pytest`` phase of a run) and, for the record
behind the shadow-copy choice, copying against hard-linking the same tree.

Then the real loop (:func:`~model_runtime.refine.loop.refine`) on the same
workspace, ``--runs`` times, with a real tiny model trained here to memorise
the fix (so that every run has round 0, the code as it is, and round 1, a
generated candidate applied, parsed, run and fed back). Per round, the loop's
own timings give the wall time, the time in the model (generation) and in the
pytest process; what is left is the overhead: locating the function,
building the prompt, interpreting the completion, splicing, the shadow copy,
ranking, feedback, events.

    python benchmarks/refine_overhead.py [--rounds 5] [--runs 5]

Prints milliseconds per phase (median over rounds) and the total. Goal:
< 150 ms per round. Not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model_runtime.edits.diff_apply import apply_diff  # noqa: E402
from model_runtime.prompting.feedback import execution_feedback  # noqa: E402
from model_runtime.prompting.instruction import build_instruction  # noqa: E402
from model_runtime.prompting.formats import get_format  # noqa: E402
from model_runtime.refine.loop import RefineTarget, refine, repair_prompt  # noqa: E402
from model_runtime.refine.target import locate_function  # noqa: E402
from model_runtime.sandbox.process import user_tasks  # noqa: E402
from model_runtime.sandbox.runner import Sandbox, SandboxLimits, ShadowPolicy, shadow_copy  # noqa: E402

MODULE = '''"""Module {p}.{m}: filler that looks like code."""


def value_{m}(x):
    """Return x scaled."""
    return x * {m} + {p}


class Thing{m}:
    def __init__(self, n):
        self.n = n

    def grow(self, k):
        return [self.n + i for i in range(k)]
''' + "\n# padding line to give the file a realistic size\n" * 40

TARGET = '''def mean(xs):
    """The arithmetic mean of a non-empty list."""
    return sum(xs) / (len(xs) + 1)
'''

FIX = """--- a
+++ b
@@ -2,2 +2,2 @@
     \"\"\"The arithmetic mean of a non-empty list.\"\"\"
-    return sum(xs) / (len(xs) + 1)
+    return sum(xs) / len(xs)
"""

TEST = "from stats import mean\n\n\ndef test_mean():\n    assert mean([1, 3]) == 2\n"
TEST_ID = "tests/test_stats.py::test_mean"


def build_workspace(root: Path) -> int:
    files = 0
    for p in range(20):
        package = root / f"pkg{p}"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        files += 1
        for m in range(9):
            (package / f"mod{m}.py").write_text(MODULE.format(p=p, m=m))
            files += 1
    (root / "stats.py").write_text(TARGET)
    (root / "tests").mkdir()
    (root / "tests" / "test_stats.py").write_text(TEST)
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return files + 2


def link_tree(src: Path, dest: Path) -> None:
    """Hard-link every file (the rejected alternative), for comparison only."""
    shutil.copytree(src, dest, copy_function=os.link, ignore=shutil.ignore_patterns(".git"))


def train_fixing_model(root: Path, sandbox: Sandbox, folder: Path) -> Path:
    """A tiny model that answers round 1's exact prompt with the fix (about 10 s on one core)."""
    from model_runtime.training.tiny_model import MemoriseSettings, train_memorised_model

    source = (root / "stats.py").read_text()
    code = locate_function(source, "mean", "stats.py").code
    feedback = execution_feedback(sandbox.run([TEST_ID]))
    prompt = repair_prompt(build_instruction(source, "mean", max_tokens=512).text, code, feedback)
    answer = get_format("cycle").render_answer([FIX.rstrip("\n")])
    return train_memorised_model(folder, [(prompt, answer)], MemoriseSettings(steps=150)).folder


def loop_rounds(root: Path, sandbox: Sandbox, model: Path, runs: int) -> None:
    """Run the loop ``runs`` times; print per round the time outside the model and pytest."""
    from model_runtime.backends import TransformersBackend, TransformersConfig

    backend = TransformersBackend(TransformersConfig(model=str(model), device="cpu"))
    per_round: dict[int, dict[str, list[float]]] = {}
    for run in range(runs):
        result = refine(RefineTarget(root, "stats.py", "mean"), [TEST_ID], backend, sandbox=sandbox)
        print(f"loop run {run}: verified {result.verified}, {result.rounds} repair round(s), "
              f"{result.seconds * 1000:.0f} ms")
        for record in result.trajectory:
            times = record.timings
            row = per_round.setdefault(record.round, {})
            for name, value in (("total", times["total"]), ("model", times["model"]),
                                ("pytest", times["pytest"]),
                                ("outside", times["total"] - times["model"] - times["pytest"])):
                row.setdefault(name, []).append(value)
    print(f"\nloop rounds, median of {runs} runs (ms):")
    print(f"  {'round':<6}{'wall':>10}{'model':>10}{'pytest':>10}{'outside':>10}   (goal: outside < 150)")
    for number, row in sorted(per_round.items()):
        cells = "".join(f"{statistics.median(row[n]) * 1000:10.1f}" for n in ("total", "model", "pytest", "outside"))
        print(f"  {number:<6}{cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5, help="runs of the real loop (0: skip it)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="editseq-bench-") as tmp:
        root = Path(tmp) / "ws"
        count = build_workspace(root)
        sandbox = Sandbox(root, limits=SandboxLimits(timeout_s=60))
        print(f"workspace: {count} files, python {sandbox.python}, isolation {sandbox.isolation or 'none'}")
        if args.runs:
            loop_rounds(root, sandbox, train_fixing_model(root, sandbox, Path(tmp) / "model"), args.runs)
            print()
        phases: dict[str, list[float]] = {}
        pytest_ms = []
        for round_number in range(args.rounds):
            mark = time.perf_counter()
            step = apply_diff(TARGET, FIX if round_number else "--- a\n+++ b\n")  # round 0: the faulty body
            phases.setdefault("apply diff + parse", []).append(time.perf_counter() - mark)
            candidate = step.new if step.applied else TARGET
            result = sandbox.run(["tests/test_stats.py::test_mean"], {"stats.py": candidate})
            for name in ("check", "shadow", "apply", "results", "cleanup"):
                phases.setdefault(f"sandbox {name}", []).append(result.timings[name])
            pytest_ms.append(result.timings["pytest"] * 1000)
            mark = time.perf_counter()
            feedback = execution_feedback(result)
            phases.setdefault("feedback", []).append(time.perf_counter() - mark)
            print(f"round {round_number}: {result.passed} passed, {result.failed} failed; feedback {feedback!r}")
        mark = time.perf_counter()
        tasks = user_tasks()
        phases["count tasks (RLIMIT_NPROC)"] = [time.perf_counter() - mark]
        print(f"\nper round, median of {args.rounds} (ms; {tasks} tasks of this user):")
        total = 0.0
        for name, seconds in phases.items():
            ms = statistics.median(seconds) * 1000
            total += ms
            print(f"  {name:<30} {ms:8.2f}")
        print(f"  {'total outside model and pytest':<30} {total:8.2f}   (goal < 150)")
        print(f"  {'pytest process (not counted)':<30} {statistics.median(pytest_ms):8.2f}")
        for name, copy in (("copy (used)", lambda d: shadow_copy(root, d, ShadowPolicy())),
                           ("hard links (rejected)", lambda d: link_tree(root, d))):
            times = []
            for i in range(5):
                dest = Path(tmp) / f"{name[:4]}{i}"
                mark = time.perf_counter()
                copy(dest)
                times.append(time.perf_counter() - mark)
            print(f"shadow tree by {name:<22} {statistics.median(times) * 1000:8.2f} ms")


if __name__ == "__main__":
    main()
