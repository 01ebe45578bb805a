"""Synthetic bugs: every kind is produced, each mutant parses and differs, and most kinds undo themselves."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from model_runtime.edits.mutations import KINDS, mutations, random_mutation

SOURCE = '''def clip_total(xs, limit):
    """Sum the items until the total would pass limit."""
    total = 0
    seen = []
    for i in range(len(xs)):
        if xs[i] < 0 and not limit:
            continue
        elif total + xs[i] > limit:
            break
        else:
            seen.append(xs[i])
        total += xs[i]
    return min(total, limit) if seen else xs[:limit]
'''


def test_every_kind_of_real_bug_is_produced_and_each_mutant_is_new_valid_python():
    found = mutations(SOURCE)
    assert set(Counter(m.kind for m in found)) == set(KINDS)
    sources = [m.source for m in found]
    assert len(set(sources)) == len(sources) and SOURCE not in sources
    for m in found:
        compile(m.source, "<mutant>", "exec")
    details = {m.detail for m in found}
    for expected in ("< -> <=", "and -> or", "dropped not", "+= -> -=", "min -> max", ".append -> .extend",
                     "range argument len(xs) -> len(xs) + 1", "0 -> 1", "added not to the condition", "total -> limit",
                     "repeated `total += xs[i]`", "deleted the else branch", "deleted `seen = []`"):
        assert expected in details, expected
    assert not any("docstring" in d or '"""' in d for d in details)  # the docstring is never deleted


def test_the_order_is_fixed_and_kinds_filter():
    assert mutations(SOURCE) == mutations(SOURCE)
    assert {m.kind for m in mutations(SOURCE, kinds=["operator"])} == {"operator"}
    with pytest.raises(ValueError, match="unknown mutation kinds"):
        mutations(SOURCE, kinds=["typo"])
    assert mutations("def broken(:\n") == []


@pytest.mark.parametrize("kind", ["operator", "value", "variable", "function", "excess"])
def test_enumerating_the_mutants_of_a_bug_finds_its_fix(kind):
    """What the no-model baseline relies on: for these kinds, the fix is one mutation of the bug."""
    for bug in mutations(SOURCE, kinds=[kind])[:8]:
        assert SOURCE in {m.source for m in mutations(bug.source)}, bug.detail


def test_random_mutations_follow_the_seed():
    a = [random_mutation(SOURCE, random.Random(7)) for _ in range(3)]
    b = [random_mutation(SOURCE, random.Random(7)) for _ in range(3)]
    assert a == b and all(m is not None and m.source != SOURCE for m in a)
    assert random_mutation("def f():\n    pass\n", random.Random(0)) is None


def test_conditions_written_without_a_space_keep_valid_syntax_when_negated():
    # `if(x):` has no space after the keyword; `if not(x)` would need one (libcst refused to build it).
    source = "def f(x):\n    if(x):\n        return 1\n    while(x):\n        x -= 1\n    return 0\n"
    negated = [m.source for m in mutations(source) if m.detail == "added not to the condition"]
    assert negated == [source.replace("if(x)", "if not (x)"), source.replace("while(x)", "while not (x)")]


def test_an_edit_libcst_cannot_rebuild_is_skipped_not_raised():
    # Keeping only `b` of `if(a) and b:` would read `ifb`; that one edit is skipped, the others remain.
    source = "def f(a, b):\n    if(a) and b:\n        return 1\n    return 0\n"
    details = [m.detail for m in mutations(source)]
    assert "dropped right operand of and" in details and "dropped left operand of and" not in details
    assert len(details) == 11
