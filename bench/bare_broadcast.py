"""The bare baseline of `bench_push.py`: python-socketio broadcast, nothing else.

A minimal `AsyncServer` on uvicorn, configured like signwatch's (ASGI mode,
`always_connect`, the same uvicorn options), with no watcher, store, queue or
rooms. `POST /emit` with a status object as the body broadcasts it as a `status`
event to every connected client and answers `{"t_send": ...}`, the monotonic
time just before the library's `emit` was called.

The helpers here (`create_sio`, `answer`, `run`) are shared with
`awatch_broadcast.py`, so both baselines serve Socket.IO the same way.

Usage:
    .venv/bin/python bench/bare_broadcast.py --port 8123
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
import uvicorn

Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def create_sio() -> socketio.AsyncServer:
    """An AsyncServer with the options of signwatch's `create_socketio`."""
    return socketio.AsyncServer(
        async_mode="asgi", always_connect=True, logger=False, engineio_logger=False
    )


async def answer(send: Any, code: int, document: dict[str, Any]) -> None:
    """Send `document` as a JSON response."""
    body = json.dumps(document).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def serve_lifespan(
    receive: Any,
    send: Any,
    on_startup: Callable[[], Awaitable[None]] | None = None,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Answer the ASGI lifespan messages, running the hooks given."""
    while (await receive())["type"] == "lifespan.startup":
        if on_startup is not None:
            await on_startup()
        await send({"type": "lifespan.startup.complete"})
    if on_shutdown is not None:
        await on_shutdown()
    await send({"type": "lifespan.shutdown.complete"})


def run(app: Asgi, host: str, port: int) -> None:
    """Serve `app` with the options of signwatch's own `uvicorn.run` (server/cli.py)."""
    uvicorn.run(
        app, host=host, port=port, log_level="warning", lifespan="on",
        ws_max_size=1024**2,
    )  # fmt: skip


def trigger_app(sio: socketio.AsyncServer) -> Asgi:
    """Everything that is not Socket.IO: `POST /emit`, `GET /healthz`, lifespan."""
    tasks: set[asyncio.Task[None]] = set()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
        elif scope["path"] == "/emit" and scope["method"] == "POST":
            status = json.loads(await _read_body(receive))
            t_send = time.monotonic()
            # Like signwatch's sender task, nobody waits for the emit to finish.
            task = asyncio.create_task(sio.emit("status", status))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            await answer(send, 200, {"t_send": t_send})
        elif scope["path"] == "/healthz":
            await answer(send, 200, {"ok": True})
        else:
            await answer(send, 404, {"error": "not found"})

    return app


async def _read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    sio = create_sio()
    app = socketio.ASGIApp(
        sio, other_asgi_app=trigger_app(sio), socketio_path="socket.io"
    )
    run(app, args.host, args.port)


if __name__ == "__main__":
    main()
