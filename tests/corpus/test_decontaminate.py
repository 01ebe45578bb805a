"""HumanEval decontamination by shared word n-grams (model_runtime.corpus.decontaminate)."""

import sysconfig
from pathlib import Path

import pytest

from model_runtime.corpus.decontaminate import DEFAULT_NGRAM, Decontaminator, word_tokens
from model_runtime.evaluation.problems import load_problems


@pytest.fixture(scope="module")
def humaneval():
    return Decontaminator.humaneval()


def test_planted_solution_is_caught(humaneval):
    problem = load_problems(task_ids=["HumanEval/0"])[0]
    planted = "import os\n\n\n" + problem.prompt + problem.canonical_solution + "\n\nprint(os.sep)\n"
    assert humaneval.match(planted) is not None
    # reformatting does not hide it: tokens are words, layout and punctuation are ignored
    squashed = " ".join(problem.canonical_solution.split()).replace("(", " ( ")
    assert humaneval.contaminated("x = 1", problem.prompt.replace("    ", "\t") + squashed)


def test_solution_body_alone_is_caught(humaneval):
    # HumanEval/12's body is long enough on its own
    problem = load_problems(task_ids=["HumanEval/12"])[0]
    assert len(word_tokens(problem.canonical_solution)) >= DEFAULT_NGRAM
    assert humaneval.match("def longest_string(xs):\n" + problem.canonical_solution) is not None


def test_boilerplate_imports_are_not_a_hit(humaneval):
    boilerplate = "from typing import List, Tuple, Optional, Any\nimport math\nimport hashlib\n\n\n"
    code = boilerplate + "def total(numbers: List[float]) -> float:\n    return math.fsum(numbers)\n"
    assert humaneval.match(code) is None


@pytest.mark.parametrize("module", ["textwrap.py", "heapq.py", "fractions.py", "statistics.py", "json/encoder.py"])
def test_ordinary_stdlib_code_is_kept(humaneval, module):
    text = (Path(sysconfig.get_paths()["stdlib"]) / module).read_text(encoding="utf-8")
    assert humaneval.match(text) is None


def test_custom_references_and_short_ngrams():
    small = Decontaminator(["alpha beta gamma delta"], n=3)
    assert small.match("x = alpha.beta(gamma)") == "alpha beta gamma"
    assert small.match("alpha beta, delta gamma") is None
    with pytest.raises(ValueError):
        Decontaminator([], n=0)
