"""``editseq serve`` when the client leaves: the protocol's exit codes, and nothing left running.

Before: ``exit`` without ``shutdown`` and a plain end of input both ended with status 0, and a run in
progress went on to its natural end.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _message(obj: dict) -> bytes:
    body = json.dumps(obj).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


START = (_message({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                   "params": {"processId": None, "rootUri": None, "capabilities": {}}})
         + _message({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
SHUTDOWN = _message({"jsonrpc": "2.0", "id": 2, "method": "shutdown"})
EXIT = _message({"jsonrpc": "2.0", "method": "exit"})


@pytest.mark.parametrize(("tail", "status"), [(SHUTDOWN + EXIT, 0), (EXIT, 1), (b"", 1)],
                         ids=["shutdown-then-exit", "exit-without-shutdown", "end-of-input"])
def test_the_exit_status_says_whether_the_client_shut_the_server_down(tail, status):
    done = subprocess.run([sys.executable, "-m", "model_runtime.cli", "serve"], input=START + tail,
                          capture_output=True, timeout=60)
    assert done.returncode == status, done.stderr.decode()[-2000:]
