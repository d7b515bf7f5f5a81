"""Shared fixtures of the data tests: a local HTTP file server on 127.0.0.1 with Range support (no network)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest


@dataclass
class Served:
    """Files by path, the requests seen (path, Range header), and switches for misbehaving servers."""

    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    honour_range: bool = True
    base: str = ""

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"


def _handler(served: Served) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            served.requests.append((self.path, self.headers.get("Range")))
            body = served.files.get(self.path)
            if body is None:
                self.send_error(404, "Not Found")
                return
            start, status = 0, 200
            ranged = self.headers.get("Range")
            if ranged and served.honour_range:
                start = int(ranged.removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    self.send_error(416, "Range Not Satisfiable")
                    return
                status = 206
            self.send_response(status)
            self.send_header("Content-Length", str(len(body) - start))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.end_headers()
            self.wfile.write(body[start:])

    return Handler


@pytest.fixture
def http_server() -> Iterator[Served]:
    served = Served()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    served.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
