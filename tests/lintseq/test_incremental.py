"""Fast LintSeq gives the reference's paths: same seeds, same edits, every state clean.

The sampler lints incrementally (:mod:`model_runtime.lintseq.incremental`) and
draws lines with a Fenwick tree; ``sample(..., reference=True)`` is the
original loop (whole-program lint per probe, ``rng.choices``). These tests run
both on real code and on programs built to hit pyflakes' and CPython's corner
cases, with the engine in ``check`` mode: every single probe is also answered
by the full linter and must agree.
"""

import ast
import inspect
import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_runtime.lintseq.incremental import IncrementalPyflakes
from model_runtime.lintseq.linters import PyflakesLinter
from model_runtime.lintseq.sampler import (
    LintSeqOptions,
    LintSeqSampler,
    ProgramSkipped,
    SkipReason,
    _Picker,
    path_rng,
    prepare_program,
)

from tests.lintseq.lintseq_helpers import CORPUS, _humaneval, check_path

LINTER = PyflakesLinter()

# Programs built to reach the corners: globals and nonlocals, __all__, star
# imports, aliased imports, typing strings, class scopes, conditional and
# decorated definitions, multi-line strings and brackets, match, async.
TRICKY = [
    '''"""Module doc."""
from __future__ import annotations

import os
import typing
from typing import cast, List
import numpy as np
import numpy

__all__ = ["f", "g", "missing_later", "Counter"]
__all__ += ["h"]

COUNT = 0


def f(x: "List[int]") -> "os.PathLike":
    global COUNT
    COUNT += 1
    y = cast("Dict[str, int]", x)
    return y


def g():
    def inner():
        nonlocal total
        total += 1
        return total
    total = 0
    inner()
    return total


def h():
    print(np.array([1]))
    numpy = 3
    return numpy


def uses_late():
    return missing_later


missing_later = 1


class Counter:
    """A counter."""
    kind: int
    cast = staticmethod(lambda a, b: b)

    def __init__(self):
        self.n = 0
        super().__init__()

    @property
    def value(self):
        return self.n + cast("Undefined", 1)

    def klass(self):
        return __class__

    class Inner:
        X = 1

        def get(self):
            return X

    if os.name == "nt":
        def win(self):
            del undefined_thing
            return 1
    else:
        def win(self):
            return 2
''',
    '''import sys

def outer():
    count = 0
    def bump():
        nonlocal count
        count += 1
    def read():
        print(count)
        count = 5
    bump()
    return count

def other():
    print(count)
    count = 1
    return count

try:
    import json
except ImportError:
    json = None

def loader(s):
    try:
        return json.loads(s)
    except NameError:
        return undefined_name

if sys.version_info > (3,):
    def pick(a, b):
        return a
else:
    pick = None

with open(__file__) as fh:
    data = fh.read()

while False:
    def never():
        return data
    break

x = [lambda: y for y in range(3)]
del x
print(x)
''',
    '''from os import *

def f():
    return path.join("a", "b")

def g():
    return undefined_but_star

class A(object):
    def m(self):
        return getcwd()
''',
    '''@decorator
def f():
    return 1

@decorator
@other.deco(arg=1)
def g(a, b=lambda: c):
    return a + b

def decorator(fn):
    return fn

class other:
    @staticmethod
    def deco(arg):
        return lambda fn: fn

    @property
    def p(self):
        return 1

    @p.setter
    def p(self, value):
        pass

try:
    pass
except ValueError:
    pass
else:
    pass
finally:
    pass

if True:
    pass
elif False:
    pass
else:
    pass

match f():
    case 1:
        def m1():
            return 1
    case _:
        pass
''',
    '''def a():
    """Doc
    with several lines
    of text."""
    x = (1,
         2,
    3)
    return x

def b():
    s = """
text at column 0
more text
"""
    return s

def c(
    p,
    q,
):
    return p + q

CONFIG = {
    "a": 1,
    "b": [
        1, 2,
    ],
}

def d():
    """Docstring."""
    return CONFIG["a"]

def e():
    """Another docstring.
    """
    return d()
''',
    '''import typing

T = typing.TypeVar("T")


def first(xs: "typing.List[T]") -> T:
    for x in xs:
        return x
    return None


class Node(typing.Generic[T]):
    children: "typing.List[Node[T]]"

    def __init__(self, value: T) -> None:
        self.value = value
        self.children = []

    def walk(self) -> "typing.Iterator[Node[T]]":
        yield self
        for child in self.children:
            yield from child.walk()


def unpack():
    a, *b, c = range(5)
    return a, b, c


async def fetch():
    async with session() as s:
        return await s.get()


def session():
    return None
''',
]


