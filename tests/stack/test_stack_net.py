"""The sample stack's HTTP client: every way a peer can fail is a FetchError, so a service
polling a dependency that stops mid-answer keeps polling instead of dying (the pool did)."""

from __future__ import annotations

import socket
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "stack"))
from stacklib.net import FetchError, fetch_json


def test_a_peer_that_closes_mid_body_is_a_fetch_error() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)

        def answer_half() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 128\r\n\r\n{")

        peer = threading.Thread(target=answer_half)
        peer.start()
        with pytest.raises(FetchError):
            fetch_json(f"http://127.0.0.1:{server.getsockname()[1]}/info", timeout=5)
        peer.join(timeout=5)
