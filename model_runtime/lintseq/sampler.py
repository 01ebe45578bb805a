"""LintSeq backward sampling: a program as a sequence of linter-clean insertions.

The algorithm is the paper's (Piterbarg, Pinto, Fergus, ICLR 2025), in the
production setting of its reference code (one random path per call):

1. pick a random deletable line, weighted toward deeper indentation;
2. delete it together with its indented children;
3. lint what is left and delete every line the linter flags (with *their*
   children), again and again until the program is clean: that union is one
   edit;
4. repeat until nothing deletable is left, then reverse the deletions into
   insertion edits from the empty file to the program.

Every intermediate state is therefore a program the linter finds clean.
Errors the original program already has count as induced by the first
deletion, as in the reference (``ignore_init_errors=False``).

Two choices differ from the reference, both to make the data cleaner without
changing what an edit is:

* Comment and blank lines are never seeds (as in the paper) and travel with
  the code line that follows them, so no edit inserts only blank lines and a
  comment arrives with the code it describes. Trailing ones go with the last
  code line.
* A multi-line UPPERCASE constant at module level (``CONFIG = [...]``) is
  found from the syntax tree, not from the text, and is deleted and inserted
  as one unit whatever bracket it uses.

The sampler works on line indices only; turning a path into diffs lives in
:mod:`model_runtime.edits.editpath`.

Cost. The loop above lints the whole program after every deletion, so done
naively a path costs (probes x program size): 30 s and more for 2,000 lines.
With the pyflakes linter, programs of ``incremental_min_lines`` lines or more
are linted by :class:`~.incremental.IncrementalPyflakes`, which gives every
probe exactly the full linter's answer while redoing only what the deletion
touched (the statement, class member or function it was in, and the
module-level statements after it that see a binding it changed); the line to
delete is drawn from a Fenwick tree (same random numbers, same choice as
``rng.choices``); and the diffs are built in O(edit size x log n). The paths
are the same as the original loop's, kept as ``sample(..., reference=True)``
and compared with it, probe by probe, in the tests.
"""

from __future__ import annotations

import ast
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum

from model_runtime.edits.editpath import insertion_diff

from .linters import Linter, PyflakesLinter

__all__ = [
    "EditPath",
    "LintSeqOptions",
    "LintSeqSampler",
    "ProgramSkipped",
    "SkipReason",
    "check_size",
    "prepare_program",
    "path_rng",
]


class SkipReason(str, Enum):
    """Why a program yields no path. Runs count these instead of stopping."""

    EMPTY = "empty"
    COMMENT_ONLY = "comment-only"
    SYNTAX_ERROR = "syntax-error"
    BINARY = "binary"
    NON_UTF8 = "non-utf8"
    INTERNAL_ERROR = "internal-error"
    #: Over :attr:`LintSeqOptions.max_lines`: one huge generated module must not stop a corpus run.
    TOO_LONG = "too-long"
    #: One path took longer than :attr:`LintSeqOptions.max_seconds`.
    TIME_LIMIT = "time-limit"


