"""Failure attribution: does ``pytest --editseq`` blame the right function, with the right expected/actual?

Two real projects, pinned sdists from PyPI (more-itertools 10.5.0 and toolz
1.2.0, sha256-checked), are downloaded once into a cache outside the clone
(``~/.cache/editseq-bug-suites``, or ``$EDITSEQ_BUG_SUITES``) and unpacked
there once. :data:`BUGS` holds hand-made bugs, written for this benchmark
(they come from no public bug benchmark such as BugsInPy or Defects4J; these
two projects are in none that we know of): off-by-one, wrong operator, wrong
variable, missing branch or statement, swapped arguments; in functions and in
methods; some raise inside a helper the buggy code calls, some only give
wrong values, and some are *in* a helper that the tests reach through its
caller. Each is data: the file, the qualname of the function that holds the
bug, an exact snippet of the pristine source (found exactly once) and its
replacement, and the pytest arguments that run its tests.

For each bug: the pristine package tree is copied to a temporary folder, the
bug applied, and ``python3 -m pytest --editseq -q -p no:cacheprovider
<tests>`` run there; the report (``.editseq/pytest-report.json``) is read and
each failure in it scored:

**target right**: the failure's ``target_path``/``target_function`` are the
bug's file and qualname.

**expected/actual right** (failures whose failing assertion is a comparison):
the truth comes from a differential run, not from us. Two more runs of the
failing tests, on the buggy tree and on the pristine one, with a recording
plugin (written next to the copies, loaded with ``-p``) and pytest's
``enable_assertion_pass_hook``, record the two operands of every comparison a
plain ``assert`` evaluates (``pytest_assertrepr_compare``, which pytest then
calls for passing assertions too) and the arguments of every
``unittest.TestCase`` assertion, with where they ran (file, line, how many
times that line had asserted before in the test). The failure's assertion is
the first that failed in the buggy run; the same occurrence in the pristine
run (where it passed) is its twin (every run has ``PYTHONHASHSEED=0``: set
and dict orders do not differ between runs). The operand whose repr is the
same in both runs is what the test expects; the operand that changed with the bug is the
actual value. When both or neither changed (reprs with addresses, a bug that
changes the expected side's computation too) the failure is *undetermined*
and left out of the share. Right means: ``actual`` is the changed operand's
repr and ``expected`` the unchanged one's, both as editseq writes reprs
(:func:`~model_runtime.sandbox.pytest_json_plugin.safe_repr`; object
addresses, ``at 0x...``, differ between processes and are not compared); for an
ordering or membership comparison (``!=``, ``<``, ``in``, ``assertIn``...)
``expected`` is a condition, so it must *contain* the unchanged operand's
repr. One-argument unittest assertions count too: ``assertTrue(x)``,
``assertFalse(x)``, ``assertIsNone(x)`` expect ``True``, ``False``, ``None``
and ``x``'s repr is the actual value (no twin run needed).

    python3 benchmarks/attribution.py [--only ID ...] [--save results.json] [--before results.json]
    python3 benchmarks/attribution.py --load after.json --before before.json   # print saved runs

Prints one row per bug (failures, target right, expected/actual right, the
target editseq named most) and the shares; ``--before`` adds a column pair
from an earlier ``--save``. ``EDITSEQ_CHECKOUT=/path`` measures another
checkout of editseq (e.g. ``git archive HEAD`` unpacked somewhere: the code
before a change) with this benchmark. Takes a few minutes (three pytest runs per bug on
one core). Needs network access once (pip download). A plain script, not a
test.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(os.environ.get("EDITSEQ_CHECKOUT") or Path(__file__).resolve().parents[1])
CACHE = Path(os.environ.get("EDITSEQ_BUG_SUITES") or Path.home() / ".cache" / "editseq-bug-suites")

#: name -> (version, sha256 of the sdist, the folder inside it that holds the package and its tests)
SUITES = {
    "more-itertools": ("10.5.0", "5482bfef7849c25dc3c6dd53a6173ae4795da2a41a80faea6700d9f5846c5da6"),
    "toolz": ("1.2.0", "9667a038e9d6ecba37995e26cb2f59ec6420b6ad8dd9677de59db9b956b08490"),
}


@dataclass(frozen=True)
class Bug:
    id: str
    suite: str
    file: str
    function: str  #: the qualname of the function the bug is in: the right answer
    old: str  #: exact pristine snippet (must occur once in the file)
    new: str
    tests: tuple[str, ...]  #: pytest arguments selecting its tests
    kind: str  #: value (wrong values only), raises (in the buggy function), helper-raises (a helper it
    #: calls raises), in-helper (the bug is in a helper the tests reach through a caller)
    what: str


MI, TZ = "more-itertools", "toolz"
MORE, RECIPES = "more_itertools/more.py", "more_itertools/recipes.py"
MORE_TESTS, RECIPE_TESTS = "tests/test_more.py", "tests/test_recipes.py"
ITER, DICT, FUNC = "toolz/itertoolz.py", "toolz/dicttoolz.py", "toolz/functoolz.py"
ITER_TESTS, DICT_TESTS, FUNC_TESTS = "toolz/tests/test_itertoolz.py", "toolz/tests/test_dicttoolz.py", \
    "toolz/tests/test_functoolz.py"

BUGS: tuple[Bug, ...] = (
    # ------------------------------------------------------------------ more-itertools
    Bug("mi-seek-neg", MI, MORE, "seekable.seek",
        "            consume(self, remainder)\n", "            consume(self, -remainder)\n",
        (MORE_TESTS, "-k", "SeekableTest"), "helper-raises", "wrong sign: consume() gets a negative count"),
    Bug("mi-seekable-next-step", MI, MORE, "seekable.__next__",
        "                self._index += 1\n                return item\n",
        "                self._index += 2\n                return item\n",
        (MORE_TESTS, "-k", "SeekableTest"), "value", "off by one: the cursor skips an item"),
    Bug("mi-relative-seek-op", MI, MORE, "seekable.relative_seek",
        "        self.seek(max(self._index + count, 0))\n", "        self.seek(max(self._index - count, 0))\n",
        (MORE_TESTS, "-k", "SeekableTest"), "value", "wrong operator: seeks backwards"),
    Bug("mi-peekable-prepend-order", MI, MORE, "peekable.prepend",
        "        self._cache.extendleft(reversed(items))\n", "        self._cache.extendleft(items)\n",
        (MORE_TESTS, "-k", "PeekableTests"), "value", "missing reversal: prepended items come out backwards"),
    Bug("mi-peekable-getitem-off", MI, MORE, "peekable.__getitem__",
        "            self._cache.extend(islice(self._it, index + 1 - cache_len))\n",
        "            self._cache.extend(islice(self._it, index - cache_len))\n",
        (MORE_TESTS, "-k", "PeekableTests"), "raises", "off by one: caches one item too few, then indexes past it"),
    Bug("mi-peekable-slice-cache", MI, MORE, "peekable._get_slice",
        "            n = min(max(start, stop) + 1, maxsize)\n", "            n = min(max(start, stop) - 1, maxsize)\n",
        (MORE_TESTS, "-k", "PeekableTests"), "in-helper", "off by two: a slice caches too few items"),
    Bug("mi-countable-order", MI, MORE, "countable.__next__",
        "        item = next(self._it)\n        self.items_seen += 1\n",
        "        self.items_seen += 1\n        item = next(self._it)\n",
        (MORE_TESTS, "-k", "CountableTests"), "value", "statements swapped: counts the StopIteration too"),
    Bug("mi-numeric-range-len", MI, MORE, "numeric_range._len",
        "            return int(q) + int(r != self._zero)\n", "            return int(q)\n",
        (MORE_TESTS, "-k", "NumericRangeTests"), "in-helper", "missing branch: a partial last step is not counted"),
    Bug("mi-numeric-range-contains", MI, MORE, "numeric_range.__contains__",
        "            if self._start <= elem < self._stop:\n", "            if self._start <= elem <= self._stop:\n",
        (MORE_TESTS, "-k", "NumericRangeTests"), "value", "wrong operator: the stop is inside"),
    Bug("mi-run-length-swap", MI, MORE, "run_length.encode",
        "        return ((k, ilen(g)) for k, g in groupby(iterable))\n",
        "        return ((ilen(g), k) for k, g in groupby(iterable))\n",
        (MORE_TESTS, "-k", "RunLengthTest"), "value", "swapped tuple: (count, item)"),
    Bug("mi-windowed-padding", MI, MORE, "windowed",
        "    padding = (fillvalue,) * (n - 1 if step >= n else step - 1)\n",
        "    padding = (fillvalue,) * (n if step >= n else step - 1)\n",
        (MORE_TESTS, "-k", "WindowedTests"), "value", "off by one: one padding item too many"),
    Bug("mi-split-at-reset", MI, MORE, "split_at",
        "                yield list(it)\n                return\n            buf = []\n            maxsplit -= 1\n",
        "                yield list(it)\n                return\n            maxsplit -= 1\n",
        (MORE_TESTS, "-k", "SplitAtTests"), "value", "missing statement: the buffer is never reset"),
    Bug("mi-mark-ends-first", MI, MORE, "mark_ends",
        "            yield i == 0, False, a\n", "            yield i == 1, False, a\n",
        (MORE_TESTS, "-k", "MarkEndsTests"), "value", "off by one: the second item is marked first"),
    Bug("mi-interleave-longest-none", MI, MORE, "interleave_longest",
        "    return (x for x in i if x is not _marker)\n", "    return (x for x in i if x is not None)\n",
        (MORE_TESTS, "-k", "InterleaveLongestTests"), "value", "wrong variable: filters None, keeps the marker"),
    Bug("mi-rstrip-clear", MI, MORE, "rstrip",
        "            yield from cache\n            cache_clear()\n", "            yield from cache\n",
        (MORE_TESTS, "-k", "StripFunctionTests"), "in-helper", "missing statement: the cache is yielded twice"),
    Bug("mi-first-default", MI, MORE, "first",
        "    if default is _marker:\n        raise ValueError(\n            'first() was called",
        "    if default is not _marker:\n        raise ValueError(\n            'first() was called",
        (MORE_TESTS, "-k", "FirstTests"), "raises", "wrong operator: raises when a default is given"),
    Bug("mi-one-too-short", MI, MORE, "one",
        "            too_short or ValueError('too few items in iterable (expected 1)')\n",
        "            too_long or ValueError('too few items in iterable (expected 1)')\n",
        (MORE_TESTS, "-k", "OneTests"), "raises", "wrong variable: the too_long exception for too few items"),
    Bug("mi-bucket-cache-key", MI, MORE, "bucket._get_values",
        "                        self._cache[item_value].append(item)\n",
        "                        self._cache[value].append(item)\n",
        (MORE_TESTS, "-k", "BucketTests"), "in-helper", "wrong variable: other items cached under the wanted key"),
    Bug("mi-islice-helper-stop", MI, MORE, "_islice_helper",
        "                j = min(stop, len_iter)\n", "                j = max(stop, len_iter)\n",
        (MORE_TESTS, "-k", "IsliceExtendedTests"), "in-helper", "wrong function: max for min"),
    Bug("mi-tail-off", MI, RECIPES, "tail",
        "        yield from islice(iterable, max(0, len(iterable) - n), None)\n",
        "        yield from islice(iterable, max(0, len(iterable) - n - 1), None)\n",
        (RECIPE_TESTS, "-k", "TailTests"), "value", "off by one: one item too many"),
    Bug("mi-sliding-window-swap", MI, RECIPES, "sliding_window",
        "        return _sliding_window_islice(iterable, n)\n", "        return _sliding_window_islice(n, iterable)\n",
        (RECIPE_TESTS, "-k", "SlidingWindowTests"), "helper-raises", "swapped arguments to the helper"),
    Bug("mi-iter-index-start", MI, RECIPES, "iter_index",
        "        i = start - 1\n", "        i = start\n",
        (RECIPE_TESTS, "-k", "IterIndexTests"), "value", "off by one: a match at start is skipped"),
    Bug("mi-factor-sieve", MI, RECIPES, "factor",
        "    for prime in sieve(math.isqrt(n) + 1):\n", "    for prime in sieve(math.isqrt(n)):\n",
        (RECIPE_TESTS, "-k", "FactorTests"), "value", "off by one: squares of primes are not factored"),
    # ------------------------------------------------------------------ toolz
    Bug("tz-sliding-window-shift", TZ, ITER, "sliding_window",
        "               for i, it in enumerate(itertools.tee(seq, n))))\n",
        "               for i, it in enumerate(itertools.tee(seq, n), 1)))\n",
        (ITER_TESTS, "-k", "sliding_window"), "value", "off by one: every window starts one late"),
    Bug("tz-partition-all-end", TZ, ITER, "partition_all",
        "            end = len(seq) % n\n", "            end = len(seq) // n\n",
        (ITER_TESTS, "-k", "partition_all"), "raises", "wrong operator: // for %"),
    Bug("tz-get-swap", TZ, ITER, "get",
        "                return tuple(_get(i, seq, default) for i in ind)\n",
        "                return tuple(_get(seq, i, default) for i in ind)\n",
        (ITER_TESTS, "-k", "get"), "helper-raises", "swapped arguments to the helper _get"),
    Bug("tz-interpose-order", TZ, ITER, "interpose",
        "    inposed = concat(zip(itertools.repeat(el), seq))\n",
        "    inposed = concat(zip(seq, itertools.repeat(el)))\n",
        (ITER_TESTS, "-k", "interpose"), "value", "swapped arguments: separator after each item"),
    Bug("tz-reduceby-swap", TZ, ITER, "reduceby",
        "        d[k] = binop(d[k], item)\n", "        d[k] = binop(item, d[k])\n",
        (ITER_TESTS, "-k", "reduceby"), "value", "swapped arguments to binop"),
    Bug("tz-accumulate-first", TZ, ITER, "accumulate",
        "    yield result\n    for elem in seq:\n        result = binop(result, elem)\n",
        "    for elem in seq:\n        result = binop(result, elem)\n",
        (ITER_TESTS, "-k", "accumulate"), "value", "missing statement: the first value is not yielded"),
    Bug("tz-merge-sorted-tail", TZ, ITER, "_merge_sorted_binary",
        "        yield val2\n        yield from seq2\n        return\n    yield val1\n    yield from seq1\n\n\n"
        "def _merge_sorted_binary_key",
        "        yield from seq2\n        return\n    yield val1\n    yield from seq1\n\n\n"
        "def _merge_sorted_binary_key",
        (ITER_TESTS, "-k", "merge_sorted"), "in-helper", "missing statement: the pending item is dropped"),
    Bug("tz-pluck-seqs", TZ, ITER, "pluck",
        "    return (_get(ind, seq, default) for seq in seqs)\n",
        "    return (_get(ind, seqs, default) for seq in seqs)\n",
        (ITER_TESTS, "-k", "pluck"), "value", "wrong variable: seqs for seq"),
    Bug("tz-topk-smallest", TZ, ITER, "topk",
        "    return tuple(heapq.nlargest(k, seq, key=key))\n", "    return tuple(heapq.nsmallest(k, seq, key=key))\n",
        (ITER_TESTS, "-k", "topk"), "value", "wrong function: nsmallest"),
    Bug("tz-unique-key", TZ, ITER, "unique",
        "                seen_add(val)\n", "                seen_add(item)\n",
        (ITER_TESTS, "-k", "unique"), "value", "wrong variable: remembers the item, not its key"),
    Bug("tz-assoc-in-swap", TZ, DICT, "assoc_in",
        "    return update_in(d, keys, lambda x: value, value, factory)\n",
        "    return update_in(d, keys, value, lambda x: value, factory)\n",
        (DICT_TESTS, "-k", "assoc_in"), "helper-raises", "swapped arguments: update_in calls the value"),
    Bug("tz-update-in-default", TZ, DICT, "update_in",
        "        inner[k] = func(default)\n", "        inner[k] = default\n",
        (DICT_TESTS, "-k", "update_in or assoc_in"), "value", "missing call: the default is not passed to func"),
    Bug("tz-get-in-typeerror", TZ, DICT, "get_in",
        "    except (KeyError, IndexError, TypeError):\n", "    except (KeyError, IndexError):\n",
        (DICT_TESTS, "-k", "get_in"), "raises", "missing branch: TypeError escapes"),
    Bug("tz-merge-with-key", TZ, DICT, "merge_with",
        "            values[k](v)\n", "            values[k](k)\n",
        (DICT_TESTS, "-k", "merge_with"), "value", "wrong variable: collects keys, not values"),
    Bug("tz-dissoc-intersection", TZ, DICT, "dissoc",
        "        remaining.difference_update(keys)\n", "        remaining.intersection_update(keys)\n",
        (DICT_TESTS, "-k", "dissoc"), "value", "wrong method: keeps only the removed keys"),
    Bug("tz-flip-order", TZ, FUNC, "flip",
        "    return func(b, a)\n", "    return func(a, b)\n",
        (FUNC_TESTS, "-k", "flip"), "value", "swapped arguments: flip does not flip"),
    Bug("tz-excepts-handler", TZ, FUNC, "excepts.__call__",
        "            return self.handler(e)\n", "            return self.handler\n",
        (FUNC_TESTS, "-k", "excepts"), "value", "missing call: returns the handler itself"),
    Bug("tz-compose-order", TZ, FUNC, "Compose.__init__",
        "        funcs = tuple(reversed(funcs))\n", "        funcs = tuple(funcs)\n",
        (FUNC_TESTS, "-k", "compose"), "value", "missing reversal: composes left to right"),
    Bug("tz-memoize-kwargs", TZ, FUNC, "memoize",
        "            cache[k] = result = func(*args, **kwargs)\n", "            cache[k] = result = func(*args)\n",
        (FUNC_TESTS, "-k", "memoize"), "raises", "missing argument: keyword arguments dropped"),
    Bug("tz-thread-last-order", TZ, FUNC, "thread_last",
        "            args = args + (val,)\n", "            args = (val,) + args\n",
        (FUNC_TESTS, "-k", "thread_last"), "value", "swapped operands: threads first, not last"),
    Bug("tz-should-curry-not", TZ, FUNC, "curry._should_curry",
        "        elif not is_valid_args(func, args, kwargs, sigspec):\n",
        "        elif is_valid_args(func, args, kwargs, sigspec):\n",
        (FUNC_TESTS, "-k", "curry"), "in-helper", "wrong operator: a missing not"),
    Bug("tz-countby-key", TZ, "toolz/recipes.py", "countby",
        "    return frequencies(map(key, seq))\n", "    return frequencies(seq)\n",
        ("toolz/tests/test_recipes.py", "-k", "countby"), "value", "missing call: the key is never applied"),
)

# --------------------------------------------------------------------------- the suites


def suite_tree(name: str) -> Path:
    """The unpacked pristine tree of ``name``, downloaded and unpacked on first use (pinned, hash-checked)."""
    version, sha256 = SUITES[name]
    tree = CACHE / f"{name}-{version}"
    if (tree / ".complete").exists():
        return tree
    CACHE.mkdir(parents=True, exist_ok=True)
    sdist = CACHE / f"{name}-{version}.tar.gz"
    if not sdist.exists():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        f"{name}=={version}", "-d", str(CACHE)], check=True, stdout=subprocess.DEVNULL)
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != sha256:
        raise SystemExit(f"{sdist}: sha256 {digest}, expected {sha256}")
    shutil.rmtree(tree, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as scratch, tarfile.open(sdist) as archive:
        archive.extractall(scratch, filter="data")
        (inner,) = Path(scratch).iterdir()
        inner.rename(tree)
    (tree / ".complete").write_text("")
    return tree


def apply_bug(tree: Path, bug: Bug) -> None:
    path = tree / bug.file
    text = path.read_text(encoding="utf-8")
    if text.count(bug.old) != 1:
        raise SystemExit(f"{bug.id}: the snippet occurs {text.count(bug.old)} times in {bug.file}")
    path.write_text(text.replace(bug.old, bug.new), encoding="utf-8")


# --------------------------------------------------------------------------- the runs

#: The recording plugin for the differential truth (see the module docstring).
CAPTURE = '''
import json, os, sys, unittest

import pytest

from model_runtime.sandbox.pytest_json_plugin import safe_repr

OUT = os.environ["ATTRIBUTION_CAPTURE"]
EVENTS = {}
_state = {"node": None, "seen": {}}

ONE = ("assertTrue", "assertFalse", "assertIsNone", "assertIsNotNone")
TWO = ("assertEqual", "assertNotEqual", "assertIs", "assertIsNot", "assertIn", "assertNotIn",
       "assertAlmostEqual", "assertNotAlmostEqual", "assertCountEqual", "assertListEqual",
       "assertTupleEqual", "assertDictEqual", "assertSetEqual", "assertSequenceEqual",
       "assertMultiLineEqual", "assertGreater", "assertGreaterEqual", "assertLess", "assertLessEqual")


def _where(depth):
    frame = sys._getframe(depth)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if not (name.startswith(("_pytest", "pluggy", "unittest")) or name == __name__):
            return os.path.relpath(frame.f_code.co_filename), frame.f_lineno  # the same in both trees
        frame = frame.f_back
    return None, None


def _event(kind, values):
    node = _state["node"]
    if node is None:
        return None
    path, line = _where(3)
    key = (path, line, kind)
    _state["seen"][key] = _state["seen"].get(key, 0) + 1
    event = {"kind": kind, "values": [safe_repr(v) for v in values], "path": path, "line": line,
             "k": _state["seen"][key], "failed": None}
    EVENTS.setdefault(node, []).append(event)
    return event


def pytest_runtest_logstart(nodeid, location):
    _state["node"], _state["seen"] = nodeid, {}


def pytest_assertrepr_compare(op, left, right):
    _event(op, (left, right))


def pytest_assertion_pass(item, lineno, orig, expl):
    for event in EVENTS.get(_state["node"], []):
        if event["failed"] is None and event["kind"] not in ONE + TWO:
            event["failed"] = False


def _wrap(name):
    original = getattr(unittest.TestCase, name)

    def wrapper(self, *args, **kwargs):
        if sys._getframe(1).f_globals.get("__unittest"):
            return original(self, *args, **kwargs)  # unittest delegating to itself
        if name == "assertCountEqual":
            args = tuple(list(a) for a in args[:2]) + args[2:]
        event = _event(name, args[:1] if name in ONE else args[:2])
        try:
            result = original(self, *args, **kwargs)
        except AssertionError:
            if event is not None:
                event["failed"] = True
            raise
        if event is not None:
            event["failed"] = False
        return result

    wrapper.__name__ = name
    setattr(unittest.TestCase, name, wrapper)


for _name in ONE + TWO:
    _wrap(_name)


def pytest_sessionfinish(session):
    with open(OUT, "w") as out:
        json.dump(EVENTS, out)
'''


def _env(*paths: Path, **variables: str) -> dict[str, str]:
    """This checkout's editseq first on the path (not whatever is installed), no bytecode written (a module
    rewritten without the pass hook must not be reused by a run with it), string hashing fixed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "EDITSEQ_"))}
    env["PYTHONPATH"] = os.pathsep.join(map(str, (REPO, *paths)))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONHASHSEED"] = "0"  # the same set and dict orders in the scored run and in the truth runs
    env.update(variables)
    return env


