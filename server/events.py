"""Socket.IO push: store changes become `status` and `removed` events.

Everything a client sees goes through one sender task and one queue, in order.
The sender keeps the *broadcast view*: each recording as last emitted. Welcome
messages (snapshot or resume) are computed from that view inside the same task,
so a client's snapshot plus the events after it are exactly the stream, with no
duplicate and no gap.

Emits go through python-socketio's client manager (`sio.emit` with rooms), so a
Redis or Kafka manager can replace the in-process one for several servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import socketio

from .recordings import Status, is_valid_id, sort_newest_first
from .store import StatusStore

logger = logging.getLogger(__name__)

ALL_ROOM = "all"
# Progress-only events of one recording: at most this many per window of
# `_BURST * progress_interval_s` (4 per second by default). A sliding window
# rather than a fixed spacing, so one late write does not delay all later ones.
_BURST = 4


def room_of(rec_id: str) -> str:
    """Name of the room that follows one recording."""
    return f"rec:{rec_id}"


@dataclass
class _Welcome:
    sid: str
    auth: dict[str, Any]


@dataclass
class _Emit:
    rec_id: str
    status: Status | None


class EventHub:
    """Wires a `StatusStore` to a python-socketio `AsyncServer`.

    Args:
        sio: the Socket.IO server; its handlers for connect, subscribe and
            unsubscribe are registered here.
        store: source of changes.
        progress_interval_s: average spacing of progress-only events of one
            recording (at most 4 in any window of 4 intervals); state changes
            are never delayed.
        clock: monotonic clock, replaceable in tests.
    """

    def __init__(
        self,
        sio: socketio.AsyncServer,
        store: StatusStore,
        *,
        progress_interval_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sio = sio
        self.store = store
        self.progress_interval_s = progress_interval_s
        self.clock = clock
        self.view: dict[str, Status] = {}
        self._queue: asyncio.Queue[_Welcome | _Emit] = asyncio.Queue()
        self._recent: dict[str, deque[float]] = {}
        self._sent_state: dict[str, str] = {}
        self._pending: dict[str, Status] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._task: asyncio.Task[None] | None = None
        self._register()

    async def start(self) -> None:
        """Seed the view from the store and start the sender task."""
        self.view = {s["id"]: s for s in self.store.all()}
        self.store.subscribe(self._on_change)
        self._task = asyncio.create_task(self._send_forever(), name="event-sender")

    async def stop(self) -> None:
        """Stop the sender task; pending coalesced progress is dropped."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def drain(self) -> None:
        """Wait until every queued event has been handed to the manager."""
        await self._queue.join()

    def _register(self) -> None:
        self.sio.on("connect", self._connect)
        self.sio.on("subscribe", self._subscribe)
        self.sio.on("unsubscribe", self._unsubscribe)

    # Coalescing: runs synchronously in the store's listener.

    def _on_change(self, rec_id: str, status: Status | None) -> None:
        if status is None:
            self._cancel_pending(rec_id)
            self._sent_state.pop(rec_id, None)
            self._recent.pop(rec_id, None)
            self._queue.put_nowait(_Emit(rec_id, None))
            return
        # Compare with the last state handed to the sender, not the view: the
        # queue may not have drained yet.
        shown_state = self._sent_state.get(rec_id)
        now = self.clock()
        recent = self._recent.setdefault(rec_id, deque(maxlen=_BURST))
        window = _BURST * self.progress_interval_s
        full = len(recent) == _BURST and now - recent[0] < window
        if status["state"] != shown_state or not full:
            self._cancel_pending(rec_id)
            self._enqueue(rec_id, status, now)
            return
        # Progress only, and the window is full: hold the newest until a slot frees.
        self._pending[rec_id] = status
        if rec_id not in self._timers:
            delay = recent[0] + window - now
            loop = asyncio.get_running_loop()
            self._timers[rec_id] = loop.call_later(delay, self._flush, rec_id)

    def _flush(self, rec_id: str) -> None:
        self._timers.pop(rec_id, None)
        status = self._pending.pop(rec_id, None)
        if status is not None:
            self._enqueue(rec_id, status, self.clock())

    def _enqueue(self, rec_id: str, status: Status, now: float) -> None:
        self._sent_state[rec_id] = status["state"]
        self._recent.setdefault(rec_id, deque(maxlen=_BURST)).append(now)
        self._queue.put_nowait(_Emit(rec_id, status))

    def _cancel_pending(self, rec_id: str) -> None:
        self._pending.pop(rec_id, None)
        timer = self._timers.pop(rec_id, None)
        if timer is not None:
            timer.cancel()

    # The sender: the only place that emits.

    async def _send_forever(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                if isinstance(item, _Welcome):
                    await self._welcome(item)
                else:
                    await self._emit(item)
            except Exception:
                logger.exception("failed to send %r", item)
            finally:
                self._queue.task_done()

    async def _emit(self, item: _Emit) -> None:
        rooms = [ALL_ROOM, room_of(item.rec_id)]
        if item.status is None:
            if self.view.pop(item.rec_id, None) is None:
                return
            await self.sio.emit("removed", {"id": item.rec_id}, to=rooms)
        else:
            held = self.view.get(item.rec_id)
            if held is not None and held["seq"] > item.status["seq"]:
                return
            self.view[item.rec_id] = item.status
            await self.sio.emit("status", item.status, to=rooms)
        logger.debug(
            "emitted %s for %s",
            "removed" if item.status is None else "status",
            item.rec_id,
        )

    async def _welcome(self, item: _Welcome) -> None:
        everything = item.auth.get("all", True) is not False
        seqs = item.auth.get("seqs")
        if everything:
            await self.sio.enter_room(item.sid, ALL_ROOM)
            if not isinstance(seqs, dict):
                recordings = sort_newest_first(list(self.view.values()))
                await self.sio.emit("snapshot", {"recordings": recordings}, to=item.sid)
                return
        known: dict[str, Any] = seqs if isinstance(seqs, dict) else {}
        if not everything:
            # A client of single rooms resumes the rooms it names, no others.
            for rec_id in known:
                if isinstance(rec_id, str) and is_valid_id(rec_id):
                    await self.sio.enter_room(item.sid, room_of(rec_id))
        candidates = (
            self.view.values()
            if everything
            else (self.view[r] for r in known if r in self.view)
        )
        missed = [s for s in candidates if known.get(s["id"]) != s["seq"]]
        for status in sort_newest_first(missed):
            await self.sio.emit("status", status, to=item.sid)
        gone = sorted(r for r in known if isinstance(r, str) and r not in self.view)
        for rec_id in gone:
            await self.sio.emit("removed", {"id": rec_id}, to=item.sid)
        await self.sio.emit(
            "resumed", {"missed": len(missed), "removed": gone}, to=item.sid
        )

    # Handlers: run in python-socketio's tasks.

    async def _connect(
        self, sid: str, environ: dict[str, Any], auth: Any = None
    ) -> None:
        # always_connect=True: the client is connected already, so queued
        # welcome messages cannot overtake the CONNECT packet.
        self._queue.put_nowait(_Welcome(sid, auth if isinstance(auth, dict) else {}))

    async def _subscribe(self, sid: str, data: Any) -> dict[str, Any]:
        rec_id = data.get("id") if isinstance(data, dict) else data
        if not isinstance(rec_id, str) or not is_valid_id(rec_id):
            return {"ok": False, "error": f"Invalid recording id {rec_id!r}."}
        status = self.view.get(rec_id)
        if status is None:
            return {"ok": False, "error": f"No recording with id {rec_id!r}."}
        await self.sio.enter_room(sid, room_of(rec_id))
        return {"ok": True, "status": status}

    async def _unsubscribe(self, sid: str, data: Any) -> dict[str, Any]:
        rec_id = data.get("id") if isinstance(data, dict) else data
        if not isinstance(rec_id, str) or not is_valid_id(rec_id):
            return {"ok": False, "error": f"Invalid recording id {rec_id!r}."}
        await self.sio.leave_room(sid, room_of(rec_id))
        return {"ok": True}


def create_socketio(
    client_manager: socketio.AsyncManager | None = None,
    cors_allowed_origins: str | list[str] | None = None,
) -> socketio.AsyncServer:
    """The Socket.IO server; pass a Redis manager to fan out across servers."""
    return socketio.AsyncServer(
        async_mode="asgi",
        client_manager=client_manager,
        cors_allowed_origins=cors_allowed_origins,
        always_connect=True,
        logger=False,
        engineio_logger=False,
    )