class ProgramSkipped(Exception):
    """Raised for a program LintSeq cannot or should not refactor."""

    def __init__(self, reason: SkipReason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class LintSeqOptions:
    """Sampling options; the defaults are the paper's production setting."""

    #: Comment and blank lines are never picked as the line to delete.
    skip_trivia: bool = True
    #: Multi-line UPPERCASE module constants are deleted and inserted whole.
    keep_global_defs: bool = True
    #: Weight of a line indented ``k`` levels is ``k * indent_bias`` (level 0: 1).
    indent_bias: float = 1.0
    #: Deletion rounds before the rest of the program becomes the first edit.
    max_rounds: int = 512
    #: Longer programs are skipped (``too-long``), so that one huge generated module cannot stop a run.
    max_lines: int = 5000
    #: Programs with more characters are skipped (``too-long``): a few long lines can hold megabytes.
    max_chars: int = 2_000_000
    #: A path that takes longer is abandoned and the program skipped (``time-limit``).
    max_seconds: float = 60.0
    #: With the pyflakes linter, programs of at least this many lines are linted incrementally
    #: (:mod:`.incremental`): the same answers, without re-linting the whole program per probe.
    #: Smaller ones are linted in full, which is faster for them. ``None`` never lints incrementally.
    incremental_min_lines: int | None = 200


def _is_trivia(line: str) -> bool:
    stripped = line.lstrip()
    return not stripped or stripped.startswith("#")


def prepare_program(code: str | bytes) -> list[str]:
    """Normalise a program into lines, or raise :class:`ProgramSkipped`.

    Newlines are normalised to ``\\n``; leading and trailing blank lines are
    dropped (paths reproduce the program compared after ``.strip()``).
    """
    if isinstance(code, bytes):
        if b"\x00" in code:
            raise ProgramSkipped(SkipReason.BINARY, "contains NUL bytes")
        try:
            code = code.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProgramSkipped(SkipReason.NON_UTF8, str(exc)) from None
    if "\x00" in code:
        raise ProgramSkipped(SkipReason.BINARY, "contains NUL characters")
    try:
        code.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ProgramSkipped(SkipReason.NON_UTF8, str(exc)) from None
    code = code.replace("\r\n", "\n").replace("\r", "\n")
    lines = code.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    start = 0
    while start < len(lines) and not lines[start].strip():
        start += 1
    lines = lines[start:]
    if not lines:
        raise ProgramSkipped(SkipReason.EMPTY)
    if all(_is_trivia(line) for line in lines):
        raise ProgramSkipped(SkipReason.COMMENT_ONLY)
    try:
        ast.parse("\n".join(lines))
    except SyntaxError as exc:
        raise ProgramSkipped(SkipReason.SYNTAX_ERROR, f"line {exc.lineno}: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ProgramSkipped(SkipReason.SYNTAX_ERROR, f"{type(exc).__name__}: {exc}") from None
    return lines


def check_size(code: str | bytes, options: LintSeqOptions) -> None:
    """Raise ``too-long`` for a program over the limits, before anything parses it.

    Parsing a 40 MB module alone takes gigabytes, so the data run checks the
    raw text first: over ``max_chars`` characters (bytes for ``bytes``), or
    more lines than ``max_lines`` once the blank lines around it are dropped
    (the count :func:`prepare_program` would give).
    """
    if len(code) > options.max_chars:
        raise ProgramSkipped(SkipReason.TOO_LONG, f"{len(code)} characters (max_chars is {options.max_chars})")
    stripped = code.strip()
    if isinstance(stripped, bytes):
        count = stripped.count(b"\n") + stripped.count(b"\r") - stripped.count(b"\r\n") + 1
    else:
        count = stripped.count("\n") + stripped.count("\r") - stripped.count("\r\n") + 1
    if count > options.max_lines:
        raise ProgramSkipped(SkipReason.TOO_LONG, f"{count} lines (max_lines is {options.max_lines})")


def path_rng(seed: int, index: int, path: int) -> random.Random:
    """The random stream of one path, independent of workers and batching."""
    return random.Random(f"lintseq:{seed}:{index}:{path}")


@dataclass(slots=True)
class EditPath:
    """One sampled path: the program's lines and, per edit, the lines it inserts."""

    lines: list[str]
    #: In insertion order; each a sorted list of indices into ``lines``.
    steps: list[list[int]]
    #: Linter probes spent sampling this path.
    lint_calls: int = 0

    @property
    def program(self) -> str:
        return "\n".join(self.lines)

    def states(self) -> Iterator[str]:
        """The program after each edit, from the first to the whole program."""
        present = [False] * len(self.lines)
        for step in self.steps:
            for i in step:
                present[i] = True
            yield "\n".join(line for line, keep in zip(self.lines, present) if keep)

    def diffs(self) -> list[str]:
        """The edits as zero-context unified diffs (the reference's format).

        Positions come from a Fenwick tree over the lines already present, so a
        path costs O(lines inserted x log n), not O(lines x edits).
        """
        n = len(self.lines)
        tree = [0] * (n + 1)
        lines = self.lines
        out = []
        for step in self.steps:
            step = sorted(step)
            parts: list[str] = []
            k, m = 0, len(step)
            while k < m:
                old_before = _count_before(tree, step[k])
                j = k + 1
                while j < m and _count_before(tree, step[j]) == old_before:
                    j += 1
                parts.append(f"@@ -{_hunk_range(old_before, 0)} +{_hunk_range(old_before + k, j - k)} @@")
                parts.extend("+" + lines[i] for i in step[k:j])
                k = j
            out.append("\n".join(parts))
            for i in step:
                i += 1
                while i <= n:
                    tree[i] += 1
                    i += i & -i
        return out

    def diffs_reference(self) -> list[str]:
        """:meth:`diffs` computed the simple way (O(lines x edits)), for tests."""
        present = [False] * len(self.lines)
        out = []
        for step in self.steps:
            new = set(step)
            idx = [i for i in range(len(self.lines)) if present[i] or i in new]
            out.append(insertion_diff([self.lines[i] for i in idx], [i in new for i in idx]))
            for i in step:
                present[i] = True
        return out


def _count_before(tree: list[int], i: int) -> int:
    """Lines present before original index ``i``."""
    total = 0
    while i > 0:
        total += tree[i]
        i -= i & -i
    return total


def _hunk_range(start: int, length: int) -> str:
    if length == 1:
        return str(start + 1)
    if length == 0:
        return f"{start},0"
    return f"{start + 1},{length}"


@dataclass(slots=True)
class _Structure:
    """What the sampler precomputes once per program."""

    candidates: list[int]
    weights: list[float]
    #: For every line, the half-open range of lines deleted with it.
    span: list[tuple[int, int]] = field(default_factory=list)


class LintSeqSampler:
    """Samples LintSeq edit paths for programs with one linter and one set of options."""

    def __init__(self, linter: Linter, options: LintSeqOptions | None = None) -> None:
        self.linter = linter
        self.options = options or LintSeqOptions()

    # -- structure -----------------------------------------------------------------

    def _structure(self, lines: Sequence[str]) -> _Structure:
        opts = self.options
        n = len(lines)
        # Structural lines form the indentation tree; with ``skip_trivia`` the
        # comment and blank lines join the unit of the code line after them.
        structural = [i for i in range(n) if not (opts.skip_trivia and _is_trivia(lines[i]))]
        if not structural:
            return _Structure([], [], [(0, n)] * n)

        # Units: contiguous line ranges always deleted together, one boundary
        # after each structural line (the last unit takes the trailing trivia).
        if opts.skip_trivia:
            starts = {0, *(s + 1 for s in structural[:-1])}
        else:
            starts = set(range(n))
        if opts.keep_global_defs:
            for first, end in _global_def_spans("\n".join(lines)):
                starts.difference_update(range(first + 1, end + 1))
        ordered = sorted(starts)
        unit_of = [0] * n
        bounds = []
        for k, lo in enumerate(ordered):
            hi = ordered[k + 1] if k + 1 < len(ordered) else n
            bounds.append((lo, hi))
            for j in range(lo, hi):
                unit_of[j] = k

        # Effective indentation: a line with at most one non-space character
        # (a closing bracket, a blank line) inherits the previous one's, as in
        # the reference.
        indent = {}
        current = 0
        for s in structural:
            stripped = lines[s].lstrip()
            if len(stripped) > 1:
                current = len(lines[s]) - len(stripped)
            indent[s] = current
        tab = next((indent[s] for s in structural if indent[s] > 0), 0)

        # Children of a structural line: the following structural lines
        # indented deeper, up to the first that is not (one pass with a stack).
        # Only the last child matters, since children are contiguous.
        last_child = {}
        stack: list[int] = []
        for pos, s in enumerate(structural):
            while stack and indent[structural[stack[-1]]] >= indent[s]:
                top = stack.pop()
                if pos - 1 > top:
                    last_child[structural[top]] = structural[pos - 1]
            stack.append(pos)
        for top in stack:
            if len(structural) - 1 > top:
                last_child[structural[top]] = structural[-1]

        unit_span = []
        for lo, hi in bounds:
            end = hi
            for s in range(lo, hi):
                child = last_child.get(s)
                if child is not None:
                    end = max(end, bounds[unit_of[child]][1])
            unit_span.append((lo, end))
        span = [unit_span[unit_of[i]] for i in range(n)]

        candidates = []
        seen_units = set()
        for s in structural:
            if unit_of[s] not in seen_units:
                seen_units.add(unit_of[s])
                candidates.append(s)
        weights = [
            1.0 if indent[s] == 0 or not tab else indent[s] / tab * opts.indent_bias
            for s in candidates
        ]
        return _Structure(candidates, weights, span)

    # -- sampling ------------------------------------------------------------------

    def sample(self, lines: Sequence[str], rng: random.Random, *, reference: bool = False) -> EditPath:
        """Sample one edit path for ``lines`` (as returned by :func:`prepare_program`).

        Raises :class:`ProgramSkipped` for a program over ``max_lines`` or
        ``max_chars``, or one whose path runs past ``max_seconds``, so that no
        single program can stop a run.

        The path is a function of ``lines``, the options and ``rng`` only. It is
        computed without re-linting the whole program for every probe when the
        linter is pyflakes (:class:`~.incremental.IncrementalPyflakes` answers
        every probe exactly as the full linter would) and without O(n) work per
        deletion round (a Fenwick tree draws the line to delete, consuming the
        random stream exactly as ``rng.choices`` does). ``reference=True`` runs
        the original, simple loop instead (full lint per probe, ``rng.choices``
        over a rebuilt candidate list); it gives the same paths and is kept for
        tests and comparisons.
        """
        lines = list(lines)
        n = len(lines)
        if n > self.options.max_lines:
            raise ProgramSkipped(SkipReason.TOO_LONG, f"{n} lines (max_lines is {self.options.max_lines})")
        chars = sum(map(len, lines)) + n
        if chars > self.options.max_chars:
            raise ProgramSkipped(SkipReason.TOO_LONG, f"{chars} characters (max_chars is {self.options.max_chars})")
        if not reference:
            return self._sample(lines, rng)
        return self._sample_reference(lines, rng)

    def _engine(self, lines: list[str]):
        """The incremental linter for ``lines``, or None to lint each probe in full."""
        threshold = self.options.incremental_min_lines
        if threshold is None or len(lines) < threshold or type(self.linter) is not PyflakesLinter:
            return None
        from .incremental import IncrementalPyflakes

        return IncrementalPyflakes(lines, self.linter)

    def _sample(self, lines: list[str], rng: random.Random, engine=None) -> EditPath:
        n = len(lines)
        opts = self.options
        deadline = time.monotonic() + opts.max_seconds
        structure = self._structure(lines)
        span = structure.span
        alive = bytearray(b"\x01") * n
        remaining = n
        if engine is None:
            engine = self._engine(lines)
        linter = self.linter

        def full_lint() -> list[int]:
            kept = [i for i in range(n) if alive[i]]
            errors = linter.lint("\n".join(lines[i] for i in kept))
            return [kept[min(max(e.line, 1), len(kept)) - 1] for e in errors]

        picker = _Picker(structure.candidates, structure.weights, n)
        deletions: list[list[int]] = []
        lint_calls = 0
        for _ in range(opts.max_rounds):
            if time.monotonic() > deadline:
                raise ProgramSkipped(SkipReason.TIME_LIMIT, f"one path took over {opts.max_seconds:g} s")
            if picker.empty():
                break
            seed = picker.draw(rng, alive)
            removed: list[int] = []
            affected = {seed}
            while affected:
                start = len(removed)
                for line in affected:
                    lo, hi = span[line]
                    for j in range(lo, hi):
                        if alive[j]:
                            alive[j] = 0
                            removed.append(j)
                newly = removed[start:]
                remaining -= len(newly)
                picker.remove(newly)
                if engine is not None:
                    engine.remove(newly)
                if not remaining:
                    break
                errors = engine.lint() if engine is not None else full_lint()
                lint_calls += 1
                affected = set(errors)
            deletions.append(sorted(removed))

        leftover = [i for i in range(n) if alive[i]]
        if leftover:
            deletions.append(leftover)
        return EditPath(lines=lines, steps=deletions[::-1], lint_calls=lint_calls)

    def _sample_reference(self, lines: list[str], rng: random.Random) -> EditPath:
        """The original loop: every probe lints the whole program; kept as the reference."""
        n = len(lines)
        deadline = time.monotonic() + self.options.max_seconds
        structure = self._structure(lines)
        alive = [True] * n
        deletions: list[list[int]] = []
        lint_calls = 0
        cands = list(zip(structure.candidates, structure.weights))

        for _ in range(self.options.max_rounds):
            if time.monotonic() > deadline:
                raise ProgramSkipped(SkipReason.TIME_LIMIT, f"one path took over {self.options.max_seconds:g} s")
            cands = [(c, w) for c, w in cands if alive[c]]
            if not cands:
                break
            seed = rng.choices([c for c, _ in cands], weights=[w for _, w in cands])[0]
            removed: list[int] = []
            affected = {seed}
            while affected:
                for line in affected:
                    lo, hi = structure.span[line]
                    for j in range(lo, hi):
                        if alive[j]:
                            alive[j] = False
                            removed.append(j)
                kept = [i for i in range(n) if alive[i]]
                if not kept:
                    break
                errors = self.linter.lint("\n".join(lines[i] for i in kept))
                lint_calls += 1
                affected = {kept[min(max(e.line, 1), len(kept)) - 1] for e in errors}
            deletions.append(sorted(removed))

        leftover = [i for i in range(n) if alive[i]]
        if leftover:
            deletions.append(leftover)
        return EditPath(lines=lines, steps=deletions[::-1], lint_calls=lint_calls)

    def sample_paths(
        self, code: str | bytes, count: int, seed: int = 0, index: int = 0
    ) -> list[EditPath]:
        """``count`` independent paths for one program; raises :class:`ProgramSkipped`."""
        check_size(code, self.options)
        lines = prepare_program(code)
        return [self.sample(lines, path_rng(seed, index, k)) for k in range(count)]


#: Weights are scaled by this for the Fenwick tree; a weight that is not a multiple of
#: 1/_SCALE (e.g. 1/3) makes the sampler draw from a rebuilt list, as the reference does.
_SCALE = 1 << 20


class _Picker:
    """Draws the next line to delete exactly as ``rng.choices(alive_cands, weights)`` would.

    ``rng.choices`` accumulates the weights of the candidates still alive, in
    order, draws ``u = random() * total`` and takes the first candidate whose
    running sum exceeds ``u``. With weights that are multiples of ``1/_SCALE``
    (the defaults: whole indentation levels) every running sum is exact in
    floating point, so a Fenwick tree over all candidates (deleted ones
    weighing 0) finds the same candidate in O(log n) with the same single call
    to ``random()``. Other weights use the reference's rebuilt list.
    """

    def __init__(self, candidates: list[int], weights: list[float], n: int) -> None:
        self.candidates = candidates
        self.weights = weights
        self.position = {c: k for k, c in enumerate(candidates)}
        self.alive_count = len(candidates)
        scaled = []
        exact = True
        for w in weights:
            f = w * _SCALE
            if not (w >= 0 and f == int(f)):
                exact = False
                break
            scaled.append(int(f))
        if exact and sum(scaled) >= 1 << 52:
            exact = False
        self.exact = exact
        self.list = None if exact else list(zip(candidates, weights))
        if exact:
            size = len(candidates)
            tree = [0] * (size + 1)
            for k, v in enumerate(scaled):
                i = k + 1
                tree[i] += v
                j = i + (i & -i)
                if j <= size:
                    tree[j] += tree[i]
            self.tree = tree
            self.scaled = scaled
            self.total = sum(scaled)

    def empty(self) -> bool:
        return self.alive_count == 0

    def remove(self, lines: list[int]) -> None:
        position = self.position
        for line in lines:
            k = position.get(line)
            if k is None:
                continue
            self.alive_count -= 1
            if self.exact:
                v = self.scaled[k]
                if v:
                    self.scaled[k] = 0
                    self.total -= v
                    i = k + 1
                    tree = self.tree
                    size = len(tree) - 1
                    while i <= size:
                        tree[i] -= v
                        i += i & -i

    def draw(self, rng: random.Random, alive: bytearray) -> int:
        if not self.exact:
            self.list = [(c, w) for c, w in self.list if alive[c]]
            return rng.choices([c for c, _ in self.list], weights=[w for _, w in self.list])[0]
        if self.total <= 0:
            raise ValueError("Total of weights must be greater than zero")
        u = rng.random() * (self.total / _SCALE)
        target = u * _SCALE
        tree = self.tree
        size = len(tree) - 1
        pos = acc = 0
        step = 1 << (size.bit_length() - 1) if size else 0
        while step:
            nxt = pos + step
            if nxt <= size and acc + tree[nxt] <= target:
                pos = nxt
                acc += tree[nxt]
            step >>= 1
        if pos >= size:  # u rounded up to the total: the last candidate alive, as bisect's hi does
            pos = max(k for k in range(size) if alive[self.candidates[k]])
        return self.candidates[pos]


def _global_def_spans(source: str) -> list[tuple[int, int]]:
    """0-based (first, last) lines of multi-line UPPERCASE assignments at module level."""
    spans = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        else:
            continue
        names = [t for t in targets if isinstance(t, ast.Name)]
        if len(names) != len(targets) or not all(t.id.isupper() for t in names):
            continue
        if node.end_lineno and node.end_lineno > node.lineno:
            spans.append((node.lineno - 1, node.end_lineno - 1))
    return spans
