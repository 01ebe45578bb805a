"""LintSeq's guarantees, checked on a real corpus (the standard library and HumanEval)."""

import inspect
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_runtime.lintseq.sampler import (
    LintSeqOptions,
    LintSeqSampler,
    ProgramSkipped,
    SkipReason,
    prepare_program,
)
from model_runtime.lintseq.linters import PyflakesLinter, PylintLinter

from tests.lintseq.lintseq_helpers import CORPUS, LINTER, _humaneval, check_path  # noqa: F401


def test_corpus_is_big_enough():
    assert len(CORPUS) > 300


@pytest.mark.parametrize("chunk", range(4))
def test_stdlib_functions_roundtrip_and_stay_clean(chunk):
    sampler = LintSeqSampler(LINTER)
    for i, program in enumerate(CORPUS[chunk::4]):
        lines = prepare_program(program)
        clean = LINTER.lint("\n".join(lines)) == []
        path = sampler.sample(lines, random.Random(i))
        check_path(path, LINTER, clean)


@settings(max_examples=60, deadline=None)
@given(
    program=st.sampled_from(CORPUS),
    seed=st.integers(0, 2**32),
    skip_trivia=st.booleans(),
    keep_global_defs=st.booleans(),
    indent_bias=st.sampled_from([0.5, 1.0, 3.0]),
)
def test_guarantees_hold_for_any_options(program, seed, skip_trivia, keep_global_defs, indent_bias):
    options = LintSeqOptions(skip_trivia=skip_trivia, keep_global_defs=keep_global_defs,
                             indent_bias=indent_bias)
    lines = prepare_program(program)
    path = LintSeqSampler(LINTER, options).sample(lines, random.Random(seed))
    check_path(path, LINTER, LINTER.lint("\n".join(lines)) == [])


def test_every_humaneval_program_yields_a_path():
    sampler = LintSeqSampler(LINTER)
    lengths = []
    for i, program in enumerate(_humaneval()):
        (path,) = sampler.sample_paths(program, 1, seed=3, index=i)
        check_path(path, LINTER, True)
        lengths.append(len(path.steps))
    # One-edit paths happen (deleting the import first takes everything with it),
    # but they are the exception.
    assert sum(n >= 2 for n in lengths) >= 0.9 * len(lengths)
    assert sum(lengths) / len(lengths) > 3


def test_whole_modules_roundtrip():
    import shlex
    import textwrap as tw

    sampler = LintSeqSampler(LINTER)
    for module in (tw, shlex):
        source = inspect.getsource(module)
        (path,) = sampler.sample_paths(source, 1, seed=1)
        check_path(path, LINTER, LINTER.lint(source) == [])
        assert len(path.steps) > 20


def test_pylint_configuration_guarantees():
    linter = PylintLinter()
    sampler = LintSeqSampler(linter)
    for i, program in enumerate(_humaneval()[:4]):
        (path,) = sampler.sample_paths(program, 1, seed=0, index=i)
        check_path(path, linter, True)


def test_same_seed_same_paths_other_seed_other_paths():
    sampler = LintSeqSampler(LINTER)
    program = CORPUS[5]
    first = [p.steps for p in sampler.sample_paths(program, 5, seed=11, index=3)]
    again = [p.steps for p in sampler.sample_paths(program, 5, seed=11, index=3)]
    assert first == again
    different = 0
    for program in CORPUS[:40]:
        a = [p.steps for p in sampler.sample_paths(program, 3, seed=1)]
        b = [p.steps for p in sampler.sample_paths(program, 3, seed=2)]
        different += a != b
    assert different > 10


def test_paths_of_one_program_differ():
    sampler = LintSeqSampler(LINTER)
    program = max(CORPUS[:50], key=len)
    paths = {tuple(map(tuple, p.steps)) for p in sampler.sample_paths(program, 5, seed=0)}
    assert len(paths) > 1


def test_deleting_a_header_takes_its_body():
    program = "def f(x):\n    y = x + 1\n    return y\n\n\nz = f(1)\n"
    for seed in range(20):
        path = LintSeqSampler(LINTER).sample(prepare_program(program), random.Random(seed))
        first_with_def = next(k for k, s in enumerate(path.steps) if 0 in s)
        # the body never arrives before its header, so states parse (checked) and
        # z = f(1) never precedes the def it uses
        assert all(5 not in s for s in path.steps[:first_with_def])
        check_path(path, LINTER, True)


