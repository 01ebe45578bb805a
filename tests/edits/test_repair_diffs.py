"""Repair diffs: the ``cycle`` answer from faulty to good code round-trips through the format's parser.

Every property goes the way a model's answer goes: rendered as training text
(``render_answer``), parsed back by ``get_format("cycle").parse`` and applied
by ``interpret_completion`` to the faulty code, which must give the good code
byte for byte.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from model_runtime.backends.base import Completion
from model_runtime.prompting.formats import get_format
from model_runtime.prompting.proposals import interpret_completion
from model_runtime.edits.repair_diffs import RepairDiffError, align, repair_diffs

EOS = "</s>"
FMT = get_format("cycle")


def roundtrip(faulty: str, good: str, diffs: list[str], eos: str = EOS) -> str:
    completion = Completion(0, FMT.render_answer(diffs, eos), 0, "stop")
    proposal = interpret_completion(FMT, completion, faulty, eos_token=eos)
    assert proposal.refused == (), proposal.refused
    assert len(proposal.steps) == len(diffs)
    return proposal.program


# Lines that parse anywhere at the top level, so every intermediate state parses ...
SIMPLE = ["x = 1", "y = x + 2", "", "# note", "pass", "print(x)", "z = [1, 2]", "    ", "x = 1  # again"]
# ... and lines that do not parse alone (an indented line, an open block, an open bracket).
BROKEN = ["    return x", "if x:", "def f(", "    y = 2", ")"]


def texts(lines):
    return st.tuples(st.lists(st.sampled_from(lines), max_size=14), st.booleans()).map(
        lambda t: "\n".join(t[0]) + ("\n" if t[1] and t[0] else "")
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(faulty=texts(SIMPLE + BROKEN), good=texts(SIMPLE))
def test_round_trip_line_soup(faulty, good):
    assume(faulty.strip())
    diffs = repair_diffs(faulty, good)
    assert roundtrip(faulty, good, diffs) == good
    blocks = [op for op in align(faulty.split("\n"), good.split("\n")) if op[0] != "equal"]
    assert len(diffs) <= len(blocks)
    if all(line in SIMPLE and line for line in faulty.split("\n")):
        assert len(diffs) == len(blocks)  # every state parses (and is not empty): one step per block


_BODY = st.sampled_from([
    "    return x", "    return x + 1", "    if x < 0:\n        return -x", "    y = x * 2", "    return y",
    "    for i in range(x):\n        x += i", "    # comment", "", "    while x > 10:\n        x -= 1",
    "    try:\n        x = int(x)\n    except ValueError:\n        pass",
])


@st.composite
def functions(draw):
    body = draw(st.lists(_BODY, min_size=1, max_size=8))
    if not any(line.strip() and not line.strip().startswith("#") for line in body):
        body.append("    return x")
    return "def f(x):\n" + "\n".join(body)


@settings(max_examples=200, deadline=None)
@given(faulty=functions(), good=functions(), context=st.integers(0, 4))
def test_round_trip_functions(faulty, good, context):
    diffs = repair_diffs(faulty, good, context=context)
    assert roundtrip(faulty, good, diffs) == good
    assert all(not d.startswith(("---", "+++")) for d in diffs)  # no file headers, as the format writes them


_SAFE = st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x00")


@settings(max_examples=200, deadline=None)
@given(faulty=st.lists(st.text(_SAFE, max_size=12), min_size=1, max_size=8),
       good=st.lists(st.text(_SAFE, max_size=12), max_size=8))
def test_round_trip_arbitrary_comment_text(faulty, good):
    """Any characters (but line breaks) in the lines: as comments the good code always parses."""
    faulty_text = "\n".join("# " + line for line in faulty)
    good_text = "\n".join("# " + line for line in good)
    try:
        diffs = repair_diffs(faulty_text, good_text)
    except RepairDiffError as exc:
        assert "<|diff|>" in faulty_text + good_text, exc
        return
    assert roundtrip(faulty_text, good_text, diffs, eos="") == good_text


def test_swapped_returns_are_two_one_line_replacements():
    faulty = "def clamp(x, lo, hi):\n    if x < lo:\n        return hi\n    if x > hi:\n        return lo\n    return x\n"
    good = faulty.replace("return hi", "@").replace("return lo", "return hi").replace("@", "return lo")
    diffs = repair_diffs(faulty, good, context=1)
    assert diffs == [
        "@@ -2,3 +2,3 @@\n     if x < lo:\n-        return hi\n+        return lo\n     if x > hi:",
        "@@ -4,3 +4,3 @@\n     if x > hi:\n-        return lo\n+        return hi\n     return x",
    ]
    assert roundtrip(faulty, good, diffs) == good


def test_a_block_that_does_not_parse_alone_is_merged():
    faulty = "x = 0\n    1,\ny = 0"  # the model's code need not parse
    good = "x = [\n    1,\n]"
    diffs = repair_diffs(faulty, good, context=0)
    # Two changed blocks, but "x = [" alone leaves the text unparseable: one step, two hunks.
    assert diffs == ["@@ -1 +1 @@\n-x = 0\n+x = [\n@@ -3 +3 @@\n-y = 0\n+]"]
    assert roundtrip(faulty, good, diffs) == good
    two = repair_diffs("x = 0\ny = 1\nz = 2", "x = 1\ny = 1\nz = 3", context=0)
    assert two == ["@@ -1 +1 @@\n-x = 0\n+x = 1", "@@ -3 +3 @@\n-z = 2\n+z = 3"]


def test_equal_texts_need_no_steps_and_bad_input_is_refused():
    assert repair_diffs("x = 1\n", "x = 1\n") == []
    with pytest.raises(RepairDiffError, match="does not parse"):
        repair_diffs("x = 1", "x = (")
    with pytest.raises(RepairDiffError, match="line break"):
        repair_diffs("x = 1\r\ny = 2", "x = 2")
    with pytest.raises(RepairDiffError, match="diff header"):
        repair_diffs("x = (1\n-- 2)", "x = 1")
