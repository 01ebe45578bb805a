"""The run seam: the one way a front end runs the engine.

Holds :class:`~.config.RunConfig` (backend, sampling, budget, sandbox limits,
interpreter, time budget: everything one write or refine run needs) and
:mod:`.engine` (open the backend, make the sandbox, run write or refine, write
a verified result only if the file is unchanged). The CLI, the pytest plugin
and the language server build a ``RunConfig`` from their own options and call
these functions; none of them assembles a backend, a sandbox or a budget.

May import: ``defaults``, ``errors``, ``backends``, ``sandbox``, ``refine``.
Imported by the front ends (``cli``, ``pytest_plugin``, ``lsp_server``) and by
``evaluation``, whose repair benchmark runs exactly what ``editseq refine`` runs.
"""
