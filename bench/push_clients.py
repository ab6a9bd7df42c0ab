"""Client worker processes of `bench_push.py`.

Each worker is one process with one asyncio loop that runs many clients: real
python-socketio `AsyncClient`s over WebSocket that timestamp every `status`
event of one recording, or HTTP pollers that re-fetch `GET /status` on a fixed
period and read the recording's `seq` out of the rendered page.

Every timestamp is `time.monotonic()`: CLOCK_MONOTONIC is one clock for the whole
host, so it compares across the bench's processes.

The orchestrator drives a worker through a `multiprocessing` pipe with small
tuples (see `_Worker.handle`); every command gets exactly one answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import resource
import time
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
import socketio

logger = logging.getLogger("bench.clients")

Receipt = tuple[float, int]

_SEQ = re.compile(rb'\bdata-seq="(\d+)"')
_CONNECTS_AT_ONCE = 25


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Receiver:
    """One Socket.IO client that timestamps the `status` events of one recording."""

    def __init__(self, rec_id: str, changed: asyncio.Event) -> None:
        self.rec_id = rec_id
        self.client = socketio.AsyncClient(reconnection=False)
        self.receipts: list[Receipt] = []
        self.latest = -1
        self._changed = changed
        self.client.on("status", self._on_status)

    async def _on_status(self, data: dict[str, Any]) -> None:
        now = time.monotonic()
        if data.get("id") != self.rec_id:
            return
        self.receipts.append((now, data["seq"]))
        self.latest = max(self.latest, data["seq"])
        self._changed.set()

    async def connect(self, url: str) -> None:
        await self.client.connect(url, transports=["websocket"], wait_timeout=60)

    def first_at_least(self, seq: int) -> float | None:
        """Receipt time of the first event with `seq` or newer, if any."""
        return next((t for t, s in self.receipts if s >= seq), None)


class _Worker:
    def __init__(self) -> None:
        self.groups: dict[str, list[Receiver]] = {}
        self.changed = asyncio.Event()

    async def handle(self, command: str, *args: Any) -> Any:
        if command == "connect":
            return await self.connect(*args)
        if command == "wait":
            return await self.wait(*args)
        if command == "take":
            return self.take(*args)
        if command == "poll":
            return await poll(*args)
        if command == "close":
            return await self.close()
        raise ValueError(f"Unknown command {command!r}.")

    async def connect(
        self, group: str, url: str, rec_id: str, count: int
    ) -> dict[str, Any]:
        """Connect `count` receivers to `url`; report how many made it."""
        receivers = [Receiver(rec_id, self.changed) for _ in range(count)]
        gate = asyncio.Semaphore(_CONNECTS_AT_ONCE)

        async def one(receiver: Receiver) -> str | None:
            async with gate:
                try:
                    await receiver.connect(url)
                except Exception as exc:
                    return f"{type(exc).__name__}: {exc}"
                return None

        errors = [e for e in await asyncio.gather(*map(one, receivers)) if e]
        self.groups[group] = [r for r in receivers if r.client.connected]
        return {"connected": len(self.groups[group]), "errors": errors[:3]}

    async def wait(self, group: str, seq: int, timeout: float) -> list[float | None]:
        """Wait until every receiver of `group` has `seq`; return their receipt times."""
        receivers = self.groups.get(group, [])
        deadline = time.monotonic() + timeout
        while True:
            self.changed.clear()
            if all(r.latest >= seq for r in receivers):
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return [r.first_at_least(seq) for r in receivers]

    def take(self, group: str) -> list[list[Receipt]]:
        """Every receipt of every receiver of `group` so far, then forget them."""
        taken = []
        for receiver in self.groups.get(group, []):
            taken.append(receiver.receipts)
            receiver.receipts = []
        return taken

    async def close(self) -> int:
        receivers = [r for group in self.groups.values() for r in group]
        await asyncio.gather(
            *(r.client.disconnect() for r in receivers), return_exceptions=True
        )
        self.groups.clear()
        return len(receivers)


async def poll(
    url: str, rec_id: str, count: int, period: float, until: float, seed: int
) -> list[list[Receipt]]:
    """Run `count` pollers of `GET url` every `period` s until monotonic `until`.

    Each poller starts at a random phase within the first period, as browsers
    opened at random moments would; a receipt is (response time, seq shown).
    """
    rng = random.Random(seed)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.monotonic()
        phases = [start + rng.uniform(0, period) for _ in range(count)]
        return await asyncio.gather(
            *(_poll_one(session, url, rec_id, t, period, until) for t in phases)
        )


async def _poll_one(
    session: aiohttp.ClientSession,
    url: str,
    rec_id: str,
    first: float,
    period: float,
    until: float,
) -> list[Receipt]:
    receipts: list[Receipt] = []
    due = first
    while due < until:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        try:
            async with session.get(url) as response:
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.warning("poll failed: %s", exc)
        else:
            seq = shown_seq(body, rec_id)
            if seq is not None:
                receipts.append((time.monotonic(), seq))
        # A fixed schedule, like setInterval: a slow answer does not shift it.
        due += period
    return receipts


def shown_seq(page: bytes, rec_id: str) -> int | None:
    """The `seq` of recording `rec_id` as rendered into its row of the status page."""
    row = re.search(
        rb'<li[^>]*\bdata-id="' + re.escape(rec_id.encode()) + rb'"[^>]*>', page
    )
    seq = _SEQ.search(row.group(0)) if row else None
    return int(seq.group(1)) if seq else None


def serve(conn: Connection) -> None:
    """Entry point of a worker process: answer commands from `conn` until EOF."""
    raise_fd_limit()
    logging.basicConfig(level=logging.WARNING)
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(conn))
    else:
        uvloop.run(_serve(conn))


async def _serve(conn: Connection) -> None:
    worker = _Worker()
    commands: asyncio.Queue[tuple[Any, ...] | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def readable() -> None:
        try:
            commands.put_nowait(conn.recv())
        except EOFError:
            loop.remove_reader(conn.fileno())
            commands.put_nowait(None)

    loop.add_reader(conn.fileno(), readable)
    while (message := await commands.get()) is not None:
        # Commands run one at a time, in order; `poll` may run for a while.
        try:
            answer: Any = await worker.handle(*message)
        except Exception as exc:
            answer = exc
        conn.send(answer)
    await worker.close()
