"""Both linters flag errors, not style, and report the line the error is about."""

import pytest

from model_runtime.lintseq.linters import PyflakesLinter, PylintLinter, get_linter


@pytest.fixture(scope="module", params=["pyflakes", "pylint"])
def linter(request):
    return get_linter(request.param)


def lines_of(linter, source):
    return sorted({m.line for m in linter.lint(source)})


CLEAN = '''import os
import sys


def f(x):
    """Unused imports and names are style, not errors."""
    unused = 3
    return x + 1
'''


def test_clean_program_is_clean(linter):
    assert linter.lint(CLEAN) == []


@pytest.mark.parametrize(
    "source, line",
    [
        ("x = 1\ny = z + 1\n", 2),  # undefined name
        ("def f():\n    return y\n", 2),
        ("def f():\n    if x := 1:\n        pass\n", None),  # walrus is fine: no error
        ("return 3\n", 1),  # return outside function
        ("x = 1\nbreak\n", 2),
        ("def f(a, a):\n    return a\n", 1),  # duplicate argument
        ("x = (1,\n", 1),  # never closed
    ],
)
def test_errors_and_their_lines(linter, source, line):
    found = lines_of(linter, source)
    if line is None:
        assert found == []
    else:
        assert line in found


def test_block_without_body_blames_the_header(linter):
    # CPython reports this at line 3 with "... on line 2": the header must go.
    source = "def f(x):\n    if x:\n"
    assert lines_of(linter, source) == [2]


def test_pyflakes_compile_only_errors():
    linter = PyflakesLinter()
    assert lines_of(linter, "def f():\n    nonlocal q\n") == [2]
    assert lines_of(linter, "await x\n") == [1]


def test_pyflakes_codes_are_flake8_codes():
    (msg,) = PyflakesLinter().lint("print(undefined_thing)\n")
    assert msg.code == "F821" and "undefined_thing" in msg.message


def test_pylint_counts_bad_indentation_and_missing_super_init():
    linter = PylintLinter()
    bad_indent = "def f():\n   return 1\n"  # W0311: 3 spaces
    assert any(m.code == "W0311" for m in linter.lint(bad_indent))
    no_super = (
        "class A:\n    def __init__(self):\n        self.a = 1\n\n\n"
        "class B(A):\n    def __init__(self):\n        self.b = 2\n"
    )
    assert any(m.code == "W0231" for m in linter.lint(no_super))
    # other warnings (unused variable W0612) and conventions do not count
    assert linter.lint("def f():\n    x = 1\n    return 2\n") == []


def test_pylint_probes_do_not_pile_up_in_astroid_cache():
    from astroid import MANAGER

    linter = PylintLinter()
    before = len(MANAGER.astroid_cache)
    for i in range(5):
        linter.lint(f"x = {i}\n")
    assert len(MANAGER.astroid_cache) <= before + 1


def test_unknown_linter_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown linter 'flake9'"):
        get_linter("flake9")