def test_comments_and_blank_lines_travel_with_the_next_code_line():
    program = "x = 1\n\n# the separator\nSEP = '/'\n# trailing note\n"
    lines = prepare_program(program)
    orders = set()
    for seed in range(10):
        path = LintSeqSampler(LINTER).sample(lines, random.Random(seed))
        assert sorted(path.steps, key=min) == [[0], [1, 2, 3, 4]]
        orders.add(path.steps[0][0])
    assert orders == {0, 1}  # either statement may come first


def test_multiline_constants_are_inserted_whole():
    program = "import os\nCONFIG = {\n    'a': 1,\n    'b': os.sep,\n}\nprint(CONFIG)\n"
    lines = prepare_program(program)
    for seed in range(20):
        path = LintSeqSampler(LINTER).sample(lines, random.Random(seed))
        assert any(set(range(1, 5)) <= set(s) for s in path.steps)
        check_path(path, LINTER, True)


def test_deeper_lines_weigh_more():
    sampler = LintSeqSampler(LINTER, LintSeqOptions(indent_bias=1.0))
    lines = prepare_program("def f(x):\n    if x:\n        return 1\n    return 2\n")
    structure = sampler._structure(lines)
    assert dict(zip(structure.candidates, structure.weights)) == {0: 1.0, 1: 1.0, 2: 2.0, 3: 1.0}
    # and so deep lines are picked first more often: the innermost return is
    # inserted in the last edit far more often than a top-level line is
    last = sum(2 in sampler.sample(lines, random.Random(s)).steps[-1] for s in range(200))
    assert last > 60


def test_preexisting_errors_fold_into_the_path():
    program = "def f():\n    return undefined_name\n\n\ndef g():\n    return 1\n"
    lines = prepare_program(program)
    path = LintSeqSampler(LINTER).sample(lines, random.Random(0))
    check_path(path, LINTER, source_clean=False)


def test_round_limit_turns_the_rest_into_the_first_edit():
    lines = prepare_program("\n".join(f"x{i} = {i}" for i in range(10)))
    path = LintSeqSampler(LINTER, LintSeqOptions(max_rounds=3)).sample(lines, random.Random(0))
    assert len(path.steps) == 4 and len(path.steps[0]) == 7
    check_path(path, LINTER, True)


@pytest.mark.parametrize(
    "code, reason",
    [
        ("", SkipReason.EMPTY),
        ("   \n\n\t\n", SkipReason.EMPTY),
        ("# just a note\n\n# another\n", SkipReason.COMMENT_ONLY),
        ("def f(:\n    pass\n", SkipReason.SYNTAX_ERROR),
        ("x = 1\x00\n", SkipReason.BINARY),
        (b"\x89PNG\r\n\x1a\n\x00\x00", SkipReason.BINARY),
        (b"x = '\xff\xfe'\n", SkipReason.NON_UTF8),
        ("x = '\udc80'\n", SkipReason.NON_UTF8),
    ],
)
def test_unusable_programs_are_skipped_with_a_reason(code, reason):
    with pytest.raises(ProgramSkipped) as info:
        prepare_program(code)
    assert info.value.reason is reason


def test_windows_newlines_and_surrounding_blank_lines():
    lines = prepare_program("\n\r\nx = 1\r\ny = x\r\n\r\n")
    assert lines == ["x = 1", "y = x"]


def test_one_program_cannot_stop_a_run_by_its_size_or_time():
    """Before: 2,000 lines took 30 s for one path and 10,000 lines did not finish in 2 minutes."""
    long = prepare_program("\n".join(f"x{i} = {i}" for i in range(6000)))
    with pytest.raises(ProgramSkipped) as skipped:
        LintSeqSampler(PyflakesLinter()).sample(long, random.Random(0))
    assert skipped.value.reason is SkipReason.TOO_LONG
    program = prepare_program("\n".join(f"def f{i}(a):\n    b = a + {i}\n    return b" for i in range(300)))
    slow = LintSeqSampler(PyflakesLinter(), LintSeqOptions(max_seconds=0.05))
    with pytest.raises(ProgramSkipped) as skipped:
        slow.sample(program, random.Random(0))
    assert skipped.value.reason is SkipReason.TIME_LIMIT
