"""Diff application: exact, tolerant within bounds, refusing with reasons, and minimal LSP edits."""

from __future__ import annotations

import difflib

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from model_runtime.edits.diff_apply import (
    OFFSET_WINDOW,
    DiffError,
    Position,
    Range,
    StaleDocumentError,
    TextEdit,
    apply_diff,
    apply_edit_sequence,
    apply_text_edits,
    parse_diff,
    text_edits,
)
from model_runtime.edits.editpath import DIFF_TOKEN, insertion_diff, resolve_edit_path
from model_runtime.lintseq.linters import PyflakesLinter
from model_runtime.lintseq.sampler import LintSeqSampler

PROGRAM = """\
import math


def area(r):
    return math.pi * r * r


def describe(shape, size):
    if shape == "circle":
        return f"circle of area {area(size):.2f}"
    return "unknown"


class Counter:
    def __init__(self):
        self.n = 0

    def bump(self):
        self.n += 1
        return self.n
"""


def unified(old: str, new: str, context: int = 3) -> str:
    """A headerless unified diff, as models write it, over lines as the applier reads them."""
    a, b = (text.split("\n") if text else [] for text in (old, new))
    lines = difflib.unified_diff(a, b, lineterm="", n=context)
    return "\n".join(list(lines)[2:])


def refused(result, *words: str) -> None:
    assert not result.applied
    assert result.new == result.old
    assert result.placements == ()
    for word in words:
        assert word in result.reason, result.reason


# --------------------------------------------------------------------------- exact application


def test_repair_diff_with_context_applies_exactly():
    fixed = PROGRAM.replace("self.n += 1", "self.n += 2").replace('"unknown"', '"?"')
    result = apply_diff(PROGRAM, unified(PROGRAM, fixed))
    assert result.applied and result.reason == ""
    assert result.new == fixed
    assert [p.offset for p in result.placements] == [0, 0]
    assert not any(p.whitespace_insensitive for p in result.placements)


def test_file_headers_are_accepted_and_optional():
    fixed = PROGRAM.replace("return math.pi * r * r", "return math.pi * r ** 2")
    body = unified(PROGRAM, fixed)
    with_headers = "--- a/shapes.py\n+++ b/shapes.py\n" + body
    assert apply_diff(PROGRAM, with_headers).new == apply_diff(PROGRAM, body).new == fixed


def test_lintseq_path_from_the_sampler_applies_step_by_step():
    path = LintSeqSampler(PyflakesLinter()).sample_paths(PROGRAM, 1, seed=3)[0]
    diffs = path.diffs()
    completion = "".join(d + "\n" + DIFF_TOKEN for d in diffs) + "\n" + DIFF_TOKEN
    result = apply_edit_sequence(completion)
    assert result.ok, result.rejection
    assert result.program == path.program == resolve_edit_path(completion).program
    assert [step.new for step in result.steps] == list(path.states())


@settings(max_examples=60, deadline=None)
@given(
    lines=st.lists(st.sampled_from(["a", "b", "c", "", "  d", "+e", "-f"]), min_size=1, max_size=14),
    data=st.data(),
)
def test_any_insertion_path_rebuilds_the_file(lines, data):
    """Random LintSeq-shaped paths (insertion diffs in the growing file) rebuild the file exactly."""
    order = data.draw(st.permutations(range(len(lines))))
    cuts = sorted(data.draw(st.sets(st.integers(1, len(lines) - 1), max_size=4))) if len(lines) > 1 else []
    steps = [sorted(order[a:b]) for a, b in zip([0, *cuts], [*cuts, len(lines)])]
    present: set[int] = set()
    diffs = []
    for step in steps:
        idx = sorted(present | set(step))
        # As text, a file holding one blank line is the empty file; no real path has that state.
        assume([lines[i] for i in idx] != [""])
        diffs.append(insertion_diff([lines[i] for i in idx], [i in step for i in idx]))
        present |= set(step)
    result = apply_edit_sequence(diffs, validate=None)
    assert result.ok, result.rejection
    assert result.program == "\n".join(lines)


