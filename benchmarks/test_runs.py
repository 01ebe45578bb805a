"""One candidate's sandboxed test run against a direct ``python -m pytest`` of the same test.

Builds the refinement benchmark's workspace (200 files: 20 packages of 9
modules, ``stats.py`` and its test) in a temporary folder, then times, side by
side and in turn (so that both see the same load), ``--runs`` times each:

``direct``
    ``python -m pytest -q tests/test_stats.py::test_mean`` in the workspace,
    with the interpreter the sandbox resolved (not a pyenv shim) and this
    process's environment: what a user types.
``cold``
    :meth:`Sandbox.run` with ``warm=False``: shadow copy, a fresh sandboxed
    interpreter that imports pytest and every plugin, results, cleanup.
``warm``
    :meth:`Sandbox.run` through the warm runner, which imported all that once
    (its start-up, paid by the first run only, is printed apart).

each with the plugins installed in this environment, and again with
``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1`` on every side. Prints the medians (wall
clock, seconds) and the ratios to ``direct``; the goal of ISSUE 16 item 5 is
``warm / direct <= 0.5`` with the plugins installed.

    python benchmarks/test_runs.py [--runs 7]

Not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model_runtime.sandbox.runner import Sandbox, SandboxLimits  # noqa: E402

MODULE = '''"""Module {p}.{m}: filler that looks like code."""


def value_{m}(x):
    """Return x scaled."""
    return x * {m} + {p}
''' + "\n# padding line to give the file a realistic size\n" * 40
TARGET = 'def mean(xs):\n    """The arithmetic mean of a non-empty list."""\n    return sum(xs) / len(xs)\n'
TEST = "from stats import mean\n\n\ndef test_mean():\n    assert mean([1, 3]) == 2\n"
TEST_ID = "tests/test_stats.py::test_mean"


def build_workspace(root: Path) -> None:
    for p in range(20):
        package = root / f"pkg{p}"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        for m in range(9):
            (package / f"mod{m}.py").write_text(MODULE.format(p=p, m=m))
    (root / "stats.py").write_text(TARGET)
    (root / "tests").mkdir()
    (root / "tests" / "test_stats.py").write_text(TEST)


def direct(python: str, root: Path, env: dict[str, str]) -> float:
    mark = time.perf_counter()
    done = subprocess.run([python, "-m", "pytest", "-q", TEST_ID], cwd=root, env=env, capture_output=True, text=True)
    took = time.perf_counter() - mark
    if done.returncode != 0:
        raise SystemExit(f"the direct run failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return took


def sandboxed(sandbox: Sandbox) -> float:
    mark = time.perf_counter()
    result = sandbox.run([TEST_ID], {"stats.py": TARGET})
    took = time.perf_counter() - mark
    if not result.green:
        raise SystemExit(f"the sandboxed run failed: {result.status} {result.reason}\n{result.stdout[-2000:]}")
    return took


def shim_start(runs: int) -> str:
    """Starting a pyenv shim against the interpreter it resolves to (what the sandbox now starts)."""
    from model_runtime.sandbox.process import resolve_python

    shim = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"), "shims", "python3")
    if not os.access(shim, os.X_OK):
        return "no pyenv shim here"
    real = resolve_python(str(shim), os.getcwd())
    took = {}
    for name, exe in (("shim", str(shim)), ("resolved", real)):
        times = []
        for _ in range(runs):
            mark = time.perf_counter()
            subprocess.run([exe, "-c", "pass"], check=True)
            times.append(time.perf_counter() - mark)
        took[name] = statistics.median(times) * 1000
    return f"{shim} starts in {took['shim']:.0f} ms, {real} in {took['resolved']:.0f} ms"


def compare(root: Path, runs: int, extra: dict[str, str]) -> dict[str, float]:
    limits = SandboxLimits(timeout_s=120)
    with Sandbox(root, limits=limits, env=extra, warm=False) as cold, \
            Sandbox(root, limits=limits, env=extra, warm=True) as warm:
        env = {**os.environ, **extra}
        first = sandboxed(warm)  # starts the warm runner
        times: dict[str, list[float]] = {"direct": [], "cold": [], "warm": []}
        for _ in range(runs):
            times["direct"].append(direct(warm.executable, root, env))
            times["cold"].append(sandboxed(cold))
            times["warm"].append(sandboxed(warm))
        if warm.warm_runs != runs + 1:
            raise SystemExit(f"runs went cold: {warm.cold_reason}")
        medians = {name: statistics.median(values) for name, values in times.items()}
        medians["first warm run"] = first
        medians["warm runner start-up"] = warm.warm_start_s
        return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="runs of each kind, in turn (default 7)")
    args = parser.parse_args()
    plugins = sorted({ep.name for ep in metadata.entry_points().select(group="pytest11")})
    with tempfile.TemporaryDirectory(prefix="editseq-bench-") as tmp:
        root = Path(tmp) / "ws"
        build_workspace(root)
        probe = Sandbox(root, warm=False)
        print(f"workspace: 200 files; python {probe.python} -> {probe.executable}; isolation {probe.in_force}; "
              f"{os.cpu_count()} CPUs")
        print(f"pytest plugins installed: {', '.join(plugins) or 'none'}")
        print(f"interpreter start: {shim_start(args.runs)}")
        print(f"medians of {args.runs} runs of each, taken in turn (seconds, wall clock):\n")
        print(f"  {'plugins':<34}{'direct':>8}{'cold':>8}{'warm':>8}{'cold/direct':>13}{'warm/direct':>13}"
              f"{'1st warm':>10}{'start-up':>10}")
        for label, extra in (("installed (this environment)", {}),
                             ("PYTEST_DISABLE_PLUGIN_AUTOLOAD=1", {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})):
            m = compare(root, args.runs, extra)
            print(f"  {label:<34}{m['direct']:8.3f}{m['cold']:8.3f}{m['warm']:8.3f}"
                  f"{m['cold'] / m['direct']:12.2f}x{m['warm'] / m['direct']:12.2f}x"
                  f"{m['first warm run']:10.3f}{m['warm runner start-up']:10.3f}")
        print("\n  goal (ISSUE 16 item 5): warm/direct <= 0.50 with the plugins installed")


if __name__ == "__main__":
    main()
