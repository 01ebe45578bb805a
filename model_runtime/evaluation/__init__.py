"""Measuring models: problems with tests, pass@k, one-shot against refine, reports.

Holds :mod:`.problems` (HumanEval-schema problems, running a program against
a problem's tests in the sandbox, the pass@k estimator; the corpus and CYCLE
collection use it too), :mod:`.run` (sampling and refine chains at an equal
sample budget) and :mod:`.report` (``summary.json``, results, table, plot).

May import: ``refine``, ``prompting``, ``backends``, ``sandbox``, ``defaults``.
"""
