"""``editseq refine``: make one function's tests pass with the CYCLE loop, from the workspace root.

Exit codes (also in ``--help``):

* 0: the result is verified green (and written, with ``--apply``);
* 1: not verified: the budget (rounds, seconds), patience or a cancel ran out first;
* 2: bad input or no run possible: missing file, function or test id, bad
  numbers, a model or endpoint that cannot be used.

``--apply`` writes only a verified result, atomically (a temporary file in the
same folder, then a rename), and only if the file on disk is still the one
the run started from: a user who kept typing must not lose the edit. The run
itself goes through the same seam as the pytest plugin and the language
server (:mod:`model_runtime.run.engine`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from model_runtime import defaults

from .arguments import MODEL_HELP, add_backend_arguments, add_strategy_argument, add_verify_argument

EXIT_VERIFIED, EXIT_NOT_VERIFIED, EXIT_BAD_INPUT, EXIT_NOT_WRITTEN = 0, 1, 2, 3

EPILOG = """\
exit status: 0 verified green (written with --apply), 1 not verified (budget, patience or
cancel ran out first; nothing written), 2 bad input (missing file, function or test id,
bad numbers, a model or endpoint that cannot be used), 3 verified but --apply wrote nothing
(the file changed during the run, is read-only, or its filesystem is).
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
    parser.add_argument("--model", default=defaults.MODEL, help=MODEL_HELP)
    add_backend_arguments(parser)
    parser.add_argument("--rounds", type=int, default=defaults.ROUNDS,
                        help=f"repair rounds after round 0 (default: {defaults.ROUNDS})")
    parser.add_argument("--candidates", "-k", type=int, default=defaults.CANDIDATES,
                        help=f"candidates per round (default: {defaults.CANDIDATES})")
    add_strategy_argument(parser)
    add_verify_argument(parser)
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="wall-clock budget for the whole run, which also bounds each test run")
    parser.add_argument("--max-new-tokens", type=int, default=defaults.MAX_NEW_TOKENS)
    parser.add_argument("--temperature", type=float, default=defaults.TEMPERATURE, help="0 means greedy (default)")
    parser.add_argument("--python", default=None, metavar="EXE",
                        help="interpreter for the tests (default: the workspace's .venv/venv, else PATH's)")
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
    from model_runtime.errors import EditseqError
    from model_runtime.run import engine

    from .arguments import run_config

    path, sep, function = args.target.rpartition("::")
    if not sep or not path or not function:
        return _fail(f"the target must be FILE::FUNCTION, got {args.target!r}")
    printer = _JsonPrinter() if args.json else _TextPrinter()
    root = Path.cwd()
    try:
        config = run_config(args, rounds=args.rounds, candidates=args.candidates, strategy=args.strategy,
                            verify=args.verify, prompt_format=args.prompt_format, max_new_tokens=args.max_new_tokens,
                            temperature=args.temperature, timeout=args.timeout, python=args.python)
        if not args.json:
            print(f"editseq refine: tests run in the sandbox ({engine.sandbox_mode()})", file=sys.stderr)
        # The model loads on first use, after the input was checked and round 0 ran.
        result = engine.refine(config, engine.make_backend(config), root, path, function, args.tests,
                               on_event=printer.event)
    except EditseqError as exc:
        return _fail(str(exc))
    applied, why = engine.apply_result(root, result) if args.apply else (False, "")
    if args.trajectory is not None:
        try:
            _write_json(args.trajectory, result.to_dict())
        except OSError as exc:
            print(f"editseq refine: cannot write the trajectory to {args.trajectory}: {exc}", file=sys.stderr)
    printer.finish(result, applied, why)
    if not result.verified:
        return EXIT_NOT_VERIFIED
    return EXIT_NOT_WRITTEN if args.apply and not applied and why != "nothing to change" else EXIT_VERIFIED


def _write_json(path: Path, data: dict) -> None:
    """Atomically: a reader never sees half a trajectory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(temporary, path)


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
                    "steps": len(result.diffs), "step_notes": list(result.step_notes), "applied": applied,
                    "not_applied": why})


class _TextPrinter:
    """A line per candidate and per round on stderr; the final diff on stdout."""

    @staticmethod
    def _say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def event(self, event) -> None:
        kind = event.event
        if kind == "round_started" and event.round:
            self._say(f"round {event.round}: asking for {event.candidates} candidate(s) in {event.format} "
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
        for number, note in enumerate(getattr(result, "step_notes", ()), 1):
            if note:
                self._say(f"step {number}: {note}")
        state = "verified green" if result.verified else f"NOT verified (stopped: {result.reason})"
        self._say(f"{result.path}::{result.function}: {state} after {result.rounds} repair round(s), "
                  f"{result.best.passed}/{result.best.total} tests passed ({result.checked_words})")
        if applied:
            self._say(f"applied to {result.path}")
        elif why and why != "nothing to change":
            self._say(f"not applied: {why}")
