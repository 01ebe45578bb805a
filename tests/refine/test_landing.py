"""Landing a model's answer: only the function (and what it needs) goes into the user's file.

Instruction-tuned models answer with imports, helpers, usage examples,
``print`` calls, ``__main__`` blocks and tests around the function; these
tests hold :meth:`FunctionTarget.land` to its rules with answers of that kind,
and check that an answer that *is* the function lands exactly as
:meth:`FunctionTarget.splice` always put it. No model is needed: the write
path is driven by a real tiny model that memorised one LintSeq answer.
"""

from __future__ import annotations

import ast
import functools
import random
import tempfile
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from model_runtime.backends import TransformersBackend
from model_runtime.edits.editpath import insertion_diff
from model_runtime.prompting.formats import PromptRequest, get_format
from model_runtime.refine.events import RefineResult
from model_runtime.refine.loop import RefineTarget
from model_runtime.refine.target import LANDING_LIMIT, Landing, locate_function
from model_runtime.refine.write import write_function

ARITH = '''\
"""Small arithmetic."""

import os
from typing import Iterable


def add(a, b):
    """The sum of ``a`` and ``b``."""
    return a - b


def total(values: Iterable[int]) -> int:
    return sum(values)
'''

ADD_FIXED = '''\
def add(a, b):
    """The sum of ``a`` and ``b``."""
    return a + b'''


def _answer(text: str) -> str:
    return textwrap.dedent(text)


def _parses(text: str) -> bool:
    ast.parse(text)
    return True


# --------------------------------------------------------------------------- the common case


@pytest.mark.parametrize("program", [
    ADD_FIXED, ADD_FIXED + "\n", "\n\n" + ADD_FIXED + "\n\n", ADD_FIXED.replace("a + b", "a - b"), "",
    "   \n", "# only a comment\n",
])
def test_an_answer_that_is_the_function_lands_exactly_as_splice_puts_it(program):
    target = locate_function(ARITH, "add", "arith.py")
    landing = target.land(program)
    assert landing.text == target.splice(program)
    assert landing.code == program and landing.program == program
    assert (landing.imports, landing.helpers, landing.dropped, landing.note) == ((), (), (), "")


@pytest.mark.parametrize("program", [
    "def add(a, b)\n    return a + b\n",                 # a colon missing
    "import math\ndef add(a, b):\n  return (a +\n",      # cut off mid-expression
    "def add(a, b):\n    return a\x00\n",                # a null byte
    "x = " + "(" * 300 + "1" + ")" * 300 + "\nprint(x)\n",  # nested past the parser's limit
    "Sure! Here is the fixed function:\n\ndef add(a, b):\n    return a + b\n",
])
def test_an_answer_that_does_not_parse_lands_as_splice_puts_it(program):
    target = locate_function(ARITH, "add", "arith.py")
    landing = target.land(program)
    assert landing == Landing(program, target.splice(program), function="add", program=program)
    assert landing.note == ""


