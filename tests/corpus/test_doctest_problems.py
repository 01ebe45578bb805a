"""Problems mined from doctest examples, checked in the sandbox (model_runtime.corpus.doctest_problems)."""

import json
import textwrap
from collections import Counter

import pytest

from model_runtime.corpus.doctest_problems import (
    CandidateReason,
    doctest_problems,
    problem_row,
    read_problem_file,
    validate,
    wrong_program,
)
from model_runtime.evaluation.problems import Executor

MODULE = textwrap.dedent('''
    """Helpers."""
    import functools
    import re
    from typing import List

    import numpy as np

    SCALE = 3


    def split_words(text: str) -> List[str]:
        """Split text into words.

        >>> split_words("to be, or not")
        ['to', 'be', 'or', 'not']
        >>> len(split_words(""))
        0
        """
        return re.findall(r"\\w+", text)


    def checked_ratio(a, b):
        """Divide, refusing zero.

        >>> checked_ratio(6, 3)
        2.0
        >>> checked_ratio(1, 0)  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
            ...
        ZeroDivisionError: say what you like here
        >>> [checked_ratio(x, 4) for x in range(3)]   # doctest: +NORMALIZE_WHITESPACE
        [0.0,   0.25,
         0.5]
        """
        if b == 0:
            raise ZeroDivisionError("b is zero")
        return a / b


    def scaled(x):
        """Scale x.

        >>> scaled(2)
        6
        """
        return x * SCALE


    def as_array(x):
        """An array.

        >>> as_array([1]).tolist()
        [1]
        """
        return np.asarray(x)


    @functools.lru_cache
    def cached(x):
        """Cached.

        >>> cached(1)
        1
        """
        return x


    def prints_only(x):
        """Nothing to compare.

        >>> prints_only(1)
        """
        return None


    def imports_itself(x):
        """The example tests the installed copy, not the candidate.

        >>> from helpers import imports_itself
        >>> imports_itself(1)
        1
        """
        return x


    def needs_numpy(x):
        """The example needs a package the sandbox may lack.

        >>> import numpy
        >>> needs_numpy(1)
        1
        """
        return x


    class Box:
        def size(self):
            """A method: not a problem.

            >>> Box().size()
            0
            """
            return 0
''')


def test_mining_keeps_self_contained_functions_only():
    rejected = Counter()
    problems = doctest_problems(MODULE, "repo:demo/helpers.py", rejected)
    assert [p.task_id for p in problems] == ["repo:demo/helpers.py::split_words", "repo:demo/helpers.py::checked_ratio"]
    assert rejected == {
        CandidateReason.GLOBALS: 1,
        CandidateReason.NON_STDLIB_IMPORT: 2,
        CandidateReason.NOT_TOP_LEVEL_SIMPLE: 1,
        CandidateReason.REBINDS_ENTRY_POINT: 1,
        CandidateReason.NO_EXPECTED_OUTPUT: 1,
    }
    words = problems[0]
    # prompt: the imports it needs, then signature and docstring; the body is the solution
    assert words.prompt.startswith("import re\nfrom typing import List\n\n\ndef split_words(text: str)")
    assert "import functools" not in words.prompt and "numpy" not in words.prompt
    assert words.prompt.endswith('    0\n    """\n')
    assert words.canonical_solution == '    return re.findall(r"\\w+", text)\n'
    assert words.entry_point == "split_words"
    assert "def check(candidate):" in words.test
    compile(words.test, "test", "exec")
    ratio = problems[1]
    assert ratio.prompt.startswith("def checked_ratio(a, b):")  # needs no import
    assert wrong_program(ratio).endswith('    """\n    return None\n')


@pytest.fixture(scope="module")
def executor():
    with Executor(workers=2) as ex:
        yield ex


def test_canonical_solutions_pass_and_wrong_bodies_fail_in_the_sandbox(executor):
    problems = doctest_problems(MODULE, "demo.py")
    results = list(validate(problems, executor))
    assert [r.verdict for r in results] == ["kept", "kept"]
    assert all(r.kept and r.wrong is not None and r.wrong.status == "failed" for r in results)
    # the feedback a model reads: doctest's own report
    message = results[0].wrong.message
    assert "Failed example:" in message and "split_words(\"to be, or not\")" in message
    assert "Expected:" in message and "['to', 'be', 'or', 'not']" in message and "Got:" in message


def test_wrong_answer_and_unexpected_exception_read_clearly(executor):
    ratio = doctest_problems(MODULE, "demo.py")[1]
    off_by_one = ratio.prompt + "    if b == 0:\n        raise ZeroDivisionError\n    return a / b + 1\n"
    run = executor.run(ratio, off_by_one)
    assert run.status == "failed"
    assert "Failed example:\n    checked_ratio(6, 3)\nExpected:\n    2.0\nGot:\n    3.0" in run.message
    no_raise = ratio.prompt + "    return a / b if b else 0.0\n"
    run = executor.run(ratio, no_raise)
    assert run.status == "failed" and "ZeroDivisionError" in run.message and "Got:" in run.message
    crashes = ratio.prompt + "    return a.missing\n"
    run = executor.run(ratio, crashes)
    assert run.status == "failed" and "Exception raised:" in run.message and "AttributeError" in run.message


def test_examples_that_check_nothing_are_dropped(executor):
    source = textwrap.dedent('''
        def noisy(x):
            """Prints, returns nothing useful.

            >>> noisy(1)
            >>> 1 + 1
            2
            """
            print("", end="")
    ''')
    [problem] = doctest_problems(source, "noisy.py")
    [result] = validate([problem], executor)
    assert result.canonical.passed and result.wrong.passed and result.verdict == "trivial" and not result.kept


def test_limit_stops_early(executor):
    problems = doctest_problems(MODULE, "demo.py") * 3
    results = list(validate(problems, executor, limit=1))
    assert sum(r.kept for r in results) == 1 and len(results) == 1


def test_problem_file_round_trip_and_errors(tmp_path):
    problems = doctest_problems(MODULE, "demo.py")
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps(problem_row(p)) + "\n" for p in problems) + "\n")
    assert read_problem_file(path) == problems
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"task_id": "x", "prompt": "", "test": ""}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: field 'entry_point'"):
        read_problem_file(bad)
    bad.write_text("{not json\n")
    with pytest.raises(ValueError, match="bad.jsonl:1: not valid JSON"):
        read_problem_file(bad)