def run_editseq(tree: Path, bug: Bug) -> tuple[dict, float]:
    """The run under test: the report it wrote, and its wall time."""
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "pytest", "--editseq", "-q", "-p", "no:cacheprovider", *bug.tests],
                   cwd=tree, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    elapsed = time.monotonic() - start
    report = tree / ".editseq" / "pytest-report.json"
    return (json.loads(report.read_text()) if report.exists() else {"failures": [], "passed": []}), elapsed


def run_capture(tree: Path, nodeids: list[str], plugin_dir: Path) -> dict:
    """Every comparison and unittest assertion of these tests, with where it ran (truth runs, no editseq)."""
    out = plugin_dir / f"capture-{time.monotonic_ns()}.json"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:editseq",
                    "-p", "_attribution_capture", "-o", "enable_assertion_pass_hook=true",
                    *dict.fromkeys(nodeids)],
                   cwd=tree, env=_env(plugin_dir, ATTRIBUTION_CAPTURE=str(out)),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    return json.loads(out.read_text()) if out.exists() else {}


# --------------------------------------------------------------------------- scoring

CONDITION_OPS = {"!=", "<", "<=", ">", ">=", "in", "not in", "is not", "assertNotEqual", "assertIsNot",
                 "assertIn", "assertNotIn", "assertNotAlmostEqual", "assertGreater", "assertGreaterEqual",
                 "assertLess", "assertLessEqual"}
