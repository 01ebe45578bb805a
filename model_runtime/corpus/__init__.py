"""The offline training corpus: instruction/program pairs, whole files and problems with tests.

Holds :mod:`.build` (``editseq corpus``: sources, filters, counts),
:mod:`.repo` (pairs from a repository's own code), :mod:`.doctest_problems`
(HumanEval-schema problems from doctests, validated in the sandbox),
:mod:`.dedup` (exact and MinHash near duplicates), :mod:`.decontaminate`
(dropping text that shares a long n-gram with HumanEval) and :mod:`.bugs`
(synthetic bugs of the kept functions as CYCLE repair rows, ``--bugs K``).

May import: ``edits``, ``lintseq``, ``prompting`` (the instruction builder and feedback),
``evaluation`` (the problem schema and executor), ``errors``.
"""
