"""The function map kept up to date edit by edit (``code_map.updated``): the same map as parsing the
whole document again, for every edit it accepts, and ``None`` (parse it all) where it cannot know."""

from __future__ import annotations

import inspect
import json
import random

import pytest

from model_runtime.edits.code_map import code_map, function_spans, source_lines, updated

SNIPPETS = ["    x = 1\n", "\n", "def added(a):\n    return a\n", "    def inner():\n        pass\n", "else:\n",
            "@decorator\n", '    """open\n', "class K:\n    def m(self):\n        '''doc'''\n", "    ...\n",
            "    return (\n", ")\n", "x = 2\n", "\x0c\n", "    y = '\x0c'\r\n", "async def job():\n    await job()\n", "# comment\n", ""]


def edit(lines: list[str], rng: random.Random) -> tuple[list[str], int, int, int]:
    """Replace a random run of whole lines with random snippets: (new lines, first, last, added)."""
    first = rng.randrange(len(lines) + 1)
    last = min(len(lines) - 1, first + rng.choice([0, 0, 0, 1, 2, 5])) if first < len(lines) else first - 1
    removed = max(0, last - first + 1)
    new = source_lines("".join(rng.choice(SNIPPETS) for _ in range(rng.choice([0, 1, 1, 2, 3]))))
    if removed == 0:  # an insertion before line ``first``: the edit "replaces" that line with new + it
        last = first
        keep = lines[first:first + 1]
        return lines[:first] + new + keep + lines[first + 1:], first, last, len(new)
    return lines[:first] + new + lines[last + 1:], first, last, len(new) - removed


@pytest.mark.parametrize("module", [json, inspect, random], ids=lambda m: m.__name__)
def test_every_accepted_update_equals_a_whole_parse(module):
    rng = random.Random(module.__name__)
    source = inspect.getsource(module)
    accepted = 0
    for _ in range(200):
        lines = source_lines(source)
        old = code_map(source)
        new_lines, first, last, added = edit(lines, rng)
        new_source = "".join(new_lines)
        if first >= len(lines):
            continue
        result = updated(old, new_source, first, last, added)
        whole = code_map(new_source)
        if result is not None:
            accepted += 1
            assert result == whole, (first, last, added)
        if whole.parsed:
            source = new_source  # walk on: later edits start from edited text
    assert accepted > 50  # most edits inside a function need no whole parse


def test_what_only_a_whole_parse_can_say_is_left_to_it():
    source = "if a:\n    pass\n\n\ndef f():\n    return 1\n"
    old = code_map(source)
    assert [s.qualname for s in old.spans] == ["f"]
    # ``else:`` typed in the gap after the ``if`` only parses with it: not decided locally.
    assert updated(old, "if a:\n    pass\nelse:\n    pass\n\ndef f():\n    return 1\n", 2, 2, 1) is None
    # A decorator typed above ``def f`` belongs to it: not decided locally either.
    assert updated(old, "if a:\n    pass\n\n@d\ndef f():\n    return 1\n", 3, 3, 0) is None
    # Renaming on the def line touches the statement's first line: a whole parse.
    assert updated(old, source.replace("def f", "def g"), 4, 4, 0) is None
    # Inside the body: local, and the same as a whole parse.
    body = source.replace("return 1", "return 2\n    y = 3")
    assert updated(old, body, 5, 5, 1) == code_map(body) and function_spans(body)[0].end_line == 6
