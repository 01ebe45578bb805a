"""InstructionBuilder's per-module caches give the same instructions as building from scratch."""

import sysconfig
import textwrap
from pathlib import Path

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider

from model_runtime.prompting.instruction import InstructionBuilder, InstructionTooLong, _start_lines, estimate_tokens

STDLIB = Path(sysconfig.get_paths()["stdlib"])
FILES = ["textwrap.py", "json/encoder.py", "shlex.py"]

MODULE = textwrap.dedent('''
    """A module."""
    import os
    from typing import (
        Any,
        List,
    )


    # a comment
    @decorator(
        1,
    )
    def first(a, b: List[int] = [
        1, 2,
    ]) -> Any:
        """First."""
        return os.sep


    class Outer(Base):
        """Outer."""

        x = 1

        class Inner:
            """Inner."""

            @property
            def prop(self):
                """A property."""

            async def run(self, *args, **kwargs):
                """Run."""

        def method(self):
            """A method."""


    def last():
        """Last."""
''')


def functions(module: cst.Module, body=None, prefix: str = "") -> list[str]:
    names = []
    for node in module.body if body is None else body:
        if isinstance(node, cst.FunctionDef):
            names.append(prefix + node.name.value)
        elif isinstance(node, cst.ClassDef) and isinstance(node.body, cst.IndentedBlock):
            names += functions(module, node.body.body, prefix + node.name.value + ".")
    return names


def sources() -> list[tuple[str, str]]:
    found = [(name, (STDLIB / name).read_text(encoding="utf-8")) for name in FILES if (STDLIB / name).is_file()]
    newlines = [(f"MODULE-{name}", MODULE.replace("\n", nl)) for name, nl in (("lf", "\n"), ("crlf", "\r\n"), ("cr", "\r"))]
    return [*newlines, *found]


def outcome(builder: InstructionBuilder, name: str, budget: int, count_tokens=estimate_tokens):
    try:
        return builder.build(name, max_tokens=budget, count_tokens=count_tokens)
    except InstructionTooLong as exc:
        return str(exc)


@pytest.mark.parametrize("label, source", sources(), ids=lambda v: v if len(v) < 40 else "")
def test_one_builder_for_all_functions_equals_a_fresh_builder_each(label, source):
    module = cst.parse_module(source)
    names = functions(module)
    assert names
    shared = InstructionBuilder(module)
    for budget in (20, 60, 150, 512, 100_000):
        for name in names:
            assert outcome(shared, name, budget) == outcome(InstructionBuilder(source), name, budget), (name, budget)


@pytest.mark.parametrize("label, source", sources(), ids=lambda v: v if len(v) < 40 else "")
def test_estimate_shortcut_equals_rendering_every_step(label, source):
    """The default estimate is computed from item sizes; any other counter renders each step."""
    builder = InstructionBuilder(source)
    rendered = InstructionBuilder(source)
    for budget in (20, 45, 60, 90, 150, 300, 512, 100_000):
        for name in functions(builder.module):
            expected = outcome(rendered, name, budget, count_tokens=lambda text: estimate_tokens(text))
            assert outcome(builder, name, budget) == expected, (name, budget)


@pytest.mark.parametrize("label, source", sources(), ids=lambda v: v if len(v) < 40 else "")
def test_start_lines_match_libcst_positions(label, source):
    module = cst.parse_module(source)
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    positions = wrapper.resolve(PositionProvider)
    lines = _start_lines(module)
    expected = {
        node: positions[node].start.line
        for node in positions
        if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.SimpleStatementLine))
    }
    assert lines == expected