@settings(max_examples=80, deadline=None)
@given(
    old=st.lists(st.sampled_from(["x = 1", "y = 2", "pass", "", "z = x"]), max_size=12),
    new=st.lists(st.sampled_from(["x = 1", "y = 3", "pass", "", "w = 0"]), max_size=12),
    context=st.integers(0, 3),
)
def test_any_correct_unified_diff_applies_exactly(old, new, context):
    old_text, new_text = "\n".join(old), "\n".join(new)
    diff = unified(old_text, new_text, context)
    if not diff:
        return
    result = apply_diff(old_text, diff)
    assert result.applied, result.reason
    assert result.new == new_text


def test_crlf_document_keeps_its_line_endings():
    old = "def f():\r\n    return 1\r\n"
    result = apply_diff(old, "@@ -2 +2,2 @@\n-    return 1\n+    x = 1\n+    return x\n")
    assert result.new == "def f():\r\n    x = 1\r\n    return x\r\n"


# --------------------------------------------------------------------------- tolerance


def test_small_line_offset_is_tolerated_and_reported():
    fixed = PROGRAM.replace("self.n += 1", "self.n += 2")
    diff = unified(PROGRAM, fixed, 1)
    assert diff.startswith("@@ -18,3 +18,3 @@")
    result = apply_diff(PROGRAM, diff.replace("@@ -18,3 +18,3 @@", "@@ -16,3 +16,3 @@"))
    assert result.new == fixed
    assert result.placements[0].offset == 2 and result.placements[0].line == 18


def test_offset_carries_to_later_hunks_of_the_same_diff():
    old = "\n".join(f"v{i} = {i}" for i in range(40))
    new = old.replace("v5 = 5", "v5 = 50").replace("v30 = 30", "v30 = 300")
    diff = unified(old, new, 1)
    # Both hunks claim 4 lines too late; the second is 4 + 4 = 8 off only if the offset is not carried.
    shifted = diff.replace("@@ -5,3 +5,3 @@", "@@ -9,3 +9,3 @@").replace("@@ -30,3 +30,3 @@", "@@ -34,3 +34,3 @@")
    result = apply_diff(old, shifted, validate=None)
    assert result.new == new
    assert [p.offset for p in result.placements] == [-4, -4]


def test_whitespace_damaged_context_matches_and_keeps_the_documents_lines():
    old = "def f(a):\n    if a:\n        return 1\n    return 0\n"
    diff = "@@ -2,3 +2,3 @@\n  if a:   \n-      return 1\n+        return 2\n     return 0\n"
    result = apply_diff(old, diff)
    assert result.new == "def f(a):\n    if a:\n        return 2\n    return 0\n"
    assert result.placements[0].whitespace_insensitive


def test_exact_match_further_away_beats_whitespace_match_at_the_stated_line():
    old = "a = 1\nb  = 2\nc = 3\nb = 2\nd = 4\n"
    result = apply_diff(old, "@@ -2 +2 @@\n-b = 2\n+b = 5\n")
    assert result.new == "a = 1\nb  = 2\nc = 3\nb = 5\nd = 4\n"
    assert result.placements[0].offset == 2 and not result.placements[0].whitespace_insensitive


def test_nearest_of_several_exact_matches_wins():
    old = "x = 0\ny = 1\nx = 0\nz = 2\nw = 3\nx = 0\n"
    result = apply_diff(old, "@@ -4 +4 @@\n-x = 0\n+x = 9\n")
    assert result.new == "x = 0\ny = 1\nx = 9\nz = 2\nw = 3\nx = 0\n"


def test_equally_good_placements_are_refused_as_ambiguous():
    old = "x = 0\ny = 1\nz = 2\ny = 1\nw = 3\n"
    refused(apply_diff(old, "@@ -3 +3 @@\n-y = 1\n+y = 7\n"), "ambiguous", "2 and 4")


def test_offset_beyond_the_window_is_refused():
    old = "\n".join(f"v{i} = {i}" for i in range(30))
    stated = 3 + OFFSET_WINDOW + 1  # "v2 = 2" is line 3
    diff = f"@@ -{stated} +{stated} @@\n-v2 = 2\n+v2 = 20\n"
    refused(apply_diff(old, diff), "not in the file", f"within {OFFSET_WINDOW} lines")