ONE_VALUE = {"assertTrue": "True", "assertFalse": "False", "assertIsNone": "None"}


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _same(a: str | None, b: str | None) -> bool:
    """Two reprs of one value from two processes: equal but for object addresses (``<object at 0x...>``)."""
    return a is not None and b is not None and _ADDRESS.sub(" at 0x", a) == _ADDRESS.sub(" at 0x", b)


def failing_event(events: list[dict]) -> dict | None:
    """The first assertion that failed: a unittest one marked failed, or a comparison never seen to pass."""
    for event in events:
        if event["failed"] is True or (event["failed"] is None and event["kind"] not in ONE_VALUE
                                       and not event["kind"].startswith("assert")):
            return event
    return None


def truth_of(buggy: list[dict], pristine: list[dict]) -> dict | None:
    """``{"kind", "actual", "expected"}`` of the first failing assertion, or ``None`` (none, undetermined)."""
    event = failing_event(buggy)
    if event is None:
        return None
    if event["kind"] in ONE_VALUE:
        return {"kind": event["kind"], "actual": event["values"][0], "expected": ONE_VALUE[event["kind"]]}
    if len(event["values"]) != 2:
        return None
    twin = next((e for e in pristine if (e["path"], e["line"], e["kind"], e["k"]) ==
                 (event["path"], event["line"], event["kind"], event["k"])), None)
    if twin is None:
        return {"kind": event["kind"], "undetermined": "no twin"}
    (left, right), (left0, right0) = event["values"], twin["values"]
    if _same(left, left0) and not _same(right, right0):
        return {"kind": event["kind"], "actual": right, "expected": left}
    if _same(right, right0) and not _same(left, left0):
        return {"kind": event["kind"], "actual": left, "expected": right}
    return {"kind": event["kind"], "undetermined": "both or neither changed"}