def both(program, seed, options=None):
    """The reference path and the fast one (engine in check mode) for one program and seed."""
    sampler = LintSeqSampler(LINTER, options or LintSeqOptions(incremental_min_lines=0))
    lines = prepare_program(program)
    reference = sampler.sample(lines, random.Random(seed), reference=True)
    engine = IncrementalPyflakes(lines, LINTER, check=True, strict=True)
    fast = sampler._sample(lines, random.Random(seed), engine=engine)
    return reference, fast, engine


def assert_same(reference, fast):
    assert fast.steps == reference.steps
    assert fast.lint_calls == reference.lint_calls
    assert fast.diffs() == reference.diffs_reference()


def test_humaneval_same_paths_every_probe_checked():
    for i, program in enumerate(_humaneval()[::2]):
        assert_same(*both(program, i)[:2])


def test_stdlib_functions_same_paths_every_probe_checked():
    for i, program in enumerate(CORPUS[::3]):
        assert_same(*both(program, i)[:2])


@pytest.mark.parametrize("options", [
    LintSeqOptions(incremental_min_lines=0),
    LintSeqOptions(incremental_min_lines=0, skip_trivia=False, indent_bias=3.0),
    LintSeqOptions(incremental_min_lines=0, keep_global_defs=False, indent_bias=0.5),
])
def test_corner_case_programs_same_paths_every_probe_checked(options):
    for k, program in enumerate(TRICKY):
        for seed in range(3):
            reference, fast, engine = both(program, 100 * k + seed, options)
            assert_same(reference, fast)


def test_concatenated_humaneval_same_paths_every_probe_checked():
    """Independent functions with docstrings: deleting a closing \"\"\" re-pairs every later string."""
    out: list[str] = []
    for program in _humaneval()[:16]:
        out += program.rstrip("\n").split("\n") + ["", ""]
    source = "\n".join(out)
    for seed in range(2):
        reference, fast, engine = both(source, seed)
        assert_same(reference, fast)
        assert engine.fallbacks == 0


def test_whole_module_same_path_and_clean_states():
    import textwrap

    source = inspect.getsource(textwrap)
    reference, fast, engine = both(source, 7)
    assert_same(reference, fast)
    assert engine.fallbacks == 0
    check_path(fast, LINTER, LINTER.lint(source) == [])


def long_function(blocks: int) -> str:
    """One long function (cut and checked statement by statement) full of pyflakes' corners."""
    header = (
        "import os\nimport numpy as np\nimport numpy\nfrom typing import List, cast\nimport json as js\n\n"
        "CONST = 3\n\n\ndef helper(x):\n    return x\n\n\ndef big(a, b=1, *args, **kw):\n"
        "    print(os.path, np.array, numpy)\n"
    )
    block = """    v{k} = helper({k})
    if v{k} > 1:
        w{k} = [i * v{k} for i in range(3)]
    else:
        w{k} = []
    try:
        r{k} = js.loads("[1]")
    except ValueError as e{k}:
        r{k} = None
    for q{k} in w{k}:
        if q{k}:
            continue
        break
    def inner{k}(a: "List[int]" = None) -> int:
        return v{k} + later{k} + CONST
    later{k} = inner{k}
    fn{k} = lambda z: z + v{k} + later{k}(None)
    with open(os.sep) as fh{k}:
        data{k} = fh{k}.read()
    ann{k}: int = cast("int", v{k})
    del data{k}
"""
    tail = "    os = 1\n    numpy = 2\n    total = sum(locals())\n    return total\n\n\ndef user():\n    return big(1)\n"
    return header + "".join(block.format(k=k) for k in range(blocks)) + tail


def test_long_function_same_paths_every_probe_checked():
    """Reads of module names before local assignments, closures over later bindings, ..."""
    source = long_function(8)
    assert len(prepare_program(source)) > 160  # long enough to be cut into statements
    for options in (LintSeqOptions(incremental_min_lines=0),
                    LintSeqOptions(incremental_min_lines=0, skip_trivia=False, indent_bias=3.0)):
        for seed in range(1):
            reference, fast, engine = both(source, seed, options)
            assert_same(reference, fast)
            assert engine.fallbacks == 0


@pytest.mark.parametrize("kind", ["chained function", "chained module", "many functions"])
def test_cascades_through_long_code_same_paths(kind):
    """Deleting one line makes the next one undefined, and so on: the worst case for a linter per probe."""
    n = 160  # a function of 150 lines or more is cut into statements
    if kind == "chained function":
        source = "def f(a):\n" + "\n".join(f"    b{i} = b{i - 1} + {i}" if i else "    b0 = a"
                                           for i in range(n)) + f"\n    return b{n - 1}\n"
    elif kind == "chained module":
        source = "x0 = 0\n" + "\n".join(f"x{i} = x{i - 1} + 1" for i in range(1, n))
    else:
        source = "\n".join(f"def f{i}(a):\n    b = a + f{i - 1}(a)\n    return b" if i else "def f0(a):\n    return a"
                           for i in range(n // 3))
    for seed in range(1):
        reference, fast, engine = both(source, seed)
        assert_same(reference, fast)
        assert engine.fallbacks == 0


def long_program(target: int) -> str:
    """Real code: top-level definitions of standard-library modules, concatenated."""
    import argparse
    import calendar
    import configparser
    import difflib
    import ipaddress

    out: list[str] = []
    for module in (argparse, difflib, calendar, ipaddress, configparser):
        source = inspect.getsource(module)
        lines = source.split("\n")
        for stmt in ast.parse(source).body:
            if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
                continue
            first = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])]) - 1
            segment = lines[first:stmt.end_lineno]
            if len(out) + len(segment) + 2 <= target:
                out += segment + ["", ""]
    return "\n".join(out)