def test_a_huge_answer_lands_whole_and_says_why():
    target = locate_function(ARITH, "add", "arith.py")
    program = ADD_FIXED + "\n\n" + "print(add(1, 2))\n" * (LANDING_LIMIT // 16)
    landing = target.land(program)
    assert landing.text == target.splice(program) and landing.code == program
    size = len(program.encode())
    assert landing.dropped == (f"the answer is too long to sort ({size} bytes)",)
    assert landing.note == f"the answer is too long to sort ({size} bytes): it landed as it is"


# --------------------------------------------------------------------------- sorting an answer


CHATTY = '''\
import math
import os
from typing import Iterable

def add(a, b):
    """The sum of ``a`` and ``b``."""
    # fixed: it subtracted
    return math.fsum([a, b])

# Example usage
result = add(2, 3)
print(result)
print(add(1, 2))

def test_add():
    assert add(1, 2) == 3

if __name__ == "__main__":
    test_add()
    print("ok")
'''


def test_a_chatty_answer_lands_the_function_and_its_import_and_names_the_rest():
    target = locate_function(ARITH, "add", "arith.py")
    landing = target.land(CHATTY)
    fixed = ('def add(a, b):\n    """The sum of ``a`` and ``b``."""\n    # fixed: it subtracted\n'
             '    return math.fsum([a, b])')
    assert landing.code == fixed
    assert landing.imports == ("import math",)  # os and typing.Iterable are there already
    assert landing.helpers == ()
    assert landing.dropped == ("result = ...", "print(...) ×2", "def test_add", "if __name__ == '__main__': ...")
    assert landing.note == ("only `add` landed: dropped result = ..., print(...) ×2, def test_add, "
                            "if __name__ == '__main__': ...; added import math")
    with_import = ARITH.replace("from typing import Iterable\n", "from typing import Iterable\nimport math\n")
    assert landing.text == with_import.replace(ADD_FIXED.replace("a + b", "a - b"), fixed)
    assert _parses(landing.text)
    # ``result`` is a local of the function and the example's name: the example is not a helper
    assert "result = add" not in landing.text and "print" not in landing.text


def test_landing_is_stateless_and_landing_the_program_again_gives_the_same_file():
    target = locate_function(ARITH, "add", "arith.py")
    first = target.land(CHATTY)
    assert target.land(CHATTY) == first
    again = target.land(first.program)
    assert again.text == first.text and again.imports == first.imports and again.dropped == ()
    assert first.program == "import math\n\n\n" + first.code


HELPED = '''\
import math

_EPS = 1e-9

def _close(x, y):
    return math.isclose(x, y, abs_tol=_EPS)

def _unused():
    return 0

def add(a, b):
    """The sum of ``a`` and ``b``."""
    s = a + b
    return 0 if _close(s, 0) else s

print(add(0.1, -0.1))
'''


def test_helpers_the_function_uses_land_right_above_it_in_answer_order():
    target = locate_function(ARITH, "add", "arith.py")
    landing = target.land(HELPED)
    assert landing.helpers == ("_EPS", "_close")  # _EPS through _close: used, if not directly
    assert landing.dropped == ("def _unused", "print(...)")
    assert landing.note == ("only `add` landed: dropped def _unused, print(...); added import math; "
                            "kept helpers _EPS, _close")
    block = ('_EPS = 1e-9\n\n\ndef _close(x, y):\n    return math.isclose(x, y, abs_tol=_EPS)\n\n\n'
             'def add(a, b):\n    """The sum of ``a`` and ``b``."""\n    s = a + b\n'
             '    return 0 if _close(s, 0) else s')
    before, after = ARITH.split(ADD_FIXED.replace("a + b", "a - b"))
    assert landing.text == before.replace("Iterable\n", "Iterable\nimport math\n") + block + after
    namespace: dict = {}
    exec(compile(landing.text, "arith.py", "exec"), namespace)
    assert namespace["add"](0.1, -0.1) == 0 and namespace["add"](2, 3) == 5


def test_a_helper_the_file_already_has_is_dropped_and_the_files_version_kept():
    source = "def helper(x):\n    return x\n\n\ndef add(a, b):\n    return a - b\n"
    target = locate_function(source, "add")
    landing = target.land("def helper(x):\n    return -x\n\ndef add(a, b):\n    return helper(a) + b\n")
    assert landing.helpers == () and landing.dropped == ("def helper (the file already has one)",)
    assert landing.text == source.replace("return a - b", "return helper(a) + b")
    assert landing.note == "only `add` landed: dropped def helper (the file already has one)"


def test_a_usage_example_that_shares_a_name_with_a_global_the_function_reads_is_not_a_helper():
    # the assignment calls the function: above it, it would fail when the module loads
    target = locate_function("def add(a, b):\n    return a - b\n", "add")
    landing = target.land(
        "def add(a, b):\n    global last\n    last = a + b\n    return last\n\nlast = add(1, 2)\n")
    assert landing.helpers == () and landing.dropped == ("last = ...",)


SHAPES = '''\
from __future__ import annotations

import math


class Shape:
    """A circle, for now."""

    def __init__(self, r):
        self.r = r

    @property
    def area(self):
        return 3 * self.r


def unrelated():
    pass
'''


def test_a_method_lands_at_its_indentation_and_its_helpers_at_module_level_above_the_class():
    target = locate_function(SHAPES, "Shape.area", "shapes.py")
    answer = _answer('''\
        import math
        from functools import cache

        PI = math.pi

        @property
        def area(self):
            return _square(self.r) * PI

        def _square(x):
            return x * x

        s = Shape(2)
        print(s.area)
        ''')
    landing = target.land(answer)
    assert landing.code == "@property\ndef area(self):\n    return _square(self.r) * PI"
    assert landing.imports == ("from functools import cache",) and landing.helpers == ("PI", "_square")
    assert landing.dropped == ("s = ...", "print(...)")
    assert landing.text == SHAPES.replace(
        "import math\n", "import math\nfrom functools import cache\n"
    ).replace(
        "class Shape:", "PI = math.pi\n\n\ndef _square(x):\n    return x * x\n\n\nclass Shape:"
    ).replace("        return 3 * self.r", "        return _square(self.r) * PI")
    namespace: dict = {}
    exec(compile(landing.text, "shapes.py", "exec"), namespace)
    assert namespace["Shape"](2).area == pytest.approx(4 * 3.141592653589793)


def test_a_method_answered_inside_its_class_is_taken_out_of_it():
    target = locate_function(SHAPES, "Shape.area", "shapes.py")
    landing = target.land(_answer('''\
        class Shape:
            def __init__(self, r):
                self.r = r * 2

            @property
            def area(self):
                return math.pi * self.r ** 2
                # r is the radius

            # and the perimeter, while at it
            def perimeter(self):
                return 2 * math.pi * self.r
        '''))
    # a comment deeper than the def is the def's; one at its level opens what follows
    assert landing.code == "@property\ndef area(self):\n    return math.pi * self.r ** 2\n    # r is the radius"
    assert landing.dropped == ("the rest of class Shape",)
    assert landing.text == SHAPES.replace("3 * self.r", "math.pi * self.r ** 2\n        # r is the radius")


def test_a_function_inside_a_function_gets_its_helpers_at_its_own_indentation():
    source = "def outer():\n    def inner(a):\n        return a\n\n    return inner\n"
    target = locate_function(source, "outer.inner")
    landing = target.land("def _twice(x):\n    return 2 * x\n\ndef inner(a):\n    return _twice(a)\n")
    assert landing.text == ("def outer():\n    def _twice(x):\n        return 2 * x\n\n"
                            "    def inner(a):\n        return _twice(a)\n\n    return inner\n")


def test_of_two_defs_of_the_name_the_last_that_changes_the_code_lands():
    target = locate_function(ARITH, "add", "arith.py")
    original = target.code
    # "your code" then "the fixed code", then the original again as "for comparison"
    landing = target.land(f"{original}\n\n{ADD_FIXED}\n\n{original}\n\nprint(add(1, 2))\n")
    assert landing.code == ADD_FIXED
    assert landing.dropped == ("def add (another version) ×2", "print(...)")
    assert landing.text == ARITH.replace("a - b", "a + b")
    # every version the same as the file: the file stays as it is
    unchanged = target.land(f"{original}\n\n{original}\n")
    assert unchanged.code == original and unchanged.text == ARITH


def test_an_answer_without_the_function_still_lands_its_imports():
    # a LintSeq path's first step is often a lone import: a real step
    target = locate_function(ARITH, "add", "arith.py")
    landing = target.land("import math\n")
    assert landing.code == target.code and landing.function == ""
    assert landing.imports == ("import math",) and landing.dropped == ()
    assert landing.text == ARITH.replace("Iterable\n", "Iterable\nimport math\n")
    assert landing.note == "added import math"
    nothing = target.land("import os\nx = 1\n")
    assert nothing.text == ARITH and nothing.note == "dropped x = ..."


def test_imports_already_in_the_file_are_not_added_again_even_spelled_differently():
    target = locate_function(ARITH, "add", "arith.py")
    landing = target.land("import os\nfrom typing import Iterable\nimport os, math\n\n" + ADD_FIXED)
    assert landing.imports == ("import os, math",)  # math is new; the statement lands as written
    assert target.land("from typing import Iterable\nimport os\n\n" + ADD_FIXED).text == ARITH.replace("a - b", "a + b")


def test_a_future_import_the_file_lacks_is_dropped_one_it_has_is_not_mentioned():
    plain = locate_function("def add(a, b):\n    return a - b\n", "add")
    landing = plain.land("from __future__ import annotations\n\n" + "def add(a, b):\n    return a + b\n")
    assert landing.text == "def add(a, b):\n    return a + b\n" and landing.imports == ()
    assert landing.dropped == ("from __future__ import annotations (it must come first in the file)",)
    futured = locate_function(SHAPES, "unrelated")
    quiet = futured.land("from __future__ import annotations\n\ndef unrelated():\n    return 1\n")
    assert quiet.dropped == () and quiet.note == ""


@pytest.mark.parametrize("source, expected", [
    # after the module docstring and __future__ imports, set apart by blank lines
    ('"""Doc."""\nfrom __future__ import annotations\ndef add(a, b):\n    return a - b\n',
     '"""Doc."""\nfrom __future__ import annotations\n\nimport math\n\ndef add(a, b):\n    return math.fsum([a, b])\n'),
    ('"""Doc."""\n\n\ndef add(a, b):\n    return a - b\n',
     '"""Doc."""\n\nimport math\n\n\ndef add(a, b):\n    return math.fsum([a, b])\n'),
    # at the top, below a shebang and a coding line
    ("#!/usr/bin/env python\n# -*- coding: utf-8 -*-\ndef add(a, b):\n    return a - b\n",
     "#!/usr/bin/env python\n# -*- coding: utf-8 -*-\nimport math\n\ndef add(a, b):\n    return math.fsum([a, b])\n"),
    ("def add(a, b):\n    return a - b\n", "import math\n\ndef add(a, b):\n    return math.fsum([a, b])\n"),
    # after the last import above the function, not one below it
    ("import os\n\ndef add(a, b):\n    return a - b\n\nimport sys\n",
     "import os\nimport math\n\ndef add(a, b):\n    return math.fsum([a, b])\n\nimport sys\n"),
])
def test_new_imports_go_to_the_files_import_block(source, expected):
    landing = locate_function(source, "add").land("import math\n\ndef add(a, b):\n    return math.fsum([a, b])\n")
    assert landing.text == expected


def test_a_crlf_file_keeps_its_newlines_and_every_byte_outside_the_function_and_the_imports():
    source = SHAPES.replace("\n", "\r\n")
    target = locate_function(source, "Shape.area", "shapes.py")
    answer = "import functools\nimport itertools\n\n@property\ndef area(self):\n    # pi r squared\n" \
             "    return math.pi * self.r ** 2\n\nprint(Shape(1).area)\n"
    landing = target.land(answer)
    assert "\n" not in landing.text.replace("\r\n", "")
    imports = "import functools\r\nimport itertools\r\n"
    function = "    @property\r\n    def area(self):\r\n        # pi r squared\r\n        return math.pi * self.r ** 2"
    at = source.index("import math\r\n") + len("import math\r\n")
    assert landing.text == source[:at] + imports + target.prefix[at:] + function + target.suffix
    assert _parses(landing.text)


def test_decorators_and_comments_in_and_right_after_the_body_come_with_the_function():
    target = locate_function("import functools\n\n\ndef add(a, b):\n    return a - b\n", "add")
    answer = _answer('''\
        # The fixed version:
        @functools.cache
        @other.register(int)  # a comment on a decorator
        def add(a, b):
            # the sum
            return a + b
            # unreachable notes

        # Example
        add(1, 2)
        ''')
    landing = target.land(answer)
    assert landing.code == ("@functools.cache\n@other.register(int)  # a comment on a decorator\ndef add(a, b):\n"
                            "    # the sum\n    return a + b\n    # unreachable notes")
    assert landing.dropped == ("add(...)",)


def test_an_indented_answer_is_dedented_before_sorting():
    target = locate_function(ARITH, "add", "arith.py")
    landing = target.land(textwrap.indent(ADD_FIXED + "\n\nprint(add(1, 2))\n", "    "))
    assert landing.code == ADD_FIXED and landing.dropped == ("print(...)",)


@pytest.mark.parametrize("statement, description", [
    ("unittest.main()", "unittest.main(...)"),
    ("await main()", "await main(...)"),
    ('"""A module docstring."""', '"..."'),
    ("x: int = 3", "x = ..."),
    ("a = b = 1", "a = b = ..."),
    ("counter += 1", "counter += 1"),
    ("assert add(1, 2) == 3, 'broken'", "assert ..."),
    ("class Example:\n    pass", "class Example"),
    ("async def main():\n    pass", "async def main"),
    ("for i in range(3):\n    print(i)", "for i in range(3): ..."),
    ("if __name__ == '__main__':\n    main()", "if __name__ == '__main__': ..."),
    ("very_long_function_name_for_the_demo(argument=1) + another_long_name",
     "very_long_function_name_for_the_demo(..."),
])
def test_what_is_dropped_is_named_in_a_few_words(statement, description):
    target = locate_function(ARITH, "add", "arith.py")
    landing = target.land(ADD_FIXED + "\n\n" + statement + "\n")
    assert landing.dropped == (description,) and len(description) <= 40
    assert landing.text == ARITH.replace("a - b", "a + b")


def test_the_note_names_at_most_six_things_of_a_kind():
    target = locate_function(ARITH, "add", "arith.py")
    landing = target.land(ADD_FIXED + "\n" + "".join(f"\ndef test_{i}():\n    pass\n" for i in range(9)))
    assert landing.note == ("only `add` landed: dropped def test_0, def test_1, def test_2, def test_3, "
                            "def test_4, def test_5, 3 more")


def test_note_since_says_only_what_is_new_since_the_previous_step():
    target = locate_function(ARITH, "add", "arith.py")
    first = target.land("import math\n\n" + ADD_FIXED + "\n\nprint(add(1, 2))\n")
    second = target.land("import math\n\n" + ADD_FIXED.replace("a + b", "b + a") + "\n\nprint(add(1, 2))\n"
                         "\ndef test_add():\n    pass\n")
    assert first.note_since(None) == first.note == "only `add` landed: dropped print(...); added import math"
    assert second.note_since(first) == "only `add` landed: dropped def test_add"
    assert first.note_since(first) == ""


# --------------------------------------------------------------------------- never raises


_LINES = [
    "import math", "import os", "from __future__ import annotations", "from typing import List as L",
    "def add(a, b):", "    return a + b", "    return helper(a) * b", "    x = 1", "def helper(x):",
    "    return x", "class Shape:", "    def area(self):", "        return 1", "print(add(1, 2))",
    "x = add(1, 2)", "if __name__ == '__main__':", "    print('hi')", "@decorator", "async def add(a, b):",
    "assert add(1, 2) == 3", "", "    ", "# comment", "    # indented comment", "\tpass", "'''", "é = 1;  x = 2",
    "def add(a, b): return a + b  # one line",
]


@pytest.mark.parametrize("qualname", ["add", "Shape.area"])
def test_random_answers_never_raise_and_a_parsing_answer_gives_a_parsing_file(qualname):
    source = SHAPES.replace("def unrelated", "def add(a, b):\n    return a - b\n\n\ndef unrelated")
    target = locate_function(source, qualname)
    rng = random.Random(13)
    for _ in range(1500):
        program = "\n".join(rng.choice(_LINES) for _ in range(rng.randint(0, 14)))
        landing = target.land(program)
        assert isinstance(landing.note, str)
        try:
            ast.parse(textwrap.dedent(program))
        except SyntaxError:
            continue
        assert _parses(landing.text), program
        assert target.land(landing.program).text == landing.text, program
    for _ in range(500):
        noise = "def add():\n\t #'\"\\\r\x0c\x00\ud800é;[("
        target.land("".join(rng.choice(noise) for _ in range(rng.randint(0, 60))))


# --------------------------------------------------------------------------- the write path and the editor


def _lintseq_answer(programs: list[list[str]]) -> str:
    """Insertion diffs from a list of programs (lines), each the previous one plus some lines."""
    diffs, before = [], []
    for lines in programs:
        kept, inserted = list(before), []
        for line in lines:
            take = bool(kept) and kept[0] == line
            inserted.append(not take)
            if take:
                kept.pop(0)
        assert not kept, "each program must only insert lines"
        diffs.append(insertion_diff(lines, inserted))
        before = lines
    return get_format("lintseq").render_answer(diffs)


@functools.cache
def _memorised(source: str, answer: str):
    """A real tiny model that answers the write prompt of ``source``'s ``area`` with ``answer``."""
    from model_runtime.prompting.instruction import build_instruction
    from model_runtime.training.tiny_model import MemoriseSettings, train_memorised_model

    prompt = get_format("lintseq").build(PromptRequest(build_instruction(source, "area", max_tokens=512).text))
    folder = Path(tempfile.mkdtemp(prefix="editseq-landing-model-")) / "model"
    report = train_memorised_model(folder, [(prompt, answer)], MemoriseSettings(steps=150))
    assert report.final_loss < 0.05, report
    return report.folder


def test_writing_edit_by_edit_lands_every_step_and_notes_what_it_left_out(tmp_path):
    source = 'import os\n\n\ndef area(r):\n    """The area of a circle of radius ``r``."""\n'
    (tmp_path / "circle.py").write_text(source)
    step1 = ["import math"]
    step2 = [*step1, "", "def area(r):", "    return math.pi * r * r"]
    step3 = [*step2, "", "print(area(2))"]
    step4 = [*step2[:3], "    r = abs(r)", *step2[3:], "", "print(area(2))"]
    backend = TransformersBackend(str(_memorised(source, _lintseq_answer([step1, step2, step3, step4]))))
    result = write_function(RefineTarget(tmp_path, "circle.py", "area"), backend, source=source)
    doc = '    """The area of a circle of radius ``r``."""\n'
    with_import = source.replace("import os\n", "import os\nimport math\n")
    assert result.final == with_import.replace(doc, doc + "    r = abs(r)\n    return math.pi * r * r\n")
    assert len(result.diffs) == 3  # step 3 (the print alone) lands nothing: no step of its own
    assert result.notes == ["added import math", "", "only `area` landed: dropped print(...)"]
    assert all(not lint for lint in result.lint)


def test_the_editor_appends_each_steps_note_to_its_reason():
    from lsp_server.runs import RunRequest, _refined, _written

    original = "def add(a, b):\n    return a - b\n"
    texts = [original, original.replace("a - b", "b - a"), original.replace("a - b", "a + b")]
    from model_runtime.refine.target import file_diff

    diffs = [file_diff(a, b, "m.py") for a, b in zip(texts, texts[1:])]
    request = RunRequest("refine", "file:///m.py", 1, original, None, "m.py", "add")
    best = SimpleNamespace(passed=1, total=1)
    rounds = [SimpleNamespace(feedback=""), SimpleNamespace(feedback="AssertionError: 1 != 3\nmore"),
              SimpleNamespace(feedback="AssertionError: 2 != 3")]
    result = SimpleNamespace(original=original, diffs=diffs, step_rounds=[1, 2], trajectory=rounds,
                             step_notes=["", "only `add` landed: dropped print(...)"], verified=True,
                             reason="green", best=best, checked_words="1 failing + 0 passing in their files")
    outcome = _refined(request, result)
    assert outcome.reasons == ["round 1: AssertionError: 1 != 3",
                               "round 2: AssertionError: 2 != 3; only `add` landed: dropped print(...)"]
    del result.step_notes  # a result from before notes existed
    assert _refined(request, result).reasons[1] == "round 2: AssertionError: 2 != 3"
    written = SimpleNamespace(original=original, diffs=diffs, lint=[[], []], cancelled=False,
                              notes=["added import math", ""])
    assert _written(request, written).reasons == ["pyflakes: clean; added import math", "pyflakes: clean"]


def test_refine_results_carry_step_notes_into_their_json():
    fields = {name: None for name in RefineResult.__dataclass_fields__
              if name not in ("step_rounds", "step_notes")}
    result = RefineResult(**fields)
    assert result.step_notes == [] and result.to_dict()["step_notes"] == []


def test_write_refuses_an_answer_that_is_not_the_function_asked_for(tmp_path):
    """A tiny model turned ``count_vowels(s)`` into ``def conjugate(self)``; "write" keeps the function."""
    source = 'import os\n\n\ndef area(r):\n    """The area of a circle of radius ``r``."""\n'
    (tmp_path / "circle.py").write_text(source)
    other = _lintseq_answer([["def area(width, height):", "    return width * height"]])
    result = write_function(RefineTarget(tmp_path, "circle.py", "area"),
                            TransformersBackend(str(_memorised(source, other))), source=source)
    assert result.diffs == [] and result.final == source
    assert result.refused[0] == "the answer changes the signature of `area`: (r) became (width, height)"
