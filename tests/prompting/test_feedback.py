"""Execution feedback from real sandboxed runs, in CYCLE's words, within a token budget."""

from __future__ import annotations

import dataclasses

import pytest

from model_runtime.prompting.feedback import execution_feedback, first_failure
from model_runtime.prompting.instruction import estimate_tokens
from model_runtime.prompting.formats import TIMEOUT_FEEDBACK
from model_runtime.sandbox.runner import RunResult, Sandbox, SandboxLimits

CODE = """\
def add(a, b):
    return a - b


def div(a, b):
    return a / b


def big():
    return list(range(5000))
"""

TESTS = """\
from calc import add, big, div


def test_error():
    assert div(1, 0) == 0


def test_call():
    assert add(2, 3) == 5


def test_variable():
    total = add(1, 1)
    assert total == 2


def test_plain():
    assert add(1, 1) > 5


def test_big():
    assert big() == [0] * 5000


def test_green():
    assert add(0, 0) == 0


def test_reversed():
    assert 5 == add(2, 3)
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> RunResult:
    root = tmp_path_factory.mktemp("ws")
    (root / "calc.py").write_text(CODE)
    (root / "tests").mkdir()
    (root / "tests" / "test_calc.py").write_text(TESTS)
    (root / "tests" / "test_import.py").write_text("from calc import nothing_here\n\ndef test_i():\n    pass\n")
    result = Sandbox(root, limits=SandboxLimits(timeout_s=30)).run(["tests/test_calc.py", "tests/test_import.py"])
    assert result.status == "completed"
    return result


def only(result: RunResult, name: str) -> RunResult:
    """The same real run, narrowed to one test."""
    return dataclasses.replace(result, tests=tuple(t for t in result.tests if t.node_id.endswith(name)))


def test_failed_call_gives_cycle_input_expected_actual(run):
    assert execution_feedback(only(run, "::test_call")) == (
        'Test Case Failed: assert add(2, 3) == 5, Input: "2, 3", Expected output: "5", Actual output: "-1"')


def test_the_call_is_the_actual_side_whatever_the_order(run):
    assert execution_feedback(only(run, "::test_reversed")) == (
        'Test Case Failed: assert 5 == add(2, 3), Input: "2, 3", Expected output: "5", Actual output: "-1"')


def test_comparison_of_a_variable_leaves_input_out(run):
    assert execution_feedback(only(run, "::test_variable")) == (
        'Test Case Failed: assert total == 2, Expected output: "2", Actual output: "0"')


def test_assert_without_equality_uses_cycles_fallback(run):
    assert execution_feedback(only(run, "::test_plain")) == (
        "Test Case Failed: Failed at line: assert add(1, 1) > 5, Error: AssertionError")


def test_exception_names_the_line_that_raised(run):
    assert execution_feedback(only(run, "::test_error")) == (
        "Failed at line: return a / b; Error: ZeroDivisionError: division by zero")


def test_import_error_names_the_import_line(run):
    assert execution_feedback(only(run, "tests/test_import.py")) == (
        "Failed at line: from calc import nothing_here; "
        "Error: ImportError: cannot import name 'nothing_here' from 'calc' (calc.py)")


def test_first_failed_assertion_is_preferred_to_an_earlier_error(run):
    assert run.tests[0].node_id.endswith("::test_error")
    assert first_failure(run).node_id.endswith("::test_call")
    assert execution_feedback(run).startswith('Test Case Failed: assert add(2, 3) == 5')


def test_green_run_has_no_feedback(run):
    assert only(run, "::test_green").green
    assert execution_feedback(only(run, "::test_green")) == ""


@pytest.mark.parametrize("budget", [40, 80, 200])
def test_long_values_are_cut_to_the_budget_keeping_the_sentence(run, budget):
    text = execution_feedback(only(run, "::test_big"), max_tokens=budget)
    assert estimate_tokens(text) <= budget
    assert text.startswith("Test Case Failed: assert ")
    assert budget < 80 or text.startswith("Test Case Failed: assert big() == [0] * 5000")
    assert 'Expected output: "[0, 0' in text and 'Actual output: "[0, 1' in text and "..." in text


def test_a_custom_token_counter_is_used(run):
    words = lambda text: len(text.split())  # noqa: E731
    text = execution_feedback(only(run, "::test_big"), max_tokens=12, count_tokens=words)
    assert words(text) <= 12 and text.startswith("Test Case Failed:")


def test_tiny_budget_cuts_the_whole_text(run):
    text = execution_feedback(only(run, "::test_error"), max_tokens=5)
    assert estimate_tokens(text) <= 5 and text.endswith("...")


def test_timeout_gives_cycles_timeout_feedback(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_spin.py").write_text("def test_spin():\n    while True:\n        pass\n")
    result = Sandbox(tmp_path, limits=SandboxLimits(timeout_s=2)).run(["tests/test_spin.py"])
    assert result.timed_out
    assert execution_feedback(result) == TIMEOUT_FEEDBACK == "timed out"


def test_refused_candidate_says_why(tmp_path):
    result = Sandbox(tmp_path).run(["tests/test_x.py"], {"calc.py": "def f(:\n"})
    assert execution_feedback(result) == "Error: calc.py does not parse: SyntaxError: invalid syntax (line 1)"
