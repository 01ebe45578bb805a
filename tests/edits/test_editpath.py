"""The LintSeq edit format: serialisation matches difflib, resolution is exact and tolerant."""

import difflib
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from model_runtime.edits.editpath import (
    DIFF_TOKEN,
    format_prompt,
    format_training_text,
    insertion_diff,
    resolve_edit_path,
    split_edits,
)


def difflib_diff(old, new):
    """The reference's get_diff: unified_diff with n=0, headers dropped."""
    return "\n".join(list(difflib.unified_diff(old, new, n=0, lineterm=""))[2:])


lines_st = st.lists(st.text(alphabet="abcxyz (): =+-#", min_size=1, max_size=8), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(lines=lines_st, data=st.data())
def test_insertion_diff_matches_difflib(lines, data):
    # Distinct lines make difflib's alignment unambiguous, so both must agree exactly.
    lines = [f"{i}:{line}" for i, line in enumerate(lines)]
    inserted = data.draw(st.lists(st.booleans(), min_size=len(lines), max_size=len(lines)))
    if not any(inserted):
        inserted[0] = True
    old = [line for line, new in zip(lines, inserted) if not new]
    ours = insertion_diff(lines, inserted)
    assert ours == difflib_diff(old, lines)
    assert resolve_edit_path([ours], start="\n".join(old)).lines == lines


def test_issue_example_header():
    old = ["def f():", "    a = 0", "    b = 1", "    c = 2"]
    new = old + ["    x = 1", "    return x"]
    diff = insertion_diff(new, [False] * 4 + [True, True])
    assert diff == "@@ -4,0 +5,2 @@\n+    x = 1\n+    return x"


def test_resolve_keeps_plus_and_minus_content():
    # The reference resolver lstrips "+" and "-" and so corrupts these lines.
    program = ["x = 1", "y = -x", "+x", "--x"]
    diff = insertion_diff(program, [True] * 4)
    assert resolve_edit_path([diff]).lines == program


def test_training_text_roundtrip():
    diffs = ["@@ -0,0 +1 @@\n+import os", "@@ -1,0 +2,2 @@\n+def f():\n+    return os.sep"]
    text = format_training_text("Write f.", diffs, eos_token="<|endoftext|>")
    assert text.startswith(format_prompt("Write f."))
    assert text.endswith(f"\n{DIFF_TOKEN}\n{DIFF_TOKEN}<|endoftext|>")
    completion = text[len(format_prompt("Write f.")):]
    assert split_edits(completion, eos_token="<|endoftext|>") == diffs
    result = resolve_edit_path(completion, eos_token="<|endoftext|>")
    assert result.ok and result.program == "import os\ndef f():\n    return os.sep"


def test_eos_is_a_suffix_not_a_character_set():
    # rstrip("<|endoftext|>") would also eat the trailing "t" and "x" of the program.
    completion = "@@ -0,0 +1 @@\n+text<|endoftext|>"
    assert resolve_edit_path(completion, eos_token="<|endoftext|>").program == "text"


def test_malformed_hunks_are_skipped_with_reasons():
    completion = DIFF_TOKEN.join(
        [
            "@@ -0,0 +1,2 @@\n+a = 1\n+b = 2",
            "garbage that is no diff",
            "@@ -2,0 +3,3 @@\n+c = 3",  # truncated: promises 3 lines
            "@@ -2,0 +9 @@\n+d = 4",  # beyond the end of the file
            "@@ -2,0 +3 @@\n+e = 5",
            "@@ -1 +1 @@\n-zzz\n+a = 9",  # removal that does not match the file
        ]
    )
    result = resolve_edit_path(completion)
    assert result.program == "a = 1\nb = 2\ne = 5"
    reasons = [r.reason for r in result.rejected]
    assert len(reasons) == 4
    assert "not a hunk header" in reasons[0]
    assert "promises 3 new lines" in reasons[1]
    assert "outside the file" in reasons[2]
    assert "do not match" in reasons[3]
    assert [r.step for r in result.rejected] == [2, 3, 4, 6]


def test_resolve_never_raises_on_random_text():
    rng = random.Random(7)
    alphabet = "@@ -+,0123456789\nabc<|diff|>"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        result = resolve_edit_path(text)
        assert isinstance(result.program, str)


def test_general_hunk_with_context_and_removal():
    start = "a\nb\nc"
    diff = "@@ -1,3 +1,3 @@\n a\n-b\n+B\n c"
    assert resolve_edit_path([diff], start=start).program == "a\nB\nc"


def test_multiple_hunks_in_one_edit_use_new_file_positions():
    old = ["a", "c", "e"]
    new = ["a", "b", "c", "d", "e", "f"]
    diff = insertion_diff(new, [x not in old for x in new])
    assert diff.count("@@ -") == 3
    assert resolve_edit_path([diff], start="\n".join(old)).lines == new
