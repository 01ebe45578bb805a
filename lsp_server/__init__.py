"""editseq's language server: the protocol layer only.

Handlers, settings, progress and diagnostics live here and call
:mod:`model_runtime` for every piece of real work; no algorithm belongs in
this package. Start it with ``editseq serve`` (:func:`lsp_server.server.build_server`).

The modules:

* ``server``: :func:`~lsp_server.server.build_server`, where every handler is registered;
* ``lifecycle``, ``actions``: the handlers, small module-level functions by feature;
* ``state``: :class:`~lsp_server.state.EditseqServer`, the ``ls`` every handler gets;
* ``protocol``: command names, code action kinds, ``editseq/status``, the
  ``editseq: `` prefix of every message, and the JSON-RPC protocol class;
* ``settings``: the typed settings, their sources, and the engine's ``RunConfig`` made from them;
* ``model_host``: the backend, opened once per model in its own thread, with a status;
* ``runs``: one run (request, engine call, progress text, outcome);
* ``runbook``: the runs in flight and finished, their staleness and their step edits;
* ``edits``: a finished run's steps as LSP edits, titles and ghost text;
* ``diagnostics``: the pytest failure report, watched and published as diagnostics.

May import from the engine: :mod:`model_runtime.run` (the run seam: ``RunConfig``,
``open_backend``, ``refine``, ``write``), :mod:`model_runtime.defaults`,
:mod:`model_runtime.errors`, :mod:`model_runtime.edits` (step edits, code map)
and :mod:`model_runtime.sandbox.failure_report`; never the engine's internals
(backends, refine loop, sandbox runner, prompts). Nothing in ``model_runtime``
imports this package except the ``editseq serve`` command.
"""
