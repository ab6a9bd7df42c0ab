"""The awatch baseline of `bench_push.py`: watchfiles plus a bare broadcast.

One watchfiles `awatch` over a recordings root, with the debounce and step that
signwatch's watcher uses (`--step-ms`, both set to it) and, like signwatch's, a
Python filter, a stop event and `recursive=True`. For every changed
`<root>/<id>/status.json` it reads the file and broadcasts its JSON as a
`status` event to every client with a plain `sio.emit`: no store, no hub, no
queue, no rooms, no coalescing. Timed from the writer's `os.replace`, it is the
floor that python-socketio plus watchfiles set; signwatch's latency over it is
signwatch's own code.

Usage:
    .venv/bin/python bench/awatch_broadcast.py --port 8124 --root DIR --step-ms 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import socketio
from bare_broadcast import Asgi, answer, create_sio, run, serve_lifespan
from watchfiles import Change, awatch

logger = logging.getLogger("bench.awatch")

STATUS_FILE = "status.json"


def _is_status(change: Change, path: str) -> bool:
    return os.path.basename(path) == STATUS_FILE


async def broadcast_changes(
    sio: socketio.AsyncServer, root: Path, step_ms: int, stop: asyncio.Event
) -> None:
    """Emit every changed status file under `root` until `stop` is set."""
    async for changes in awatch(
        root,
        watch_filter=_is_status,
        debounce=step_ms,
        step=step_ms,
        stop_event=stop,
        recursive=True,
        ignore_permission_denied=True,
    ):
        # One os.replace may show up as both `added` and `modified`.
        for path in {path for _change, path in changes}:
            try:
                status = json.loads(Path(path).read_bytes())
            except (OSError, ValueError):
                continue
            await sio.emit("status", status)


def watch_app(sio: socketio.AsyncServer, root: Path, step_ms: int) -> Asgi:
    """`GET /healthz`, and a lifespan that runs `broadcast_changes`."""
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    async def startup() -> None:
        tasks.append(asyncio.create_task(broadcast_changes(sio, root, step_ms, stop)))

    async def shutdown() -> None:
        stop.set()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send, startup, shutdown)
        elif scope["path"] == "/healthz":
            await answer(send, 200, {"ok": True})
        else:
            await answer(send, 404, {"error": "not found"})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument(
        "--step-ms", type=int, default=10, help="watchfiles debounce and step"
    )
    args = parser.parse_args()
    if not args.root.is_dir():
        parser.error(f"--root must be an existing folder, got {str(args.root)!r}")
    sio = create_sio()
    app = socketio.ASGIApp(
        sio, other_asgi_app=watch_app(sio, args.root, args.step_ms),
        socketio_path="socket.io",
    )  # fmt: skip
    run(app, args.host, args.port)


if __name__ == "__main__":
    main()
