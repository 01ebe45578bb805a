"""Blaming the right code: the function under test and the expected/actual of a failure, end to end.

Real pytest runs (``--editseq``) and real sandbox runs on a small workspace with bugs of the kinds users
reported (issue 15): an assertion written ``expected == actual``, unittest assertions, ``is``/``!=``/
``<``/``in``, a method whose bug makes a helper raise, a result bound earlier or called through
``functools.partial``. Nothing is mocked.
"""

from __future__ import annotations

import sys

import pytest

from model_runtime.sandbox.failure_report import is_test_file, read_report, workspace_file
from model_runtime.sandbox.pytest_json_plugin import Workspace, is_test_path, phrase
from model_runtime.sandbox.runner import Sandbox
from test_pytest_plugin import line_of, run_pytest, write

LIB = '''\
    import functools


    def inc(x):
        return x + 2


    def scale(factor, x):
        return factor * x + 1


    def _check(n):
        if n < 0:
            raise ValueError(f"negative: {n}")
        return n


    class Cursor:
        def __init__(self, items):
            self.items = list(items)
            self.at = 0

        def seek(self, index):
            self.at = _check(-index)

        def __iter__(self):
            return self

        def __next__(self):
            if self.at >= len(self.items):
                raise StopIteration
            self.at += 2
            return self.items[self.at - 2]


    def logged(function):
        @functools.wraps(function)
        def wrapper(*args):
            return function(*args)
        return wrapper


    @logged
    def halve(x):
        return x / 0


    def take(n, iterable):
        return [next(iterable) for _ in range(n)]


    class Point:
        def __init__(self, x, y):
            self.x, self.y = x, y

        def __eq__(self, other):
            return (self.x, self.y) == (other.x, other.y)

        def __repr__(self):
            return f"Point({self.x}, {self.y})"

        def move(self, d):
            return Point(self.x + d + 1, self.y)


    class memo:
        def __init__(self, function):
            self.function = function
            self.cache = {}

        def __call__(self, *args):
            if args not in self.cache:
                self.cache[args] = self.function(*args)
            return self.cache[args]


    @memo
    def square(x):
        return x * 3


    @memo
    def explode(x):
        return x / 0


    def positive(x):
        if x < 0:
            raise ValueError("negative")
        return x
    '''

PLAIN = '''\
    import functools

    import pytest

    from pkg.lib import Cursor, Point, explode, halve, inc, positive, scale, square, take


    def test_swapped():
        assert 2 == inc(1)


    def test_conventional():
        assert inc(1) == 2


    def test_bound_name():
        y = inc(1)
        assert y == 2


    def test_bound_name_swapped():
        y = inc(1)
        assert 2 == y


    def test_partial():
        p = functools.partial(scale, 2)
        assert p(3) == 6


    def test_named_roles():
        result = inc(1)
        expected = 2
        assert expected == result


    @pytest.mark.parametrize("a, b", [(1, 2)])
    def test_undecidable(a, b):
        assert a == b


    def test_constructed_expected():
        p = Point(1, 0)
        assert Point(2, 0) == p.move(1)


    def test_is():
        assert inc(1) is None


    def test_not_equal_swapped():
        assert 3 != inc(1)


    def test_less_swapped():
        assert 5 < inc(1)


    def test_in():
        assert inc(1) in [1, 2]


    def test_contains_swapped():
        assert 1 in [inc(0), inc(1)]


    def test_seek_raises_in_helper():
        c = Cursor([1, 2, 3])
        c.seek(1)


    def test_decorated_raises():
        halve(4)


    def test_iterating():
        c = Cursor("abc")
        assert list(c) == ["a", "b", "c"]


    class TestCursor:
        def test_first_two(self):
            c = Cursor("abcd")
            assert ["a", "b"] == take(2, c)


    def test_class_decorated():
        assert square(2) == 4


    def test_class_decorated_raises():
        explode(1)


    def test_did_not_raise():
        with pytest.raises(ValueError):
            positive(0)


    def test_acted_on_by_next():
        c = Cursor("abc")
        next(c)
        assert c.at == 1


    def test_passed_callable_did_not_raise():
        pytest.raises(ValueError, positive, 0)
    '''

UNIT = '''\
    import unittest

    from pkg.lib import inc


    class IncTests(unittest.TestCase):
        def test_equal_expected_first(self):
            self.assertEqual(2, inc(1))

        def test_equal_actual_first(self):
            self.assertEqual(inc(1), 2)

        def test_is(self):
            self.assertIs(inc(1), 2)

        def test_is_none(self):
            self.assertIsNone(inc(1))

        def test_true(self):
            self.assertTrue(inc(1) == 2)

        def test_false(self):
            self.assertFalse(inc(1) == 3)

        def test_in(self):
            self.assertIn(inc(1), [1, 2])

        def test_almost(self):
            self.assertAlmostEqual(1.5, inc(0.5))

        def test_count_equal(self):
            self.assertCountEqual((inc(x) for x in [1, 2]), [2, 3])

        def test_list_equal(self):
            self.assertListEqual([1, 2], [inc(0), inc(1)])
    '''

