"""Start-up time side by side: ``editseq --help`` and the language server's ``initialize``, of two
checkouts, and of jedi-language-server's ``initialize`` (``--jedi``).

What a user waits for before anything happens, measured as whole fresh
processes (interpreter start + imports + work), for an old checkout
(``--before``) and a new one (``--after``, default: the checkout holding this
script), in this one run:

* ``--help``: ``python -c "from model_runtime.cli import main; ...main(['--help'])"``
  from process start to exit (status 0, through ``SystemExit``);
* ``initialize``: ``python -m model_runtime.cli serve`` (stdio), one JSON-RPC
  ``initialize`` request (``Content-Length`` framing; ``processId`` this
  process, ``rootUri`` a temporary folder with a tiny file, ``capabilities``
  ``{}``) written at once, timed from process start to the whole response:
  what an editor waits for before its first request. Then ``shutdown`` and
  ``exit`` (killed if it does not exit in time), outside the timing.

Each process runs with ``cwd`` and ``PYTHONPATH`` set to its checkout, which
wins over the editable install; a check before the timings prints, once per
checkout, the ``model_runtime`` and ``lsp_server`` files such a process
imports, and stops if they are not inside that checkout. Runs are interleaved
(before, after, before, after, ...) so the machine's noise hits both alike,
after one untimed warm-up per checkout (bytecode caches, file cache).

    git worktree add /tmp/editseq-before <commit>
    python benchmarks/startup.py --before /tmp/editseq-before [--after .] [--repeat 7] [--json FILE]

``--jedi EXE`` also times the ``jedi-language-server`` executable answering the
same ``initialize`` (interleaved with the others; ``--before`` is then
optional), the reference an editor user compares with:

    python3 -m venv --system-site-packages ~/.cache/editseq-bench/jls
    ~/.cache/editseq-bench/jls/bin/pip install jedi-language-server==0.47.0
    python benchmarks/startup.py --jedi ~/.cache/editseq-bench/jls/bin/jedi-language-server

Prints median and min in milliseconds per checkout and the ratio after/before
of the medians (< 1: the after checkout starts faster), and after/jedi. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HELP_CODE = "from model_runtime.cli import main; import sys; sys.exit(main(['--help']))"
WHERE_CODE = "import json, model_runtime, lsp_server; print(json.dumps([model_runtime.__file__, lsp_server.__file__]))"
INITIALIZE_ID = 1
SHUTDOWN_ID = 2


class BenchError(RuntimeError):
    """A run went wrong; the message says which checkout and what."""


def tree_env(tree: Path) -> dict[str, str]:
    """This process' environment with ``PYTHONPATH`` set to *tree* alone (and no network for the hub)."""
    return {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1"}


def check_imports(python: str, tree: Path) -> list[str]:
    """The files of ``model_runtime`` and ``lsp_server`` a process for *tree* imports; fails unless inside *tree*."""
    done = subprocess.run([python, "-c", WHERE_CODE], cwd=tree, env=tree_env(tree),
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise BenchError(f"{tree}: importing model_runtime and lsp_server failed:\n{done.stderr}")
    files = json.loads(done.stdout.strip().splitlines()[-1])
    for name in files:
        if not Path(name).resolve().is_relative_to(tree):
            raise BenchError(f"{tree}: the process imported {name}, which is not inside the checkout "
                             "(PYTHONPATH did not win over the installed package)")
    return files


def time_help(python: str, tree: Path, timeout: float) -> float:
    """Seconds from start to exit of ``main(['--help'])`` run in a fresh process for *tree*."""
    start = time.perf_counter()
    done = subprocess.run([python, "-c", HELP_CODE], cwd=tree, env=tree_env(tree),
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or b"usage: editseq" not in done.stdout:
        raise BenchError(f"{tree}: --help exited with {done.returncode}:\n"
                         f"{done.stdout.decode(errors='replace')}{done.stderr.decode(errors='replace')}")
    return elapsed


def frame(message: dict) -> bytes:
    body = json.dumps(message).encode("utf-8")
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class FramedReader:
    """Reads ``Content-Length``-framed JSON-RPC messages from a pipe, with a deadline."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""

    def _fill(self, deadline: float) -> None:
        left = deadline - time.perf_counter()
        if left <= 0 or not select.select([self.fd], [], [], left)[0]:
            raise TimeoutError("no message in time")
        chunk = os.read(self.fd, 65536)
        if not chunk:
            raise EOFError("the server closed its output")
        self.buffer += chunk

    def read(self, deadline: float) -> dict:
        """One message: header lines up to the blank line, then exactly Content-Length bytes."""
        while b"\r\n\r\n" not in self.buffer:
            self._fill(deadline)
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        length = None
        for line in head.decode("ascii").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length is None:
            raise BenchError(f"a message without Content-Length: {head!r}")
        while len(self.buffer) < length:
            self._fill(deadline)
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return json.loads(body.decode("utf-8"))

    def response(self, msg_id: int, deadline: float) -> tuple[dict, int]:
        """The response to request *msg_id*, and how many other messages (notifications, requests) came first."""
        skipped = 0
        while True:
            message = self.read(deadline)
            if message.get("id") == msg_id and ("result" in message or "error" in message):
                return message, skipped
            skipped += 1


def time_initialize(python: str, tree: Path, workspace: Path, timeout: float,
                    command: list[str] | None = None) -> tuple[float, int]:
    """Seconds from starting ``serve`` for *tree* (or ``command``) to its whole ``initialize`` response,
    and messages skipped."""
    initialize = frame({"jsonrpc": "2.0", "id": INITIALIZE_ID, "method": "initialize",
                        "params": {"processId": os.getpid(), "rootUri": workspace.as_uri(), "capabilities": {}}})
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        server = subprocess.Popen(command or [python, "-m", "model_runtime.cli", "serve"], cwd=tree, env=tree_env(tree),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, bufsize=0)
        try:
            server.stdin.write(initialize)
            reader = FramedReader(server.stdout.fileno())
            try:
                answer, skipped = reader.response(INITIALIZE_ID, start + timeout)
                elapsed = time.perf_counter() - start
                if "error" in answer or "capabilities" not in (answer.get("result") or {}):
                    raise BenchError(f"initialize answered {answer}")
                server.stdin.write(frame({"jsonrpc": "2.0", "id": SHUTDOWN_ID, "method": "shutdown"}))
                reader.response(SHUTDOWN_ID, time.perf_counter() + timeout)
                server.stdin.write(frame({"jsonrpc": "2.0", "method": "exit"}))
                server.stdin.close()
                server.wait(timeout=timeout)
            except (TimeoutError, EOFError, BrokenPipeError, subprocess.TimeoutExpired, BenchError) as error:
                server.kill()
                server.wait()
                stderr.seek(0)
                log = stderr.read().decode(errors="replace")[-4000:]
                raise BenchError(f"{tree}: serve: {type(error).__name__}: {error}\nits stderr:\n{log}") from error
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
            for pipe in (server.stdin, server.stdout):
                if pipe and not pipe.closed:
                    pipe.close()
    return elapsed, skipped


def summary(samples: list[float]) -> dict:
    return {"samples_ms": [round(s * 1000, 2) for s in samples],
            "median_ms": round(statistics.median(samples) * 1000, 2), "min_ms": round(min(samples) * 1000, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, default=None, help="the old checkout (e.g. a git worktree)")
    parser.add_argument("--jedi", default=None, metavar="EXE",
                        help="the jedi-language-server executable: time its initialize too")
    parser.add_argument("--after", type=Path, default=Path(__file__).resolve().parents[1],
                        help="the new checkout (default: the one holding this script)")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per checkout and measure (default: 7)")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter for the processes (default: this one, not a shim)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds allowed per process (default: 120)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.before is None and args.jedi is None:
        parser.error("give --before CHECKOUT, --jedi EXE, or both")
    trees = {"after": args.after.resolve()} if args.before is None else {
        "before": args.before.resolve(), "after": args.after.resolve()}
    for label, tree in trees.items():
        if not (tree / "model_runtime" / "__init__.py").is_file():
            parser.error(f"--{label} {tree}: no model_runtime/__init__.py there")

    print(f"python {args.python} ({platform.python_version()}), {os.cpu_count()} CPUs, repeat {args.repeat}")
    imported = {}
    for label, tree in trees.items():
        imported[label] = check_imports(args.python, tree)
        print(f"{label:6} {tree}: imports {imported[label][0]}, {imported[label][1]}")

    measures = {"help": "editseq --help", "initialize": "serve -> initialize"}
    samples: dict[str, dict[str, list[float]]] = {m: {label: [] for label in trees} for m in measures}
    skipped = {label: 0 for label in trees}
    with tempfile.TemporaryDirectory(prefix="editseq-startup-") as scratch:
        workspace = Path(scratch)
        (workspace / "hello.py").write_text('def add(a, b):\n    """Return the sum of a and b."""\n    return a + b\n')
        jedi = [args.jedi] if args.jedi else None
        jedi_samples: list[float] = []
        for label, tree in trees.items():  # untimed warm-up: bytecode caches, file cache
            time_help(args.python, tree, args.timeout)
            time_initialize(args.python, tree, workspace, args.timeout)
        if jedi:
            time_initialize(args.python, workspace, workspace, args.timeout, jedi)
        for _ in range(args.repeat):
            for label, tree in trees.items():
                samples["help"][label].append(time_help(args.python, tree, args.timeout))
            for label, tree in trees.items():
                elapsed, other = time_initialize(args.python, tree, workspace, args.timeout)
                samples["initialize"][label].append(elapsed)
                skipped[label] += other
            if jedi:
                jedi_samples.append(time_initialize(args.python, workspace, workspace, args.timeout, jedi)[0])

    figures = {"python": args.python, "python_version": platform.python_version(), "cpus": os.cpu_count(),
               "repeat": args.repeat, "trees": {label: str(tree) for label, tree in trees.items()},
               "imported": imported, "messages_before_initialize_response": skipped, "measures": {}}
    print()
    if jedi:
        ours, theirs = summary(samples["initialize"]["after"]), summary(jedi_samples)
        ratio = ours["median_ms"] / theirs["median_ms"]
        figures["jedi_initialize"] = {"jedi": theirs, "after": ours, "ratio_median": round(ratio, 4)}
        print(f"initialize: editseq {ours['median_ms']:.1f} / {ours['min_ms']:.1f} ms, jedi-language-server "
              f"{theirs['median_ms']:.1f} / {theirs['min_ms']:.1f} ms (median / min): editseq/jedi {ratio:.3f}x")
    if "before" not in trees:
        return _written(args, figures)
    print(f"{'':22} {'before median / min':>22} {'after median / min':>22} {'after/before':>13}")
    for measure, title in measures.items():
        before, after = summary(samples[measure]["before"]), summary(samples[measure]["after"])
        ratio = after["median_ms"] / before["median_ms"]
        figures["measures"][measure] = {"before": before, "after": after, "ratio_median": round(ratio, 4)}
        print(f"{title:22} {before['median_ms']:10.1f} / {before['min_ms']:6.1f} ms "
              f"{after['median_ms']:10.1f} / {after['min_ms']:6.1f} ms {ratio:12.3f}x")
    if any(skipped.values()):
        print(f"messages before the initialize response (skipped): {skipped}")
    return _written(args, figures)


def _written(args: argparse.Namespace, figures: dict) -> int:
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        sys.exit(f"startup.py: {error}")
