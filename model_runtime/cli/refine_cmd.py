"""``editseq refine``: make one function's tests pass with the CYCLE loop, from the workspace root.

Exit codes (also in ``--help``):

* 0: the result is verified green (and written, with ``--apply``);
* 1: not verified: the budget (rounds, seconds), patience or a cancel ran out first;
* 2: bad input or no run possible: missing file, function or test id, bad
  numbers, a model or endpoint that cannot be used.

``--apply`` writes only a verified result, atomically (a temporary file in the
same folder, then a rename), and only if the file on disk is still the one
the run started from: a user who kept typing must not lose the edit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

EXIT_VERIFIED, EXIT_NOT_VERIFIED, EXIT_BAD_INPUT = 0, 1, 2
#: Variables that configure the user's pytest; passed into the otherwise scrubbed sandbox.
PYTEST_VARIABLES = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")

EPILOG = """\
exit status: 0 verified green (written with --apply), 1 not verified (budget, patience or
cancel ran out first; nothing written), 2 bad input (missing file, function or test id,
bad numbers, a model or endpoint that cannot be used).
PYTEST_ADDOPTS, PYTEST_PLUGINS and PYTEST_DISABLE_PLUGIN_AUTOLOAD are passed to the tests;
nothing else of this environment is."""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "refine",
        help="repair a function until its tests pass (CYCLE loop)",
        description=(
            "Run the tests against FUNCTION in a sandboxed copy of the workspace; while they fail, show "
            "the model the code and the first failure and test its proposed diffs, round after round, "
            "until green or out of budget. Progress goes to stderr, the final unified diff to stdout. "
            "Run from the workspace root."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("target", metavar="FILE::FUNCTION",
                        help="file relative to the workspace root, and a function or Class.method")
    parser.add_argument("--tests", nargs="+", required=True, metavar="NODEID",
                        help="pytest node ids (or test files) that must pass")
    parser.add_argument("--model", required=True,
                        help="model folder or hub id (transformers), or the served model name (openai)")
    parser.add_argument("--backend", choices=("transformers", "openai"), default="transformers")
    parser.add_argument("--endpoint", default="http://127.0.0.1:8000/v1",
                        help="base URL of the OpenAI-compatible server (openai backend)")
    parser.add_argument("--rounds", type=int, default=4, help="repair rounds after round 0 (default: 4)")
    parser.add_argument("--candidates", "-k", type=int, default=1, help="candidates per round (default: 1)")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="wall-clock budget for the whole run, which also bounds each test run")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.0, help="0 means greedy (default)")
    parser.add_argument("--python", default=None, metavar="EXE",
                        help="interpreter for the tests (default: the workspace's .venv/venv, else PATH's)")
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), or a torch device")
    parser.add_argument("--json", action="store_true", help="one JSON event per line on stdout")
    parser.add_argument("--trajectory", metavar="FILE", type=Path,
                        help="write the whole run (every round's prompt, code, feedback and candidates) as JSON; "
                             "`editseq train cycle-collect --trajectories` turns verified runs into CYCLE data")
    parser.add_argument("--apply", action="store_true",
                        help="write the result to the file, only if verified green and the file is unchanged")
    parser.set_defaults(handler=run)


def _fail(message: str) -> int:
    print(f"editseq refine: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def run(args: argparse.Namespace) -> int:
    from model_runtime.backends import BackendError
    from model_runtime.refine import RefineBudget, RefineError, RefineTarget, refine
    from model_runtime.sandbox import Sandbox, SandboxError, SandboxLimits

    path, sep, function = args.target.rpartition("::")
    if not sep or not path or not function:
        return _fail(f"the target must be FILE::FUNCTION, got {args.target!r}")
    try:
        budget = RefineBudget(rounds=args.rounds, candidates=args.candidates, seconds=args.timeout,
                              max_new_tokens=args.max_new_tokens, temperature=args.temperature)
        limits = SandboxLimits() if args.timeout is None else SandboxLimits(timeout_s=args.timeout)
        env = {name: os.environ[name] for name in PYTEST_VARIABLES if name in os.environ}
        sandbox = Sandbox(Path.cwd(), python=args.python, limits=limits, env=env)
    except (ValueError, SandboxError) as exc:
        return _fail(str(exc))
    printer = _JsonPrinter() if args.json else _TextPrinter()
    try:
        # The model loads on first use, after the input was checked and round 0 ran.
        result = refine(RefineTarget(Path.cwd(), path, function), args.tests, _backend(args), sandbox=sandbox,
                        budget=budget, on_event=printer.event)
    except (RefineError, BackendError) as exc:
        return _fail(str(exc))
    applied, why = _apply(result) if args.apply else (False, "")
    if args.trajectory is not None:
        try:
            _write_json(args.trajectory, result.to_dict())
        except OSError as exc:
            print(f"editseq refine: cannot write the trajectory to {args.trajectory}: {exc}", file=sys.stderr)
    printer.finish(result, applied, why)
    return EXIT_VERIFIED if result.verified else EXIT_NOT_VERIFIED


def _write_json(path: Path, data: dict) -> None:
    """Atomically: a reader never sees half a trajectory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def _backend(args: argparse.Namespace):
    from model_runtime.backends import make_backend

    return make_backend(args.backend, args.model, endpoint=args.endpoint, device=args.device)