#: test -> (target function, expected, actual)
PLAIN_EXPECTED = {
    "test_swapped": ("inc", "2", "3"),
    "test_conventional": ("inc", "2", "3"),
    "test_bound_name": ("inc", "2", "3"),
    "test_bound_name_swapped": ("inc", "2", "3"),
    "test_partial": ("scale", "6", "7"),
    "test_named_roles": ("inc", "2", "3"),
    "test_undecidable[1-2]": (None, "2", "1"),  # nothing tells: assert actual == expected
    "test_constructed_expected": ("Point.move", "Point(2, 0)", "Point(3, 0)"),
    "test_is": ("inc", "None", "3"),
    "test_not_equal_swapped": ("inc", "!= 3", "3"),
    "test_less_swapped": ("inc", "> 5", "3"),
    "test_in": ("inc", "in [1, 2]", "3"),
    "test_contains_swapped": ("inc", "containing 1", "[2, 3]"),
    "test_seek_raises_in_helper": ("Cursor.seek", None, None),
    "test_decorated_raises": ("halve", None, None),
    "test_iterating": ("Cursor.__next__", "['a', 'b', 'c']", "['a', 'c']"),
    "TestCursor::test_first_two": ("Cursor.__next__", "['a', 'b']", "['a', 'c']"),
    "test_class_decorated": ("square", "4", "6"),  # through the object that wraps it
    "test_class_decorated_raises": ("explode", None, None),
    "test_did_not_raise": ("positive", None, None),  # the body of the with block is what ran
    "test_acted_on_by_next": ("Cursor.__next__", "1", "2"),  # what last acted on c
    "test_passed_callable_did_not_raise": ("positive", None, None),  # pytest.raises(E, f, x) runs f
}
UNIT_EXPECTED = {
    "test_equal_expected_first": ("2", "3"),
    "test_equal_actual_first": ("2", "3"),
    "test_is": ("2", "3"),
    "test_is_none": ("None", "3"),
    "test_true": ("True", "False"),
    "test_false": ("False", "True"),
    "test_in": ("in [1, 2]", "3"),
    "test_almost": ("1.5", "2.5"),
    "test_count_equal": ("[2, 3]", "[3, 4]"),
    "test_list_equal": ("[1, 2]", "[2, 3]"),
}


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    root = write(tmp_path_factory.mktemp("attribution"), {
        "pytest.ini": "[pytest]\n", "pkg/__init__.py": "", "pkg/lib.py": LIB,
        "tests/test_plain.py": PLAIN, "tests/test_unit.py": UNIT,
    })
    run = run_pytest(root, "--editseq")
    assert run.returncode == 1, run.stdout + run.stderr
    report = read_report(root)
    return root, {f.node_id.split("::", 1)[1]: f for f in report.failures}


def test_every_test_fails(reported):
    _, failures = reported
    assert set(failures) == set(PLAIN_EXPECTED) | {f"IncTests::{name}" for name in UNIT_EXPECTED}


@pytest.mark.parametrize("test", sorted(PLAIN_EXPECTED))
def test_plain_asserts_keep_their_roles_and_blame_what_the_test_calls(reported, test):
    root, failures = reported
    failure = failures[test]
    function, expected, actual = PLAIN_EXPECTED[test]
    assert (failure.target_function, failure.expected, failure.actual) == (function, expected, actual)
    if function is not None:
        assert failure.target_path == "pkg/lib.py"


def test_an_exception_is_blamed_on_the_called_method_at_its_line_not_on_the_helper_that_raised(reported):
    root, failures = reported
    seek = failures["test_seek_raises_in_helper"]
    assert (seek.target_function, seek.target_line) == ("Cursor.seek", line_of(root, "pkg/lib.py", "_check(-index)"))
    assert seek.message == "ValueError: negative: -1"
    halve = failures["test_decorated_raises"]  # through the decorator's wrapper, to the function it wraps
    assert (halve.target_function, halve.target_line) == ("halve", line_of(root, "pkg/lib.py", "return x / 0"))


@pytest.mark.parametrize("test", sorted(UNIT_EXPECTED))
def test_unittest_assertions_give_expected_actual_and_their_statement(reported, test):
    root, failures = reported
    failure = failures[f"IncTests::{test}"]
    assert (failure.expected, failure.actual) == UNIT_EXPECTED[test]
    assert (failure.target_path, failure.target_function) == ("pkg/lib.py", "inc")
    lines = (root / "tests/test_unit.py").read_text().splitlines()
    statement = lines[lines.index(f"    def {test}(self):") + 1].strip()  # the test's line, not unittest's
    assert failure.feedback.startswith(f"Test Case Failed: {statement}"), failure.feedback
    assert f'Expected output: "{UNIT_EXPECTED[test][0]}"' in failure.feedback


