"""Serve a :class:`~tests.fakes.kling.FakeKling` over real HTTP on loopback.

Why: end-to-end tests run the real CLI in a subprocess, which cannot take an in-process
``httpx.MockTransport``; pointing ``KLINGAI_BASE_URL`` at this server exercises the real HTTP stack
(connection handling, timeouts, streaming downloads) against the same fake state the test asserts on.
Result URLs then point at ``<base_url>/cdn/videos/...`` on this same server. Both of Kling's APIs
are served on that one host from the one fake account: the legacy ``/v1/...`` routes and the
new-standard ones (``/text-to-video/{model}``, ``GET /tasks``..., ``tests/fakes/kling_standard.py``),
so one ``KLINGAI_BASE_URL`` serves a storyboard that mixes them.

Network faults map to what a client sees on a real socket: ``drop_before_create`` and
``drop_after_create`` close the connection without an answer (httpx raises RemoteProtocolError);
``slow_download`` sleeps ``Fault.seconds`` before answering.

Manual use: ``python -m tests.fakes.server --port 8765`` (prints the base URL and a token).
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from tests.fakes.kling import FakeKling

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


def _make_handler(fake: FakeKling) -> type[BaseHTTPRequestHandler]:
    class FakeKlingRequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            host = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.server_address[1]}"
            request = httpx.Request(self.command, f"http://{host}{self.path}",
                                    headers=list(self.headers.items()), content=body)
            try:
                response = fake.handle(request)
            except httpx.TransportError:
                # A scripted network fault: hang up without answering.
                self.close_connection = True
                return
            slow = response.extensions.get("fake_slow_seconds")
            if slow:
                time.sleep(float(slow))
            content = response.read()
            truncated = bool(response.extensions.get("fake_truncated"))
            self.send_response(response.status_code)
            for name, value in response.headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value)
            announced = response.headers["content-length"] if truncated else str(len(content))
            self.send_header("Content-Length", announced)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(content)
            if truncated:  # the announced length never arrives: hang up mid-body
                self.wfile.flush()
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve

        def log_message(self, format: str, *args: object) -> None:
            """Silent: request lines would carry query strings into test output."""

    return FakeKlingRequestHandler


@contextlib.contextmanager
def serve(fake: FakeKling, *, port: int = 0) -> Iterator[str]:
    """Run ``fake`` on 127.0.0.1 (ephemeral port by default) in a daemon thread; yield its base URL.

    While serving, the fake's result URLs point at ``<base_url>/cdn``; both are restored on exit.
    """
    server = ThreadingHTTPServer(("127.0.0.1", port), _make_handler(fake))
    server.daemon_threads = True
    host, bound_port = server.server_address[0], server.server_address[1]
    base_url = f"http://{host}:{bound_port}"
    previous_cdn = fake.cdn_base_url
    fake.cdn_base_url = f"{base_url}/cdn"
    loopback_hosts = {host, "localhost"} - fake.extra_hosts
    fake.extra_hosts |= loopback_hosts
    thread = threading.Thread(target=server.serve_forever, name=f"fake-kling-{bound_port}", daemon=True)
    thread.start()
    try:
        yield base_url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        fake.cdn_base_url = previous_cdn
        fake.extra_hosts -= loopback_hosts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fake Kling API on 127.0.0.1 for manual testing.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--polls", type=int, default=2, help="queries until a task finishes")
    args = parser.parse_args(argv)
    fake = FakeKling(polls_to_finish=args.polls)
    with serve(fake, port=args.port) as base_url:
        print(f"fake Kling at {base_url}  (KLINGAI_BASE_URL={base_url})")
        print(f"access key {fake.access_key}; static API key {fake.api_keys[0]} (the new-standard API takes only this)")
        print("Ctrl-C to stop")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