def _apply(result) -> tuple[bool, str]:
    """Write a verified result; ``(written, why not)``."""
    if not result.verified:
        return False, "not verified green"
    if result.final == result.original:
        return False, "nothing to change"
    if not write_if_unchanged(Path.cwd() / result.path, result.original, result.final):
        return False, "the file changed on disk during the run"
    return True, ""


def write_if_unchanged(path: Path, expected: str, text: str) -> bool:
    """Replace ``path`` with ``text`` atomically if it still holds ``expected``; False if not.

    The temporary file gets the original's permissions, so the rename keeps them.
    """
    try:
        if path.read_bytes() != expected.encode("utf-8"):
            return False
        mode = path.stat().st_mode & 0o7777
    except OSError:
        return False
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".editseq", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(text.encode("utf-8"))
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return True


class _JsonPrinter:
    """One JSON object per line on stdout, flushed at once; ``done`` comes last, after ``--apply``."""

    @staticmethod
    def _emit(obj: dict) -> None:
        sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def event(self, event) -> None:
        if event.event != "done":
            self._emit(event.to_dict())

    def finish(self, result, applied: bool, why: str) -> None:
        done = result.done_event().to_dict()
        self._emit({**done, "file": result.path, "function": result.function,
                    "steps": len(result.diffs), "applied": applied, "not_applied": why})


class _TextPrinter:
    """A line per candidate and per round on stderr; the final diff on stdout."""

    @staticmethod
    def _say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def event(self, event) -> None:
        kind = event.event
        if kind == "round_started" and event.round:
            self._say(f"round {event.round}: asking for {event.candidates} candidate(s) "
                      f"(best so far {event.best_passed}/{event.total} passed)")
        elif kind == "round_started":
            self._say("round 0: running the tests" + (" and writing the function" if event.candidates else ""))
        elif kind == "candidate":
            who = "current code" if event.candidate is None else f"candidate {event.candidate}"
            counts = f"{event.passed}/{event.total} passed" if event.status in ("tested", "duplicate") else ""
            self._say(f"  {who}: {event.status} {counts}".rstrip())
        elif kind == "round_finished":
            note = "better" if event.improved else "no better"
            self._say(f"round {event.round} done in {event.seconds:.1f} s: best "
                      f"{event.best_passed}/{event.total} passed ({note})")

    def finish(self, result, applied: bool, why: str) -> None:
        if result.diff:
            print(result.diff, flush=True)
        state = "verified green" if result.verified else f"NOT verified (stopped: {result.reason})"
        self._say(f"{result.path}::{result.function}: {state} after {result.rounds} repair round(s), "
                  f"{result.best.passed}/{result.best.total} tests passed")
        if applied:
            self._say(f"applied to {result.path}")
        elif why and why != "nothing to change":
            self._say(f"not applied: {why}")
