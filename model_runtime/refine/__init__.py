"""The CYCLE loop: propose, apply in the sandbox, run the tests, show the failure, repeat.

Holds :mod:`.target` (the function being repaired and how a new version goes
back into its file), :mod:`.loop` (the refine loop and its budget),
:mod:`.write` (writing an empty function edit by edit) and :mod:`.events`
(what the loop reports while it runs, and its result).

May import: ``prompting``, ``backends``, ``sandbox``, ``edits``, ``lintseq`` (linters), ``defaults``, ``errors``.
Front ends do not call it directly: they go through ``run``.
"""
