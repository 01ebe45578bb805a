"""Exact and near-duplicate detection for training code, first seen wins.

The same function turns up many times in installed code: vendored copies
(``pip._vendor``, ``setuptools._vendor``), backports, generated twins and
copy-pasted helpers. Training on each copy overweights it and, worse, lets a
held-out copy leak into evaluation. Two checks, in order of cost:

* **Exact**: a hash of the code with every run of whitespace collapsed to one
  space, so re-indented or re-wrapped copies count as the same.
* **Near**: MinHash signatures over shingles of ``shingle`` consecutive code
  tokens (words and single punctuation characters), indexed by
  locality-sensitive hashing (``datasketch``). A text whose estimated Jaccard
  similarity to a text already kept reaches ``threshold`` is a near duplicate.
  Token shingles ignore layout and are short enough that a renamed variable
  changes only a few of them.

Both are streaming: :meth:`Deduplicator.check` decides as texts arrive and
keeps the first copy, so the outcome depends only on the input order (callers
keep that deterministic).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

__all__ = [
    "DedupOptions",
    "Deduplicator",
    "EXACT",
    "NEAR",
    "exact_key",
    "shingles",
    "tokens",
]

#: Reasons :meth:`Deduplicator.check` gives for dropping a text.
EXACT = "exact-duplicate"
NEAR = "near-duplicate"

_WHITESPACE = re.compile(r"\s+")
_TOKEN = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True, slots=True)
class DedupOptions:
    """Settings of duplicate detection."""

    #: Estimated Jaccard similarity at which a text is a near duplicate; None turns the check off.
    threshold: float | None = 0.85
    #: MinHash permutations: more is a closer estimate and a slower signature.
    num_perm: int = 128
    #: Tokens per shingle.
    shingle: int = 5
    #: Seed of the MinHash permutations (fixed, so runs agree).
    seed: int = 1


def exact_key(code: str) -> str:
    """The exact-duplicate key: a SHA-1 of ``code`` with whitespace runs collapsed."""
    normalised = _WHITESPACE.sub(" ", code).strip()
    return hashlib.sha1(normalised.encode("utf-8", "surrogatepass")).hexdigest()


def tokens(code: str) -> list[str]:
    """Code tokens for shingling: identifiers, numbers and keywords whole, punctuation one character each."""
    return _TOKEN.findall(code)


def shingles(code: str, size: int = 5) -> set[bytes]:
    """The distinct ``size``-token shingles of ``code`` (the whole text as one if it is shorter)."""
    toks = tokens(code)
    if len(toks) <= size:
        return {" ".join(toks).encode("utf-8", "surrogatepass")} if toks else set()
    return {" ".join(toks[i:i + size]).encode("utf-8", "surrogatepass") for i in range(len(toks) - size + 1)}


class Deduplicator:
    """Remembers the texts kept so far and says whether a new one duplicates any of them."""

    def __init__(self, options: DedupOptions = DedupOptions()) -> None:
        if options.threshold is not None and not 0.0 < options.threshold <= 1.0:
            raise ValueError(f"near-duplicate threshold must be in (0, 1], got {options.threshold}")
        self.options = options
        self._seen: set[str] = set()
        self._lsh = None
        if options.threshold is not None:
            from datasketch import MinHashLSH

            self._lsh = MinHashLSH(threshold=options.threshold, num_perm=options.num_perm)
        #: Kept texts' MinHash values, to confirm LSH candidates (arrays, not MinHash objects: smaller).
        self._values: dict[str, object] = {}
        self._kept = 0

    def check(self, code: str) -> str | None:
        """:data:`EXACT` or :data:`NEAR` if ``code`` duplicates a text kept before, else None (and keep it)."""
        key = exact_key(code)
        if key in self._seen:
            return EXACT
        if self._lsh is not None:
            signature = self.signature(code)
            if signature is not None:
                values = signature.hashvalues
                for other in self._lsh.query(signature):
                    # LSH returns candidates; confirm with the estimate itself.
                    if float((values == self._values[other]).mean()) >= self.options.threshold:
                        return NEAR
                name = str(self._kept)
                self._lsh.insert(name, signature, check_duplication=False)
                self._values[name] = values
        self._seen.add(key)
        self._kept += 1
        return None

    def signature(self, code: str):
        """The MinHash of ``code``'s shingles (None for code without tokens)."""
        from datasketch import MinHash

        grams = shingles(code, self.options.shingle)
        if not grams:
            return None
        signature = MinHash(num_perm=self.options.num_perm, seed=self.options.seed)
        signature.update_batch(grams)
        return signature
