"""Exact and near-duplicate detection (model_runtime.corpus.dedup)."""

import pytest

from model_runtime.corpus.dedup import EXACT, NEAR, DedupOptions, Deduplicator, exact_key, shingles

FUNCTION = '''def merge_sorted(left, right):
    """Merge two sorted lists into one sorted list."""
    result = []
    i = j = 0
    while i < len(left) and j < len(right):
        if left[i] <= right[j]:
            result.append(left[i])
            i += 1
        else:
            result.append(right[j])
            j += 1
    result.extend(left[i:])
    result.extend(right[j:])
    return result
'''

OTHER = '''def parse_header(line):
    """Split an HTTP header line into its name and value."""
    name, _, value = line.partition(":")
    if not name or name != name.strip():
        raise ValueError(f"bad header: {line!r}")
    return name.lower(), value.strip()
'''


def test_exact_key_ignores_layout_only():
    assert exact_key("def f(x):\n    return x\n") == exact_key("def f(x):\n\n\treturn   x")
    assert exact_key("def f(x):\n    return x\n") != exact_key("def f(y):\n    return y\n")


def test_shingles_short_text_is_one_shingle():
    assert shingles("a + b", 5) == {b"a + b"}
    assert shingles("", 5) == set()
    assert len(shingles(FUNCTION, 5)) > 50


def test_exact_then_near_duplicates_first_copy_wins():
    dups = Deduplicator()
    assert dups.check(FUNCTION) is None
    assert dups.check(OTHER) is None
    assert dups.check(FUNCTION.replace("    ", "  ")) == EXACT
    # one line added at the end: most shingles are shared
    near = FUNCTION + "    # the merged list\n"
    assert dups.check(near) == NEAR
    # a different function of the same shape is not a duplicate
    renamed_everything = (FUNCTION.replace("left", "a").replace("right", "b").replace("result", "out")
                          .replace("merge_sorted", "combine").replace("i", "p").replace("j", "q"))
    assert dups.check(renamed_everything) is None


def test_near_check_off_keeps_near_copies():
    dups = Deduplicator(DedupOptions(threshold=None))
    assert dups.check(FUNCTION) is None
    assert dups.check(FUNCTION + "    # the merged list\n") is None
    assert dups.check(FUNCTION) == EXACT


def test_threshold_must_be_a_fraction():
    with pytest.raises(ValueError, match="threshold"):
        Deduplicator(DedupOptions(threshold=1.5))
