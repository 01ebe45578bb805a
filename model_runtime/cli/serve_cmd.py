"""``editseq serve``: the language server, over stdio (default) or TCP.

``--stdio`` is accepted and ignored: VS Code's ``TransportKind.stdio`` appends
it, and an unknown argument would kill the server (clients.md §4.5). The
server is imported in the handler so that ``editseq --help`` stays fast.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("serve", help="run the language server (stdio by default)",
                            description="Run the editseq language server for editors.")
    parser.add_argument("--stdio", action="store_true", help="use stdio (the default; accepted for clients)")
    parser.add_argument("--tcp", action="store_true", help="listen on TCP instead of stdio")
    parser.add_argument("--host", default="127.0.0.1", help="TCP host (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=2087, help="TCP port (default: 2087)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Serve until the client leaves, then end the process: status 0 only after a ``shutdown`` request
    (the protocol's rule), 1 when the client exited without one or its input simply ended. Runs never
    outlive the session. Does not return (``os._exit`` after the runs are stopped: see below)."""
    import contextlib
    import logging
    import os
    import sys

    from lsp_server.lifecycle import stop
    from lsp_server.protocol import BoundedInput
    from lsp_server.server import build_server

    # The server's own log (runs started and ended, failures) on stderr, which clients show as the
    # server's output; pygls's chatter stays at its default (warnings only).
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("editseq %(levelname)s: %(message)s"))
    ours = logging.getLogger("lsp_server")
    ours.setLevel(logging.INFO)
    ours.addHandler(handler)
    server = build_server()
    try:
        if args.tcp:
            server.start_tcp(args.host, args.port)
        else:
            server.start_io(stdin=BoundedInput(sys.stdin.buffer))
    except SystemExit:  # pygls's own exit handling
        pass
    finally:
        stop(server)
    code = 0 if server.shutdown_received else 1
    # The runs were cancelled: let their workers kill their test processes (a fraction of a second),
    # then leave without the interpreter's teardown of torch (0.7 s with a model loaded), after which
    # eglot, waiting 0.1 s, killed the server. Nothing is left to write: files change only through edits.
    server.runs.close(wait_seconds=3.0)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # pygls may have closed stdout already
            stream.flush()
    os._exit(code)