def values_right(failure: dict, truth: dict) -> bool:
    if not _same(failure.get("actual"), truth["actual"]) or failure.get("expected") is None:
        return False
    if truth["kind"] in CONDITION_OPS:
        return _ADDRESS.sub(" at 0x", truth["expected"]) in _ADDRESS.sub(" at 0x", failure["expected"])
    return _same(failure["expected"], truth["expected"])


@dataclass
class Outcome:
    bug: str
    failures: int = 0
    target_right: int = 0
    compared: int = 0  #: failures whose assertion is a comparison with a determined truth
    values_right: int = 0
    undetermined: int = 0
    named: dict = field(default_factory=dict)  #: target qualname -> count
    seconds: float = 0.0
    rows: list = field(default_factory=list)


def score(bug: Bug, report: dict, buggy: dict, pristine: dict) -> Outcome:
    outcome = Outcome(bug.id)
    for failure in report.get("failures", []):
        outcome.failures += 1
        right = failure.get("target_path") == bug.file and failure.get("target_function") == bug.function
        outcome.target_right += right
        named = failure.get("target_function") or "-"
        outcome.named[named] = outcome.named.get(named, 0) + 1
        truth = truth_of(buggy.get(failure["node_id"], []), pristine.get(failure["node_id"], []))
        ok = None
        if truth is not None and "undetermined" in truth:
            outcome.undetermined += 1
        elif truth is not None:
            outcome.compared += 1
            ok = values_right(failure, truth)
            outcome.values_right += ok
        outcome.rows.append({"node": failure["node_id"], "target": named, "target_right": right,
                             "expected": failure.get("expected"), "actual": failure.get("actual"),
                             "truth": truth, "values_right": ok})
    return outcome


