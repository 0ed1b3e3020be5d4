"""Benchmark: a render of 12 requests against a dead Kling host: time to stop and requests sent.

Why: with the host refusing connections, or accepting them and never answering (a black hole),
every request used to wait out its own connects, read timeouts and back-offs one after another
(issue 16: 430 s and 132 attempts refused, 1,344 s black hole). The engine's health signal stops
the whole run after a few failures; this measures both faults the same way, for any checkout:

    PYTHONPATH=. /work/venv/bin/python benchmarks/dead_host.py refused
    PYTHONPATH=. /work/venv/bin/python benchmarks/dead_host.py blackhole
    PYTHONPATH=/path/to/old/checkout /work/venv/bin/python benchmarks/dead_host.py refused --cap 900

In-process (the pipeline's ``render_async`` with the real Kling client, real sockets, real sleeps);
the client's transport counts every HTTP request it starts. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

SHOTS = 12


class CountingTransport(httpx.AsyncBaseTransport):
    """The real transport, counting the requests started through it."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.started = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.started += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def refused_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def black_hole() -> tuple[int, list[socket.socket]]:
    """A loopback port that accepts connections and never answers (holds them open)."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(256)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            held.append(connection)

    threading.Thread(target=accept, daemon=True).start()
    return server.getsockname()[1], held


def write_project(folder: Path) -> Path:
    shots = "\n".join(f"  - id: s{n:02d}\n    duration: 3\n    subject: harbour scene {n}\n    action: boats drift"
                      for n in range(SHOTS))
    (folder / "storyboard.yaml").write_text(
        "version: 1\nname: Dead host\ndefaults:\n  model: kling-v3\n  mode: std\n  aspect_ratio: \"16:9\"\n"
        f"  strategy: per_shot\nshots:\n{shots}\n")
    return folder


async def measure(kind: str, cap: float) -> dict:
    from storyboard import pipeline

    if kind == "refused":
        port, held = refused_port(), []
    else:
        port, held = black_hole()
    os.environ.update({"KLINGAI_ACCESS_KEY": "ak-benchmark", "KLINGAI_SECRET_KEY": "sk-benchmark",
                       "KLINGAI_BASE_URL": f"http://127.0.0.1:{port}"})
    os.environ.pop("KLINGAI_API_KEY", None)
    transport = CountingTransport()
    with tempfile.TemporaryDirectory() as tmp:
        work, _ = pipeline.load_project(write_project(Path(tmp)))
        started = time.monotonic()
        outcome = "finished"
        try:
            result = await asyncio.wait_for(pipeline.render_async(
                work, provider="kling", confirm=lambda quote: True, provider_options={"transport": transport}), cap)
            outcome = f"finished: {len(result.result.failed)} failed, {len(result.result.skipped)} skipped"
        except TimeoutError:
            outcome = f"still running at the cap ({cap:g} s)"
        except Exception as error:  # the benchmark reports whatever stopped the run
            outcome = f"{type(error).__name__}: {str(error).splitlines()[0]}"
        seconds = time.monotonic() - started
    return {"fault": kind, "requests": SHOTS, "seconds_to_stop": round(seconds, 1),
            "http_requests_started": transport.started, "connections_accepted": len(held) if kind != "refused" else None,
            "outcome": outcome, "storyboard": sys.modules["storyboard"].__file__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("refused", "blackhole"))
    parser.add_argument("--cap", type=float, default=1800.0, help="stop measuring after this many seconds")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.kind, args.cap))), flush=True)


if __name__ == "__main__":
    main()