def test_pure_insertion_is_never_moved_and_must_be_inside_the_file():
    refused(apply_diff("a = 1\n", "@@ -5,0 +6 @@\n+b = 2\n"), "outside the file")
    assert apply_diff("a = 1", "@@ -1,0 +2 @@\n+b = 2\n").new == "a = 1\nb = 2"


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "diff, words",
    [
        ("", ["empty diff"]),
        ("Sure! Here is the fixed code: return 2", ["no hunk found"]),
        ("@@ -2 +2 @@\n-    return 1\n", ["malformed diff", "truncated"]),
        ("@@ -2 +2 @@\n-    return 1\n+    return 2\n+    return 3\n", ["belongs to no hunk", "'+    return 3'"]),
        ("@@ -2 +2 @@\n-    return 1\n+    return 2\nThat should fix it.\n", ["belongs to no hunk"]),
        ("@@ -2 +2 @@\n-    return 1\n+    return 2\n@@ garbage @@\n", ["belongs to no hunk"]),
        ("@@ -2 +2 @@\n-    return 1\n    return 2\n", ["malformed diff"]),
        (
            "--- a/x.py\n+++ b/x.py\n@@ -2 +2 @@\n-    return 1\n+    return 2\n"
            "--- a/y.py\n+++ b/y.py\n@@ -1 +1 @@\n-a\n+b\n",
            ["2 files"],
        ),
    ],
    ids=["empty", "garbage", "truncated", "undercounted", "prose", "bad-header", "no-prefix", "two-files"],
)
def test_unreadable_diffs_are_refused_with_a_reason(diff, words):
    refused(apply_diff("def f():\n    return 1\n", diff), *words)
    with pytest.raises(DiffError):
        parse_diff(diff)


def test_diff_against_the_wrong_text_is_refused():
    other = PROGRAM.replace("self.n = 0", "self.count = 0")
    diff = unified(other, other.replace("self.count = 0", "self.count = 1"))
    refused(apply_diff(PROGRAM, diff), "hunk 1", "written against different text")


def test_diff_that_breaks_syntax_is_refused_with_the_syntax_error():
    broken = PROGRAM.replace("def bump(self):", "def bump(self)")
    refused(apply_diff(PROGRAM, unified(PROGRAM, broken)), "does not parse", "SyntaxError", "line 18")


def test_nothing_is_half_applied_when_a_later_hunk_fails():
    fixed = PROGRAM.replace("import math", "import cmath").replace("self.n += 1", "self.n += 2")
    diff = unified(PROGRAM, fixed, 1)
    damaged = diff.replace("-        self.n += 1", "-        self.m += 1")
    result = apply_diff(PROGRAM, damaged)
    refused(result, "hunk 2")
    assert "import math" in result.new


def test_sequence_stops_at_the_first_refused_step():
    steps = ["@@ -0,0 +1 @@\n+x = 1", "@@ -1,0 +2 @@\n+if x:", "@@ -2,0 +3 @@\n+    y = 2"]
    result = apply_edit_sequence(steps)
    assert not result.ok
    assert [s.applied for s in result.steps] == [True, False]
    assert result.rejection.reason.startswith("step 2: the result does not parse")
    assert result.not_attempted == (steps[2],)
    assert result.program == "x = 1"


def test_unknown_kind_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown diff kind"):
        apply_diff("", "@@ -0,0 +1 @@\n+x = 1", kind="fuzzy")


def test_non_python_documents_skip_validation_on_request():
    assert apply_diff("a\n", "@@ -1 +1 @@\n-a\n+b {\n", validate=None).new == "b {\n"
    refused(apply_diff("a\n", "@@ -1 +1 @@\n-a\n+b {\n"), "does not parse")


# --------------------------------------------------------------------------- LSP text edits


def test_one_character_fix_is_a_one_character_edit():
    old = "def f(x):\n    return x + 1\n"
    edits = text_edits(old, old.replace("+ 1", "+ 2"))
    assert edits == [TextEdit(Range(Position(1, 15), Position(1, 16)), "2")]