COPY_IGNORE = shutil.ignore_patterns(".complete", "__pycache__", ".editseq")


def run_bug(bug: Bug, work: Path) -> Outcome:
    """Copy, break, run, and score one bug; ``work`` holds the capture plugin and a pristine copy per suite."""
    pristine = suite_tree(bug.suite)
    tree = work / bug.id
    shutil.copytree(pristine, tree, ignore=COPY_IGNORE)
    apply_bug(tree, bug)
    report, seconds = run_editseq(tree, bug)
    failing = [f["node_id"] for f in report.get("failures", [])]
    buggy = clean = {}
    if failing:
        buggy = run_capture(tree, failing, work)
        needs_twin = [n for n in failing if (e := failing_event(buggy.get(n, []))) and e["kind"] not in ONE_VALUE]
        if needs_twin:
            twin = work / f"pristine-{bug.suite}"
            if not twin.exists():  # only read by the capture runs (no bytecode, no report written)
                shutil.copytree(pristine, twin, ignore=COPY_IGNORE)
            clean = run_capture(twin, needs_twin, work)
    shutil.rmtree(tree, ignore_errors=True)
    outcome = score(bug, report, buggy, clean)
    outcome.seconds = seconds
    return outcome


# --------------------------------------------------------------------------- the table


def _share(right: int, total: int) -> str:
    return f"{right}/{total} ({100 * right / total:.0f}%)" if total else "-"


