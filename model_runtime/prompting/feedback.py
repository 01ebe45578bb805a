"""Execution feedback in CYCLE's words: what a repair prompt says about a failed run.

CYCLE (notes §2.3) shows the model *one* failing test, preferring a failed
assertion, as one of three strings (built by :mod:`model_runtime.prompting.formats`):

- a failed ``assert f(x) == y``: ``Test Case Failed: assert f(x) == y, Input:
  "x", Expected output: "y", Actual output: "<repr>"``. pytest gives us the
  compared values, each in its role whatever the order (the failure report
  decides which side is the actual value); the input is the arguments of
  the side that is a call, else it is left out
  (:func:`~model_runtime.prompting.formats.comparison_feedback`). Other asserts get
  CYCLE's fallback, ``Test Case Failed: Failed at line: <assert>, Error:
  AssertionError``;
- an exception: ``Failed at line: <source line>; Error: <Type: message>``,
  the line being the innermost frame (usually in the code under repair);
- a run out of time (wall clock or CPU limit): ``timed out``.

Runs that never reached the tests say why in the same ``Error:`` words: a
refused candidate (syntax error), a collection error (the import line that
failed), a test id that does not exist.

The text must fit the prompt, so it is cut to ``max_tokens`` as counted by
``count_tokens`` (default: the cheap over-estimate
:func:`~model_runtime.prompting.instruction.estimate_tokens`). The long parts (values,
input, statement) are shortened first, keeping both ends of each, because the
sentence around them is what tells the model what kind of failure it is; only
then is the whole text cut.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Callable

from model_runtime.sandbox.runner import CaseResult, RunResult

from .formats import TIMEOUT_FEEDBACK, comparison_feedback, error_feedback, failed_test_feedback
from .instruction import estimate_tokens

__all__ = ["DEFAULT_MAX_TOKENS", "case_feedback", "execution_feedback", "first_failure"]

#: Room for feedback in a CYCLE prompt; the paper shows one test case.
DEFAULT_MAX_TOKENS = 256
_ELLIPSIS = "..."

TokenCounter = Callable[[str], int]


def first_failure(result: RunResult) -> CaseResult | None:
    """The test CYCLE would show: the first failed assertion, else the first test that went wrong."""
    bad = [test for test in result.tests if test.bad]
    return next((test for test in bad if _is_assertion(test)), bad[0] if bad else None)


def execution_feedback(
    result: RunResult,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    count_tokens: TokenCounter = estimate_tokens,
) -> str:
    """The feedback for ``result``, within ``max_tokens``; ``""`` for a green run."""
    if result.status == "timeout" or "CPU time limit" in result.reason:
        return TIMEOUT_FEEDBACK
    if result.status != "completed":
        return _fit(lambda limit: "Error: " + _clip(result.reason, limit), max_tokens, count_tokens)
    failure = first_failure(result)
    if failure is None:
        return ""
    return case_feedback(failure, max_tokens=max_tokens, count_tokens=count_tokens)


def case_feedback(
    test: CaseResult,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    count_tokens: TokenCounter = estimate_tokens,
) -> str:
    """The feedback for one failed test, as the loop would show it (the pytest plugin's report uses it)."""
    return _fit(lambda limit: _describe(test, limit), max_tokens, count_tokens)


def _is_assertion(test: CaseResult) -> bool:
    return test.phase == "call" and test.outcome == "failed" and (
        test.message.startswith(("assert ", "AssertionError")) or test.expected is not None
    )


def _describe(test: CaseResult, limit: int | None) -> str:
    """One failure in CYCLE's words, each variable part clipped to ``limit`` characters."""
    statement = _clip(test.statement or _failing_line(test), limit)
    if _is_assertion(test):
        if test.expected is None or test.actual is None or not _equality(test.statement):
            # An assertion raised with a message (a doctest check's "Failed example: ... Got: ...")
            # says more than its line: keep the message.
            error = test.message if test.message.startswith("AssertionError:") else "AssertionError"
            return failed_test_feedback(statement, error=_clip(error, limit))
        expected, actual = _clip(test.expected, limit), _clip(test.actual, limit)
        args = _call_arguments(test.statement)
        if args is None:
            return comparison_feedback(statement, expected=expected, actual=actual)
        return failed_test_feedback(statement, input=_clip(args, limit), expected=expected, actual=actual)
    return error_feedback(statement, _clip(test.message, limit))


def _failing_line(test: CaseResult) -> str:
    """For a failure pytest gave as text (an import error): the last source line before the ``E`` lines."""
    lines = test.traceback.splitlines()
    errors = next((i for i, line in enumerate(lines) if line.startswith("E ")), len(lines))
    source = [line.strip() for line in lines[:errors] if line.startswith("    ") and line.strip()]
    return source[-1] if source else test.node_id


def _equality(statement: str) -> bool:
    """False for an ``assert`` that is not one ``==``/``is`` comparison (``assert f(x) > 5``, ``assert
    ok``): CYCLE shows those as a failed line, not as expected and actual outputs. A unittest assertion or a
    statement that does not parse alone keeps its values."""
    try:
        node = ast.parse(textwrap.dedent(statement)).body[0]
    except (SyntaxError, ValueError, IndexError):
        return True
    if not isinstance(node, ast.Assert):
        return True
    test = node.test
    return isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], (ast.Eq, ast.Is))


def _call_arguments(statement: str) -> str | None:
    """``"2, 3"`` for ``assert add(2, 3) == 5`` (or ``5 == add(2, 3)``): CYCLE's ``Input``; ``None`` if
    neither side is a call."""
    source = textwrap.dedent(statement)
    try:
        node = ast.parse(source).body[0]
    except (SyntaxError, ValueError, IndexError):
        return None
    if not (isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare)):
        return None
    # The call's side, whatever the order (``assert 5 == add(2, 3)``): left first, as pytest reports.
    sides = [node.test.left, *node.test.comparators[:1]]
    call = next((side for side in sides if isinstance(side, ast.Call)), None)
    if call is None:
        return None
    parts = [ast.get_source_segment(source, arg) or "" for arg in (*call.args, *call.keywords)]
    return ", ".join(parts)


def _clip(text: str, limit: int | None) -> str:
    """``text`` within ``limit`` characters, keeping its head and tail (``None``: untouched)."""
    if limit is None or len(text) <= limit:
        return text
    keep = max(limit - len(_ELLIPSIS), 2)
    return text[: keep - keep // 2] + _ELLIPSIS + text[len(text) - keep // 2 :]


def _fit(render: Callable[[int | None], str], max_tokens: int, count_tokens: TokenCounter) -> str:
    """Render with ever shorter variable parts until it fits, then cut the whole text if still needed."""
    text, limit = render(None), 1024
    while count_tokens(text) > max_tokens and limit >= 16:
        text, limit = render(limit), limit // 2
    if count_tokens(text) <= max_tokens:
        return text
    low, high = 0, len(text)  # the longest prefix that fits with the ellipsis
    while low < high:
        middle = (low + high + 1) // 2
        if count_tokens(text[:middle] + _ELLIPSIS) <= max_tokens:
            low = middle
        else:
            high = middle - 1
    return text[:low] + _ELLIPSIS