def test_inserted_line_is_a_zero_width_edit_and_unchanged_lines_are_untouched():
    old = "a = 1\nb = 2\nc = 3\n"
    new = "a = 1\nb = 2\nx = 0\nc = 3\n"
    assert text_edits(old, new) == [TextEdit(Range(Position(2, 0), Position(2, 0)), "x = 0\n")]
    separate = text_edits("a\nb\nc\nd\ne\n", "A\nb\nc\nd\nE\n")
    assert [(e.range.start.line, e.range.end.line) for e in separate] == [(0, 0), (4, 4)]


@pytest.mark.parametrize(
    "encoding, start, end",
    [("utf-16", 8, 9), ("utf-8", 12, 13), ("utf-32", 7, 8)],
)
def test_positions_count_in_the_negotiated_encoding(encoding, start, end):
    # "s = '😀中x'": the emoji is 2 UTF-16 units / 4 bytes, 中 is 1 unit / 3 bytes.
    old = "a = 1\ns = '😀中x'\n"
    new = old.replace("x'", "y'")
    edits = text_edits(old, new, encoding)
    assert edits == [TextEdit(Range(Position(1, start), Position(1, end)), "y")]
    assert apply_text_edits(old, edits, encoding) == new


def test_crlf_is_never_split():
    old = "a\r\nb\r\n"
    new = "a\nb\r\n"
    edits = text_edits(old, new)
    assert edits == [TextEdit(Range(Position(0, 1), Position(1, 0)), "\n")]
    assert apply_text_edits(old, edits) == new


LSP_TEXT = st.lists(
    st.sampled_from(["a", "b", " ", "\n", "\r\n", "\r", "😀", "中", "é", "\u2028"]), max_size=30
).map("".join)


@settings(max_examples=150, deadline=None)
@given(old=LSP_TEXT, new=LSP_TEXT, encoding=st.sampled_from(["utf-16", "utf-8", "utf-32"]))
def test_applying_the_edits_yields_exactly_the_new_text(old, new, encoding):
    edits = text_edits(old, new, encoding)
    assert apply_text_edits(old, edits, encoding) == new
    assert (edits == []) == (old == new)


def test_step_edits_refuse_a_changed_document():
    step = apply_diff("x = 1\n", "@@ -1 +1 @@\n-x = 1\n+x = 2\n")
    assert apply_text_edits("x = 1\n", step.text_edits("x = 1\n")) == "x = 2\n"
    with pytest.raises(StaleDocumentError):
        step.text_edits("x = 1\ny = 2\n")


@pytest.mark.parametrize(
    "edits, message",
    [
        ([TextEdit(Range(Position(0, 1), Position(0, 1)), "x")], "inside a character"),
        ([TextEdit(Range(Position(0, 0), Position(0, 9)), "x")], "past the end"),
        ([TextEdit(Range(Position(5, 0), Position(5, 0)), "x")], "outside the document"),
        (
            [
                TextEdit(Range(Position(0, 0), Position(0, 3)), "x"),
                TextEdit(Range(Position(0, 2), Position(0, 4)), "y"),
            ],
            "overlap",
        ),
    ],
)
def test_bad_text_edits_are_rejected(edits, message):
    with pytest.raises(ValueError, match=message):
        apply_text_edits("😀ab\n", edits, "utf-16")


def test_insertions_at_one_position_keep_their_order():
    at = Range(Position(0, 1), Position(0, 1))
    assert apply_text_edits("ab", [TextEdit(at, "1"), TextEdit(at, "2")]) == "a12b"


def test_unknown_encoding_is_rejected():
    with pytest.raises(ValueError, match="position encoding"):
        text_edits("a", "b", "utf-7")


def test_a_program_that_exhausts_the_parser_is_refused_not_raised():
    """``'-' * 200000 + '1'`` makes CPython's parser raise MemoryError; a document like that reached
    the server's code actions as an uncaught error."""
    from model_runtime.edits.code_map import function_spans
    from model_runtime.edits.diff_apply import python_syntax_error

    text = "-" * 200_000 + "1"
    assert function_spans(text) == []
    assert python_syntax_error(text).startswith("MemoryError")