def test_a_test_module_of_any_name_is_a_test_not_the_code(tmp_path):
    """A module collected through ``python_files`` is not named like a test file: the node id says it is one."""
    spec = "from pkg.lib import Cursor\n\n\ndef test_seek():\n    Cursor('ab').seek(1)\n"
    root = write(tmp_path, {"pytest.ini": "[pytest]\npython_files = spec_*.py\n", "pkg/__init__.py": "",
                            "pkg/lib.py": LIB, "spec_lib.py": spec})
    assert run_pytest(root, "--editseq").returncode == 1
    (failure,) = read_report(root).failures
    assert (failure.target_path, failure.target_function) == ("pkg/lib.py", "Cursor.seek")


def test_the_feedback_reads_the_swapped_assert_right(reported):
    _, failures = reported
    assert failures["test_swapped"].feedback == (
        'Test Case Failed: assert 2 == inc(1), Input: "1", Expected output: "2", Actual output: "3"')


def test_the_sandbox_results_agree(reported):
    """The refinement sandbox reads the same values (its plugin runs the same rule in the user's pytest)."""
    root, _ = reported
    sandbox = Sandbox(root, python=sys.executable, env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    cases = {c.node_id.split("::", 1)[1]: c for c in sandbox.run(["tests/test_plain.py", "tests/test_unit.py"]).tests}
    for test in ("test_swapped", "test_bound_name", "test_less_swapped", "test_contains_swapped"):
        assert (cases[test].expected, cases[test].actual) == PLAIN_EXPECTED[test][1:], test
    for test, values in UNIT_EXPECTED.items():
        case = cases[f"IncTests::{test}"]
        assert (case.expected, case.actual) == values, test
        assert case.statement.startswith("self.assert") and "inc(" in case.statement, case.statement
    assert cases["test_seek_raises_in_helper"].expected is None


# --------------------------------------------------------------------------- the pieces


@pytest.mark.parametrize("path", [
    "tests/helpers.py", "test_x.py", "pkg/x_test.py", "pkg/conftest.py", "pkg/tests/data/util.py", "pkg/calc.py",
    "testing.py", "pkg/test.py", "contest.py", "a/b/tests/c.py", "tests.py",
])
def test_the_sandbox_plugin_knows_test_files_as_the_report_does(path):
    assert is_test_path(path) is is_test_file(path)


@pytest.mark.parametrize("path", ["pkg/m.py", "tests/test_m.py", ".venv/lib/x.py", "pkg/__pycache__/m.py",
                                  "pkg/data.txt", "conftest.py"])
def test_the_sandbox_plugin_knows_the_code_under_test_as_the_report_does(tmp_path, path):
    (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / path).write_text("")
    relative = workspace_file(tmp_path.resolve(), str(tmp_path / path))
    assert Workspace(tmp_path).owns(str(tmp_path / path)) is (relative is not None and not is_test_file(relative))
    assert not Workspace(tmp_path).owns("/usr/lib/python3/json/decoder.py")


@pytest.mark.parametrize("op, right_is_actual, expected", [
    ("==", False, ("L", "R")), ("==", True, ("R", "L")), ("is", True, ("R", "L")),
    ("!=", False, ("L", "!= R")), ("<", True, ("R", "> L")), (">=", True, ("R", "<= L")),
    ("in", False, ("L", "in R")), ("in", True, ("R", "containing L")), ("not in", True, ("R", "not containing L")),
    ("is not", False, ("L", "is not R")),
])
def test_how_expected_is_worded(op, right_is_actual, expected):
    assert phrase(op, "L", "R", right_is_actual) == expected


def test_the_sandbox_results_read_the_roles_and_records_of_an_older_plugin(tmp_path):
    from model_runtime.sandbox.results import Results

    crash = {"path": str(tmp_path / "tests" / "test_a.py"), "line": 2, "message": "assert 2 == 3"}
    comparison = {"op": "==", "left": "2", "right": "3"}
    results = Results(tmp_path, [])
    decided = results.failure("t", "failed", "call", {"crash": crash, "comparison": comparison,
                                                        "values": {"actual": "3", "expected": "2"}})
    assert (decided.expected, decided.actual) == ("2", "3")
    older = results.failure("t", "failed", "call", {"crash": crash, "comparison": comparison})
    assert (older.expected, older.actual) == ("3", "2")  # no roles recorded: assert actual == expected
    none = results.failure("t", "failed", "call", {"crash": crash, "comparison": comparison, "values": {}})
    assert (none.expected, none.actual) == (None, None)
