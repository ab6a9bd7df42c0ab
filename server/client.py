"""A Python client for scripts and services: upload, then follow events.

Example:
    async with EventStream("http://127.0.0.1:8000") as stream:
        async for event in stream:
            print(event.name, event.data)

The stream keeps the last `seq` of every recording it has seen; after a drop,
python-socketio reconnects and the server sends only what was missed.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from .errors import SignwatchError
from .recordings import FINAL_STATES, Status

DEFAULT_URL = "http://127.0.0.1:8000"
_CHUNK = 256 * 1024


class ClientError(SignwatchError):
    """The server refused a request or could not be reached."""


@dataclass(frozen=True)
class Event:
    """One event from the server: `snapshot`, `status`, `removed`, `resumed`,
    or the client-side `connected` / `disconnected`."""

    name: str
    data: Any


class EventStream:
    """Connects to a signwatch server and yields its events in order.

    Args:
        url: the server's base URL.
        only: follow just these recordings (their rooms) instead of all.
    """

    def __init__(self, url: str = DEFAULT_URL, only: list[str] | None = None) -> None:
        self.url = url.rstrip("/")
        self.only = list(only or [])
        self.recordings: dict[str, Status] = {}
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._sio = socketio.AsyncClient(
            reconnection=True, reconnection_delay=0.5, reconnection_delay_max=5
        )
        for name in ("snapshot", "status", "removed", "resumed"):
            self._sio.on(name, self._handler(name))
        self._sio.on(
            "connect", lambda: self._queue.put_nowait(Event("connected", None))
        )
        self._sio.on("disconnect", self._on_disconnect)

    async def __aenter__(self) -> EventStream:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def connect(self) -> None:
        """Connect (WebSocket first, long-polling if that fails)."""
        try:
            await self._sio.connect(self.url, auth=self._auth, wait_timeout=10)
        except socketio.exceptions.ConnectionError as exc:
            raise ClientError(f"Cannot connect to {self.url!r}: {exc}") from exc
        for rec_id in self.only:
            await self.subscribe(rec_id)

    async def subscribe(self, rec_id: str) -> Status:
        """Join one recording's room; return its current status."""
        ack = await self._sio.call("subscribe", {"id": rec_id}, timeout=10)
        if not ack.get("ok"):
            raise ClientError(ack.get("error") or f"Cannot follow {rec_id!r}.")
        status: Status = ack["status"]
        self._remember(status)
        return status

    async def close(self) -> None:
        """Disconnect for good."""
        await self._sio.disconnect()

    def _auth(self) -> dict[str, Any]:
        # Called on every (re)connection, so the server sees what we have now.
        auth: dict[str, Any] = {}
        if self.only:
            auth["all"] = False
            auth["seqs"] = {
                r: self.recordings[r]["seq"] for r in self.only if r in self.recordings
            }
        elif self.recordings:
            auth["seqs"] = {r: s["seq"] for r, s in self.recordings.items()}
        return auth

    def _handler(self, name: str) -> Callable[[Any], None]:
        def handle(data: Any) -> None:
            if name == "snapshot":
                self.recordings = {s["id"]: s for s in data["recordings"]}
            elif name == "status":
                self._remember(data)
            elif name == "removed":
                self.recordings.pop(data["id"], None)
            self._queue.put_nowait(Event(name, data))

        return handle

    def _remember(self, status: Status) -> None:
        held = self.recordings.get(status["id"])
        if held is None or held["seq"] <= status["seq"]:
            self.recordings[status["id"]] = status

    def _on_disconnect(self, reason: Any = None) -> None:
        self._queue.put_nowait(Event("disconnected", str(reason) if reason else None))

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            yield await self._queue.get()