def print_table(bugs: list[Bug], outcomes: dict[str, Outcome], before: dict[str, dict] | None) -> None:
    head = f"{'bug':30} {'kind':13} {'function':26} {'fail':>4} {'target':>7} {'exp/act':>7}"
    if before is not None:
        head += f" {'target(before)':>14} {'exp/act(before)':>15}"
    print(head + "  named most")
    print("-" * len(head))
    totals = collections.Counter()
    old_totals = collections.Counter()
    for bug in bugs:
        o = outcomes[bug.id]
        named = max(o.named.items(), key=lambda kv: kv[1])[0] if o.named else "-"
        line = (f"{bug.id:30} {bug.kind:13} {bug.function:26} {o.failures:4d} "
                f"{f'{o.target_right}/{o.failures}':>7} {f'{o.values_right}/{o.compared}':>7}")
        if before is not None:
            b = before.get(bug.id)
            if b:
                old_target = f"{b['target_right']}/{b['failures']}"
                old_values = f"{b['values_right']}/{b['compared']}"
                line += f" {old_target:>14} {old_values:>15}"
                for key in ("failures", "target_right", "compared", "values_right", "undetermined"):
                    old_totals[key] += b[key]
            else:
                line += f" {'-':>14} {'-':>15}"
        print(line + "  " + named)
        for key in ("failures", "target_right", "compared", "values_right", "undetermined"):
            totals[key] += getattr(o, key)
        totals["bugs_failing"] += o.failures > 0
    print()
    print(f"bugs: {len(bugs)} ({totals['bugs_failing']} with failing tests), failures: {totals['failures']}, "
          f"with a comparison: {totals['compared']} (+{totals['undetermined']} undetermined, left out)")
    print(f"target right:          {_share(totals['target_right'], totals['failures'])}")
    print(f"expected/actual right: {_share(totals['values_right'], totals['compared'])}")
    if before is not None and old_totals:
        print(f"before: target right {_share(old_totals['target_right'], old_totals['failures'])}, "
              f"expected/actual right {_share(old_totals['values_right'], old_totals['compared'])}")
    by_kind = collections.defaultdict(collections.Counter)
    for bug in bugs:
        o = outcomes[bug.id]
        by_kind[bug.kind]["failures"] += o.failures
        by_kind[bug.kind]["right"] += o.target_right
    print("target right by kind:  " + ", ".join(
        f"{kind} {_share(c['right'], c['failures'])}" for kind, c in sorted(by_kind.items())))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", default=None, help="bug ids to run (default: all)")
    parser.add_argument("--save", type=Path, help="write the outcomes as JSON here")
    parser.add_argument("--before", type=Path, help="an earlier --save, shown side by side")
    parser.add_argument("--rows", action="store_true", help="also print every failure's row")
    parser.add_argument("--load", type=Path, help="print the table of an earlier --save instead of running")
    args = parser.parse_args(argv)
    bugs = [b for b in BUGS if args.only is None or b.id in args.only]
    if len({b.id for b in BUGS}) != len(BUGS):
        raise SystemExit("duplicate bug ids")
    before = json.loads(args.before.read_text()) if args.before else None
    if args.load:
        saved = json.loads(args.load.read_text())
        print_table([b for b in bugs if b.id in saved], {k: Outcome(**v) for k, v in saved.items()}, before)
        return 0
    for name in sorted({b.suite for b in bugs}):
        suite_tree(name)
    started = time.monotonic()
    outcomes: dict[str, Outcome] = {}
    with tempfile.TemporaryDirectory(prefix="editseq-attribution-") as scratch:
        work = Path(scratch)
        (work / "_attribution_capture.py").write_text(textwrap.dedent(CAPTURE))
        for bug in bugs:
            outcomes[bug.id] = run_bug(bug, work)
            if args.rows:
                for row in outcomes[bug.id].rows:
                    print(f"  {bug.id}: {json.dumps(row)}")
    print_table(bugs, outcomes, before)
    print(f"time: {time.monotonic() - started:.0f} s ({len(bugs)} bugs; editseq runs "
          f"{sum(o.seconds for o in outcomes.values()):.0f} s)")
    if args.save:
        args.save.write_text(json.dumps({k: asdict(v) for k, v in outcomes.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
