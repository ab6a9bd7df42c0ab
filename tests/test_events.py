"""The event hub in-process, with a fake Socket.IO server and a fake clock."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from server.events import EventHub
from server.recordings import new_status
from server.store import StatusStore


class FakeSio:
    """Records emits; enough of python-socketio's AsyncServer for the hub."""

    def __init__(self) -> None:
        self.handlers: dict[str, Any] = {}
        self.emits: list[tuple[str, Any, Any]] = []
        self.rooms: dict[str, set[str]] = {}

    def on(self, name: str, handler: Any) -> None:
        self.handlers[name] = handler

    async def emit(self, name: str, data: Any, to: Any = None) -> None:
        self.emits.append((name, data, to))

    async def enter_room(self, sid: str, room: str) -> None:
        self.rooms.setdefault(sid, set()).add(room)

    async def leave_room(self, sid: str, room: str) -> None:
        self.rooms.get(sid, set()).discard(room)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def hub(tmp_path: Path) -> Any:
    sio, clock = FakeSio(), Clock()
    store = StatusStore(tmp_path)
    events = EventHub(sio, store, progress_interval_s=0.25, clock=clock)  # type: ignore[arg-type]
    await events.start()
    yield events, store, sio, clock
    await events.stop()


def _progress(
    status: dict[str, Any], seq: int, done: int, state: str = "processing"
) -> dict[str, Any]:
    progress = {"frames_done": done, "frames_total": 100, "fps": 10.0, "eta_s": 1.0}
    return {**status, "seq": seq, "state": state, "progress": progress}


async def test_progress_is_limited_to_four_per_second(hub: Any) -> None:
    events, store, sio, clock = hub
    base = new_status("r1", "a.mp4")
    store.apply(_progress(base, 1, 0))
    for seq in range(2, 30):  # 28 progress writes within 0.28 s
        clock.now += 0.01
        store.apply(_progress(base, seq, seq))
    await events.drain()

    sent = [data["seq"] for name, data, _ in sio.emits if name == "status"]
    assert sent == [1, 2, 3, 4]  # the window of 4 filled at once

    clock.now += 1.0
    await asyncio.sleep(1.1)  # the held newest one is flushed by its timer
    await events.drain()
    assert [data["seq"] for name, data, _ in sio.emits if name == "status"][-1] == 29


async def test_state_changes_are_never_held(hub: Any) -> None:
    events, store, sio, _clock = hub
    base = new_status("r1", "a.mp4")
    for seq in range(1, 10):
        store.apply(_progress(base, seq, seq))
    store.apply(_progress(base, 10, 100, state="completed"))
    await events.drain()

    sent = [(d["seq"], d["state"]) for name, d, _ in sio.emits if name == "status"]
    assert sent[-1] == (10, "completed")
    assert events._pending == {}  # the held progress was dropped, not sent late


async def test_snapshot_and_resume_come_from_the_broadcast_view(hub: Any) -> None:
    events, store, sio, _clock = hub
    a, b = new_status("a", "a.mp4"), new_status("b", "b.mp4")
    store.apply(a)
    store.apply(b)
    await events.drain()

    await sio.handlers["connect"]("s1", {}, None)
    await sio.handlers["connect"]("s2", {}, {"seqs": {"a": 0, "gone": 3}})
    await sio.handlers["connect"]("s3", {}, {"all": False, "seqs": {"b": 0}})
    await events.drain()

    to = {
        sid: [(n, d) for n, d, t in sio.emits if t == sid] for sid in ("s1", "s2", "s3")
    }
    assert [n for n, _ in to["s1"]] == ["snapshot"]
    assert {s["id"] for s in to["s1"][0][1]["recordings"]} == {"a", "b"}
    assert [(n, d.get("id")) for n, d in to["s2"]] == [
        ("status", "b"),
        ("removed", "gone"),
        ("resumed", None),
    ]
    assert to["s3"] == [("resumed", {"missed": 0, "removed": []})]
    assert sio.rooms["s1"] == {"all"} and sio.rooms["s3"] == {"rec:b"}