async def upload(
    url: str,
    path: Path,
    options: dict[str, Any] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> Status:
    """Stream a file to `POST /api/recordings`; return the new recording's status.

    Raises:
        ClientError: the file is missing or the server refused it (with its message).
    """
    if not path.is_file():
        raise ClientError(f"No such file: {str(path)!r}.")
    boundary = uuid.uuid4().hex
    head, tail = _multipart_frame(boundary, path, options or {})
    size = path.stat().st_size
    total = len(head) + size + len(tail)

    async def body() -> AsyncIterator[bytes]:
        yield head
        sent = 0
        with path.open("rb") as handle:
            while chunk := await asyncio.to_thread(handle.read, _CHUNK):
                sent += len(chunk)
                if on_progress is not None:
                    on_progress(sent, size)
                yield chunk
        yield tail

    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(total),
    }
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(
                f"{url.rstrip('/')}/api/recordings", data=body(), headers=headers
            ) as response,
        ):
            payload = await response.json(content_type=None)
    except aiohttp.ClientError as exc:
        raise ClientError(f"Upload to {url!r} failed: {exc}") from exc
    if response.status != 201:
        message = payload.get("error", {}).get("message", f"HTTP {response.status}")
        raise ClientError(f"The server refused the upload: {message}")
    status: Status = payload
    return status


def _multipart_frame(
    boundary: str, path: Path, options: dict[str, Any]
) -> tuple[bytes, bytes]:
    parts = []
    for key, value in options.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{text}\r\n'
        )
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    quoted = path.name.replace('"', "%22")
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{quoted}"\r\n'
        f"Content-Type: {mime}\r\n\r\n"
    )
    return "".join(parts).encode(), f"\r\n--{boundary}--\r\n".encode()


async def follow_one(
    url: str, rec_id: str, on_status: Callable[[Status], None]
) -> Status:
    """Follow one recording until it is `completed` or `error`; return that status."""
    async with EventStream(url, only=[rec_id]) as stream:
        status = stream.recordings[rec_id]
        on_status(status)
        if status["state"] in FINAL_STATES:
            return status
        async for event in stream:
            if event.name == "status" and event.data["id"] == rec_id:
                status = dict(event.data)
                on_status(status)
                if status["state"] in FINAL_STATES:
                    return status
            elif event.name == "removed" and event.data["id"] == rec_id:
                raise ClientError(f"Recording {rec_id!r} was deleted.")
    raise ClientError("The event stream ended.")  # pragma: no cover


def main(command: str, args: Any) -> int:
    """`signwatch upload` and `signwatch follow`."""
    url = args.url or os.environ.get("SIGNWATCH_URL") or DEFAULT_URL
    if command == "upload":
        return asyncio.run(_upload_command(url, args))
    return asyncio.run(_follow_command(url, args.id))


async def _upload_command(url: str, args: Any) -> int:
    from tqdm import tqdm  # type: ignore[import-untyped]

    options = {k: getattr(args, k) for k in ("imgsz", "conf", "stride", "batch")}
    options = {k: v for k, v in options.items() if v is not None}
    if args.annotate:
        options["annotate"] = True
    with tqdm(total=args.file.stat().st_size if args.file.is_file() else 0, unit="B",
              unit_scale=True, desc="upload", file=sys.stderr) as bar:  # fmt: skip

        def sent(done: int, size: int) -> None:
            bar.update(done - bar.n)

        status = await upload(url, args.file, options, sent)
    print(
        json.dumps(
            {
                "id": status["id"],
                "state": status["state"],
                "url": f"{url}/recordings/{status['id']}",
            }
        )
    )
    if not args.follow:
        return 0
    final = await _follow_with_bar(url, status["id"])
    print(json.dumps({"id": final["id"], "state": final["state"], "error": final["error"],
                      "result": final["result"]}))  # fmt: skip
    return 0 if final["state"] == "completed" else 1


async def _follow_with_bar(url: str, rec_id: str) -> Status:
    from tqdm import tqdm

    with tqdm(total=None, unit="frame", desc="detect", file=sys.stderr) as bar:

        def show(status: Status) -> None:
            progress = status["progress"]
            if progress["frames_total"] and bar.total != progress["frames_total"]:
                bar.reset(total=progress["frames_total"])
            bar.update(progress["frames_done"] - bar.n)
            bar.set_postfix_str(status["state"])

        return await follow_one(url, rec_id, show)


async def _follow_command(url: str, rec_id: str | None) -> int:
    if rec_id:
        final = await follow_one(url, rec_id, lambda s: _print_event("status", s))
        return 0 if final["state"] == "completed" else 1
    async with EventStream(url) as stream:
        async for event in stream:
            _print_event(event.name, event.data)
    return 0  # pragma: no cover


def _print_event(name: str, data: Any) -> None:
    print(json.dumps({"event": name, "data": data}), flush=True)
