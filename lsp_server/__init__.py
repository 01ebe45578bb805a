"""editseq's language server: the protocol layer only.

Handlers, settings, progress and diagnostics live here and call
:mod:`model_runtime` for every piece of real work; no algorithm belongs in
this package. Start it with ``editseq serve`` (:mod:`lsp_server.server`).
"""
