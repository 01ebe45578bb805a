"""``editseq serve`` and the session's rules: the exit codes, and requests outside the session.

Before: ``exit`` without ``shutdown`` and a plain end of input both ended with status 0 (and a run in
progress went on to its natural end); a request before ``initialize`` got an internal error with a
traceback, a second ``initialize`` was accepted, a request with unfitting params and any request
after ``shutdown`` were never answered.
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


def _responses(stdout: bytes) -> dict:
    """The JSON-RPC responses in a stdio transcript, by id."""
    out, rest = {}, stdout
    while b"Content-Length:" in rest:
        head, _, rest = rest.partition(b"\r\n\r\n")
        length = int(head.split(b"Content-Length:")[1].split(b"\r\n")[0])
        body, rest = json.loads(rest[:length]), rest[length:]
        if "id" in body and "method" not in body:
            out[body["id"]] = body
    return out


def test_requests_outside_the_session_get_the_protocols_errors():
    hover = {"textDocument": {"uri": "file:///x.py"}, "position": {"line": 0, "character": 0}}
    session = (_message({"jsonrpc": "2.0", "id": 10, "method": "textDocument/hover", "params": hover})
               + START
               + _message({"jsonrpc": "2.0", "id": 11, "method": "initialize",
                           "params": {"processId": None, "rootUri": None, "capabilities": {}}})
               + _message({"jsonrpc": "2.0", "id": 13, "method": "textDocument/codeAction", "params": {}})
               + SHUTDOWN
               + _message({"jsonrpc": "2.0", "id": 12, "method": "textDocument/hover", "params": hover})
               + EXIT)
    done = subprocess.run([sys.executable, "-m", "model_runtime.cli", "serve"], input=session,
                          capture_output=True, timeout=60)
    answers = _responses(done.stdout)
    assert answers[10]["error"]["code"] == -32002  # before initialize: ServerNotInitialized
    assert "result" in answers[1] and answers[11]["error"]["code"] == -32600  # a second initialize
    assert answers[13]["error"]["code"] == -32602  # params that do not fit: answered, not dropped
    assert answers[12]["error"]["code"] == -32600 and "after shutdown" in answers[12]["error"]["message"]
    assert done.returncode == 0


def test_positions_outside_what_lsp_allows_are_answered_with_an_error():
    bad = [{"start": {"line": -1, "character": 0}, "end": {"line": 0, "character": 0}},
           {"start": {"line": 2**31, "character": 0}, "end": {"line": 2**31, "character": 0}}]
    requests = b"".join(
        _message({"jsonrpc": "2.0", "id": 20 + i, "method": "textDocument/codeAction",
                  "params": {"textDocument": {"uri": "file:///x.py"}, "range": where, "context": {"diagnostics": []}}})
        for i, where in enumerate(bad))
    done = subprocess.run([sys.executable, "-m", "model_runtime.cli", "serve"], input=START + requests + SHUTDOWN + EXIT,
                          capture_output=True, timeout=60)
    answers = _responses(done.stdout)
    assert answers[20]["error"]["code"] == answers[21]["error"]["code"] == -32602
    assert done.returncode == 0


def test_a_message_claiming_a_terabyte_closes_the_connection_instead_of_crashing():
    huge = b"Content-Length: 1000000000000\r\n\r\n{}"
    done = subprocess.run([sys.executable, "-m", "model_runtime.cli", "serve"], input=START + huge,
                          capture_output=True, timeout=60)
    assert done.returncode == 1 and b"MemoryError" not in done.stderr
    assert b"closing the connection" in done.stderr
    assert 1 in _responses(done.stdout)  # everything before it was served


def test_nothing_stays_behind_for_a_closed_document():
    """pygls kept every notification's future: about 4 KB per opened-and-closed document."""
    import os
    import select

    server = subprocess.Popen([sys.executable, "-m", "model_runtime.cli", "serve"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    text = "def f(x):\n    return x\n" * 50

    def documents(start: int, count: int, probe: int) -> None:
        for i in range(start, start + count):
            uri = f"file:///tmp/editseq-leak-{i}.py"
            server.stdin.write(_message({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {
                "textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}}}))
            server.stdin.write(_message({"jsonrpc": "2.0", "method": "textDocument/didClose",
                                         "params": {"textDocument": {"uri": uri}}}))
        server.stdin.write(_message({"jsonrpc": "2.0", "id": probe, "method": "workspace/executeCommand",
                                     "params": {"command": "no-such-command"}}))
        server.stdin.flush()
        seen = b""
        while f'"id": {probe}'.encode() not in seen:  # every message before the probe is handled
            ready, _, _ = select.select([server.stdout], [], [], 60)
            assert ready, "the server stopped answering"
            seen += os.read(server.stdout.fileno(), 1 << 16)

    def resident_kb() -> int:
        return int(open(f"/proc/{server.pid}/status").read().split("VmRSS:")[1].split()[0])

    try:
        server.stdin.write(START)
        documents(0, 500, 900)
        before = resident_kb()
        documents(500, 3000, 901)
        assert (resident_kb() - before) / 3000 < 1.0  # KB per document (it was 4.3)
    finally:
        server.kill()
        server.wait()
