"""Linters behind one interface, as LintSeq needs them.

LintSeq only asks one question of a linter: *which lines of this program hold an
error?*  The answer decides which further lines a deletion drags along, so two
linters are offered:

``pyflakes`` (the default)
    Works in memory on the parsed tree: ``ast.parse``, the pyflakes checker
    restricted to messages that are real errors (undefined names and locals,
    misplaced ``return``/``yield``/``break``/``continue``, duplicate arguments,
    ...), then a compile of the same tree so that errors only the compiler sees
    (``nonlocal`` without binding, ``await`` outside ``async def``) count too.
    Style warnings such as unused imports are ignored: an intermediate program
    that imports something it does not use yet is fine.

``pylint``
    The configuration of the LintSeq paper's reference code, kept so results
    can be compared with the paper: conventions and refactors disabled; every
    E and F message plus W0311 (bad indentation) and W0231 (super-init not
    called) count. It writes each probe to a file and runs pylint in-process,
    as the reference does, so it is slow (tens of ms per probe).
"""

from __future__ import annotations

import ast
import io
import os
import re
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "LINTERS",
    "LintMessage",
    "Linter",
    "PyflakesLinter",
    "PylintLinter",
    "get_linter",
]


@dataclass(frozen=True, slots=True)
class LintMessage:
    """One error: 1-based ``line`` in the linted text, a short ``code`` and the message."""

    line: int
    code: str
    message: str


class Linter(Protocol):
    """What LintSeq (and later the editor-side edit check) needs of a linter."""

    name: str

    def lint(self, source: str) -> list[LintMessage]:
        """Return the errors in ``source``; an empty list means the program is clean."""
        ...


_ON_LINE = re.compile(r"on line (\d+)")


def syntax_error_line(exc: SyntaxError, message: str | None = None) -> int:
    """The line a syntax error is *about*.

    CPython reports "expected an indented block after 'if' statement on line 3"
    at the line *after* the header; the header is what must go, so a message
    naming "on line N" wins over ``lineno``, as the reference code does.
    """
    match = _ON_LINE.search(message if message is not None else str(exc.msg))
    if match:
        return int(match.group(1))
    return exc.lineno or 1


# pyflakes message classes that are errors (the code would fail to compile or
# fail at run time whenever reached), with flake8's codes for readability.
PYFLAKES_ERRORS = {
    "UndefinedName": "F821",
    "UndefinedLocal": "F823",
    "UndefinedExport": "F822",
    "DuplicateArgument": "F831",
    "ReturnOutsideFunction": "F706",
    "YieldOutsideFunction": "F704",
    "ContinueOutsideLoop": "F702",
    "BreakOutsideLoop": "F701",
    "DefaultExceptNotLast": "F707",
    "TwoStarredExpressions": "F622",
    "TooManyExpressionsInStarredAssignment": "F621",
    "ImportStarNotPermitted": "F406",
    "LateFutureImport": "F404",
    "FutureFeatureNotDefined": "F407",
    "ForwardAnnotationSyntaxError": "F722",
    "InvalidPrintSyntax": "F633",
}


class PyflakesLinter:
    """Fast in-memory linter: syntax, pyflakes errors, then the compiler's own checks."""

    name = "pyflakes"

    def __init__(self) -> None:
        # Imported here so that importing this module stays cheap.
        from pyflakes.checker import Checker

        self._checker = Checker

    def lint(self, source: str) -> list[LintMessage]:
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            return [LintMessage(syntax_error_line(exc), "E999", f"SyntaxError: {exc.msg}")]
        except (ValueError, RecursionError, MemoryError) as exc:  # NUL bytes, absurd nesting
            return [LintMessage(1, "E902", f"{type(exc).__name__}: {exc}")]
        errors = [
            LintMessage(msg.lineno, PYFLAKES_ERRORS[type(msg).__name__], msg.message % msg.message_args)
            for msg in self._checker(tree, "<lintseq>").messages
            if type(msg).__name__ in PYFLAKES_ERRORS
        ]
        if errors:
            return errors
        try:
            compile(tree, "<lintseq>", "exec", dont_inherit=True)
        except SyntaxError as exc:
            return [LintMessage(syntax_error_line(exc), "E999", f"SyntaxError: {exc.msg}")]
        except (ValueError, RecursionError, MemoryError) as exc:
            return [LintMessage(1, "E902", f"{type(exc).__name__}: {exc}")]
        return []


class PylintLinter:
    """The LintSeq paper's pylint configuration, run in-process on a temporary file."""

    name = "pylint"

    #: Warnings the paper counts as errors; every other W message is dropped.
    COUNTED_WARNINGS = frozenset({"W0311", "W0231"})

    def __init__(self) -> None:
        try:
            from pylint.lint import Run
            from pylint.reporters import CollectingReporter
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "the pylint linter needs pylint: pip install 'editseq[pylint]'"
            ) from exc
        self._run = Run
        self._reporter_cls = CollectingReporter
        self._dir = tempfile.TemporaryDirectory(prefix="editseq-pylint-")
        self._rcfile = os.path.join(self._dir.name, "empty.rc")
        with open(self._rcfile, "w", encoding="utf-8"):
            pass
        self._count = 0

    def lint(self, source: str) -> list[LintMessage]:
        self._count += 1
        modname = f"probe_{os.getpid()}_{self._count}"
        path = os.path.join(self._dir.name, modname + ".py")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(source)
        reporter = self._reporter_cls()
        sink = io.StringIO()
        try:
            with redirect_stdout(sink), redirect_stderr(sink):
                self._run(
                    [
                        f"--rcfile={self._rcfile}",
                        "--disable=C,R",
                        "--reports=n",
                        "--score=n",
                        "--persistent=n",
                        "--unsafe-load-any-extension=y",
                        "--generated-members=cv2.*",
                        path,
                    ],
                    reporter=reporter,
                    exit=False,
                )
        finally:
            os.unlink(path)
            self._forget(modname)
        errors = []
        for msg in reporter.messages:
            if msg.C not in ("E", "F") and msg.msg_id not in self.COUNTED_WARNINGS:
                continue
            line = msg.line or 1
            if msg.msg_id == "E0001":
                match = _ON_LINE.search(msg.msg)
                if match:
                    line = int(match.group(1))
            errors.append(LintMessage(line, msg.msg_id, msg.msg))
        return errors

    @staticmethod
    def _forget(modname: str) -> None:
        """Drop the probe from astroid's module cache, which would otherwise grow per probe."""
        try:
            from astroid import MANAGER
        except ImportError:  # pragma: no cover
            return
        MANAGER.astroid_cache.pop(modname, None)


LINTERS = {"pyflakes": PyflakesLinter, "pylint": PylintLinter}


def get_linter(name: str) -> Linter:
    """Build the linter called ``name`` (``pyflakes`` or ``pylint``)."""
    try:
        factory = LINTERS[name]
    except KeyError:
        raise ValueError(f"unknown linter {name!r}; choose one of {', '.join(LINTERS)}") from None
    return factory()