def test_long_program_every_state_is_clean_under_the_full_linter():
    program = long_program(500)
    lines = prepare_program(program)
    sampler = LintSeqSampler(LINTER)  # default options: incremental from 200 lines
    path = sampler.sample(lines, path_rng(3, 0, 0))
    check_path(path, LINTER, LINTER.lint(program) == [])


@pytest.mark.parametrize("kind", ["real code", "one chained function"])
def test_two_thousand_lines_take_seconds_not_half_a_minute(kind):
    """Before: ~30-40 s for one path of 2,000 lines; the benchmark measures about 1 s."""
    if kind == "real code":
        source = long_program(2000)
    else:
        source = "def f(a):\n" + "\n".join(f"    b{i} = b{i - 1} + {i}" if i else "    b0 = a"
                                           for i in range(1998)) + "\n    return b1997\n"
    lines = prepare_program(source)
    assert len(lines) > 1900
    sampler = LintSeqSampler(LINTER)
    engine = sampler._engine(lines)
    started = time.perf_counter()
    path = sampler._sample(lines, random.Random(0), engine=engine)
    assert time.perf_counter() - started < 15  # generous: the machine may be shared
    assert engine.fallbacks == 0
    assert engine.probes == path.lint_calls > 100


@pytest.mark.parametrize("program, deletions", [
    # an orphaned decorator attaches to the next definition
    ("@decorator\ndef f():\n    return 1\n\n@decorator\ndef g():\n    return 2\n\ndef decorator(x):\n    return x\n",
     [[1, 2]]),
    # an else whose if went attaches to an earlier if across statements
    ("import os\nif os.sep:\n    a = 1\nfor i in range(3):\n    b = i\nelse:\n    c = 2\n", [[3, 4]]),
    # a docstring's closing quotes go: strings pair up across functions
    ('def f():\n    """One.\n\n    More.\n    """\n    return 1\n\n\ndef g():\n    """Two."""\n    return 2\n', [[4]]),
    # a method loses its body, then its header
    ("class A:\n    def f(self):\n        return 1\n\n    def g(self):\n        return 2\n", [[2], [1]]),
    # an unclosed bracket swallows what follows
    ("x = foo(\n    1,\n)\ny = [1,\n  2]\n\n\ndef foo(*a):\n    return a\n", [[2], [4]]),
    # module-level global (answered by the full linter)
    ("x = 1\nglobal x\n\ndef f():\n    return x\n", [[0]]),
])
def test_probes_across_chunks_match_the_full_linter(program, deletions):
    lines = prepare_program(program)
    engine = IncrementalPyflakes(lines, LINTER, check=True, strict=True)
    engine.lint()
    for batch in deletions:
        engine.remove(batch)
        engine.lint()  # check=True: raises if it differs from the full linter


@settings(max_examples=200, deadline=None)
@given(
    weights=st.lists(st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 1 / 3, 7.0]), min_size=1, max_size=40),
    seed=st.integers(0, 2**32),
    removals=st.lists(st.integers(0, 39), max_size=30),
)
def test_fenwick_draw_is_rng_choices(weights, seed, removals):
    candidates = list(range(len(weights)))
    alive = bytearray(b"\x01") * len(weights)
    picker = _Picker(candidates, list(weights), len(weights))
    ours, theirs = random.Random(seed), random.Random(seed)
    for r in removals + [None]:
        cands = [(c, w) for c, w in zip(candidates, weights) if alive[c]]
        if not cands or sum(w for _, w in cands) <= 0:
            break
        expected = theirs.choices([c for c, _ in cands], weights=[w for _, w in cands])[0]
        assert picker.draw(ours, alive) == expected
        if r is not None and r < len(weights) and alive[r]:
            alive[r] = 0
            picker.remove([r])


def test_programs_with_huge_lines_are_skipped():
    program = "x = '" + "a" * 100 + "'\n" + "y = [" + "1, " * 50 + "]\n"
    sampler = LintSeqSampler(LINTER, LintSeqOptions(max_chars=200))
    with pytest.raises(ProgramSkipped) as info:
        sampler.sample(prepare_program(program), random.Random(0))
    assert info.value.reason is SkipReason.TOO_LONG and "characters" in str(info.value)
