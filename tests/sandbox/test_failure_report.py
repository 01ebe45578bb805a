"""The failure report schema, its file, and finding the function under test; real files, real sandbox runs."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from model_runtime.sandbox.failure_report import (
    REPORT_RELPATH,
    REPORT_VERSION,
    FailureReport,
    Frame,
    FunctionUnderTest,
    TestFailure,
    enclosing_function,
    function_under_test,
    is_test_file,
    read_report,
    report_path,
    target_of_case,
    write_report,
)
from model_runtime.sandbox.runner import Sandbox

FAILURE = TestFailure(
    node_id="tests/test_m.py::test_add[1-2]", test_path="tests/test_m.py", test_line=12,
    message="assert -1 == 3\n +  where -1 = add(1, 2)", target_path="pkg/m.py", target_function="Calc.add",
    target_line=7, expected="3", actual="-1", feedback='Test Case Failed: assert add(1, 2) == 3, Input: "1, 2"',
)
ORPHAN = TestFailure(
    node_id="tests/test_m.py::test_json", test_path="tests/test_m.py", test_line=20, message="ValueError: é",
    target_path=None, target_function=None, target_line=None, expected=None, actual=None,
    feedback="Failed at line: json.loads(s); Error: ValueError: é", phase="setup",
)


def _report(tmp_path) -> FailureReport:
    return FailureReport.new(tmp_path, [FAILURE, ORPHAN], ["tests/test_m.py::test_ok"])


# --------------------------------------------------------------------------- schema and file


def test_round_trip_through_the_file_and_json(tmp_path):
    report = _report(tmp_path)
    path = write_report(tmp_path, report)

    assert path == report_path(tmp_path) == tmp_path / REPORT_RELPATH == tmp_path / ".editseq" / "pytest-report.json"
    assert read_report(tmp_path) == report
    assert FailureReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["version"] == REPORT_VERSION == report.version and data["root"] == str(tmp_path.resolve())
    assert data["failures"][0]["target_function"] == "Calc.add" and data["failures"][1]["target_path"] is None
    assert data["passed"] == ["tests/test_m.py::test_ok"]
    assert (tmp_path / ".editseq" / ".gitignore").read_text() == "*\n"
    assert sorted(p.name for p in (tmp_path / ".editseq").iterdir()) == [".gitignore", "pytest-report.json"]


def test_rewriting_replaces_the_report_and_keeps_the_gitignore(tmp_path):
    write_report(tmp_path, _report(tmp_path))
    (tmp_path / ".editseq" / ".gitignore").write_text("*\n!keep\n")
    green = FailureReport.new(tmp_path, [], ["tests/test_m.py::test_add[1-2]"])
    write_report(tmp_path, green)
    assert read_report(tmp_path) == green and read_report(tmp_path).failures == ()
    assert (tmp_path / ".editseq" / ".gitignore").read_text() == "*\n!keep\n"


def test_failures_for_a_file_and_a_function(tmp_path):
    report = _report(tmp_path)
    assert report.failures_for("pkg/m.py") == [FAILURE]
    assert report.failures_for("pkg/m.py", "Calc.add") == [FAILURE]
    assert report.failures_for("pkg/m.py", "add") == []
    assert report.failures_for("tests/test_m.py") == []


def test_a_missing_report_is_none(tmp_path):
    assert read_report(tmp_path) is None
    assert read_report(tmp_path / "no-such-folder") is None


GOOD = {"version": REPORT_VERSION, "created": 1.5, "root": "/w", "failures": [FAILURE.to_dict()], "passed": []}


@pytest.mark.parametrize("content", [
    b"",
    b"not json",
    b"\xff\xfe\x00garbage",
    b"[]",
    b"null",
    json.dumps(GOOD).encode()[:60],  # cut off mid-write by something that is not us
    json.dumps({**GOOD, "version": REPORT_VERSION + 1}).encode(),
    json.dumps({**GOOD, "version": 0}).encode(),
    json.dumps({k: v for k, v in GOOD.items() if k != "failures"}).encode(),
    json.dumps({**GOOD, "passed": [1]}).encode(),
    json.dumps({**GOOD, "failures": [{**FAILURE.to_dict(), "test_line": "12"}]}).encode(),
    json.dumps({**GOOD, "failures": [{**FAILURE.to_dict(), "target_line": True}]}).encode(),
    json.dumps({**GOOD, "failures": [{k: v for k, v in FAILURE.to_dict().items() if k != "node_id"}]}).encode(),
    json.dumps({**GOOD, "failures": ["tests/test_m.py::test_add"]}).encode(),
    b"[" * 100_000,
], ids=lambda c: repr(c[:24]))
def test_a_broken_or_foreign_report_is_none(tmp_path, content):
    path = report_path(tmp_path)
    path.parent.mkdir()
    path.write_bytes(content)
    assert read_report(tmp_path) is None


def test_the_good_fixture_itself_reads(tmp_path):
    """The broken variants above differ from this one by one change each."""
    path = report_path(tmp_path)
    path.parent.mkdir()
    path.write_text(json.dumps(GOOD))
    assert read_report(tmp_path).failures == (FAILURE,)


def test_a_folder_in_place_of_the_report_is_none(tmp_path):
    report_path(tmp_path).mkdir(parents=True)
    assert read_report(tmp_path) is None


# --------------------------------------------------------------------------- the function under test

SOURCE = textwrap.dedent('''\
    import functools


    def top(x):
        def inner():
            return x
        return inner()


    @functools.cache
    def cached(x):
        return x


    class Outer:
        value = 1

        def method(self):
            return self.value

        class Inner:
            async def deep(self):
                return 2
    ''')


@pytest.mark.parametrize("line, expected", [
    (4, ("top", 4)), (6, ("top", 4)), (7, ("top", 4)),  # a nested function belongs to its outer function
    (10, ("cached", 11)), (12, ("cached", 11)),  # decorators belong to the function, the def line is its own
    (19, ("Outer.method", 18)), (23, ("Outer.Inner.deep", 22)),
    (1, None), (16, None), (8, None),  # an import, a class attribute, a blank line
])
def test_enclosing_function(line, expected):
    assert enclosing_function(SOURCE, line) == expected


def test_enclosing_function_of_broken_source_is_none():
    assert enclosing_function("def f(:\n    pass\n", 1) is None


@pytest.mark.parametrize("path, expected", [
    ("tests/helpers.py", True), ("test_x.py", True), ("pkg/x_test.py", True), ("pkg/conftest.py", True),
    ("pkg/tests/data/util.py", True), ("pkg/calc.py", False), ("testing.py", False), ("pkg/test.py", False),
    ("contest.py", False),
])
def test_is_test_file(path, expected):
    assert is_test_file(path) is expected


def test_the_first_workspace_function_the_test_calls_wins(tmp_path):
    """Not the deepest frame: a helper that raises because its caller passed it something wrong is not
    what the test tests (issue 15: a bug in ``seekable.seek`` was blamed on ``consume``)."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("def outer():\n    return inner()\n\n\ndef inner():\n    return 1 / 0\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_m.py").write_text("def test():\n    outer()\n")
    (tmp_path / ".venv" / "lib").mkdir(parents=True)
    (tmp_path / ".venv" / "lib" / "lib.py").write_text("def f():\n    pass\n")
    frames = [
        Frame(str(tmp_path / "tests" / "test_m.py"), 2), Frame(str(tmp_path / "pkg" / "m.py"), 2),
        Frame(str(tmp_path / "pkg" / "m.py"), 6), Frame(str(tmp_path / ".venv" / "lib" / "lib.py"), 2),
        Frame("/usr/lib/python3/json/decoder.py", 3),
    ]
    assert function_under_test(tmp_path, frames) == FunctionUnderTest("pkg/m.py", "outer", 2)
    assert function_under_test(tmp_path, frames[:2]) == FunctionUnderTest("pkg/m.py", "outer", 2)
    assert function_under_test(tmp_path, frames[:1]) is None  # only a test frame, and no live names
    # No test frame in front of the code (a doctest): the innermost code frame, as the line that raised.
    assert function_under_test(tmp_path, frames[1:]) == FunctionUnderTest("pkg/m.py", "inner", 6)
    # A test whose name names the deeper function tests that one; other words do not count.
    assert function_under_test(tmp_path, frames, test="tests/test_m.py::test_inner_divides") == \
        FunctionUnderTest("pkg/m.py", "inner", 6)
    assert function_under_test(tmp_path, frames, test="tests/test_m.py::TestInner::test_x[1]") == \
        FunctionUnderTest("pkg/m.py", "inner", 6)
    assert function_under_test(tmp_path, frames, test="tests/test_m.py::test_raises_an_error") == \
        FunctionUnderTest("pkg/m.py", "outer", 2)


def test_a_sandbox_case_result_finds_its_target_from_the_traceback_text(tmp_path):
    (tmp_path / "calc.py").write_text("def ratio(a, b):\n    return a / b\n\n\ndef half(x):\n    return ratio(x, 0)\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_calc.py").write_text(
        "from calc import half\n\n\ndef test_half():\n    assert half(4) == 2\n\n\ndef test_plain():\n    assert 1 == 2\n")
    sandbox = Sandbox(tmp_path, python=sys.executable, env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    cases = {case.node_id: case for case in sandbox.run(["tests/test_calc.py"]).tests}

    # half() called ratio(x, 0): the test tests half, at the line that called the helper that raised.
    assert target_of_case(tmp_path, cases["tests/test_calc.py::test_half"]) == FunctionUnderTest("calc.py", "half", 6)
    assert target_of_case(tmp_path, cases["tests/test_calc.py::test_plain"]) is None
