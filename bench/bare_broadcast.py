"""The bare baseline of `bench_push.py`: python-socketio broadcast, nothing else.

A minimal `AsyncServer` on uvicorn, configured like signwatch's (ASGI mode,
`always_connect`, the same uvicorn options), with no watcher, store, queue or
rooms. `POST /emit` with a status object as the body broadcasts it as a `status`
event to every connected client and answers `{"t_send": ...}`, the monotonic
time just before the library's `emit` was called.

Usage:
    .venv/bin/python bench/bare_broadcast.py --port 8123
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import socketio
import uvicorn

sio = socketio.AsyncServer(
    async_mode="asgi", always_connect=True, logger=False, engineio_logger=False
)
_tasks: set[asyncio.Task[None]] = set()


async def trigger_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Everything that is not Socket.IO: `POST /emit`, `GET /healthz`, lifespan."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/emit" and scope["method"] == "POST":
        status = json.loads(await _read_body(receive))
        t_send = time.monotonic()
        # Like signwatch's sender task, nobody waits for the emit to finish.
        task = asyncio.create_task(sio.emit("status", status))
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)
        await _answer(send, 200, {"t_send": t_send})
    elif scope["path"] == "/healthz":
        await _answer(send, 200, {"ok": True})
    else:
        await _answer(send, 404, {"error": "not found"})


async def _read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def _answer(send: Any, code: int, document: dict[str, Any]) -> None:
    body = json.dumps(document).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = socketio.ASGIApp(sio, other_asgi_app=trigger_app, socketio_path="socket.io")
    # The options of signwatch's own `uvicorn.run` (server/cli.py).
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        lifespan="on",
        ws_max_size=1024**2,
    )


if __name__ == "__main__":
    main()
