"""Watcher-driven Socket.IO push against a real server and a real client."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from support import EventLog, LiveServer, bump, make_recording

from server.recordings import read_status


async def test_snapshot_on_connect(server_factory, tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    older = make_recording(root, "older", state="completed")
    newer = make_recording(root, "newer", state="error", error="Broken.")
    server: LiveServer = server_factory(root)

    log = EventLog()
    await log.connect(server.url)
    _name, data = await log.wait_for(lambda n, d: n == "snapshot")
    await log.disconnect()

    assert {s["id"] for s in data["recordings"]} == {older["id"], newer["id"]}
    assert log.names() == ["snapshot"]


async def test_atomic_write_reaches_client(live_server: LiveServer) -> None:
    root = live_server.root
    log = EventLog()
    await log.connect(live_server.url)
    await log.wait_for(lambda n, d: n == "snapshot")

    status = make_recording(root, "rec1")
    await log.wait_for(lambda n, d: n == "status" and d["id"] == "rec1")
    status = bump(root, status, state="processing")
    _, data = await log.wait_for(
        lambda n, d: n == "status" and d["seq"] == status["seq"]
    )
    await log.disconnect()

    assert data == status


async def test_deleted_folder_emits_removed(live_server: LiveServer) -> None:
    root = live_server.root
    make_recording(root, "doomed", state="completed")
    await _until_served(live_server, lambda ids: "doomed" in ids)
    log = EventLog()
    await log.connect(live_server.url)
    await log.wait_for(lambda n, d: n == "snapshot" and d["recordings"])

    shutil.rmtree(root / "doomed")
    _, data = await log.wait_for(lambda n, d: n == "removed")
    await log.disconnect()

    assert data == {"id": "doomed"}


async def test_emptied_root_then_new_recordings(live_server: LiveServer) -> None:
    root = live_server.root
    for i in range(5):
        make_recording(root, f"r{i}")
    await _until_served(live_server, lambda ids: len(ids) == 5)
    log = EventLog()
    await log.connect(live_server.url)
    await log.wait_for(lambda n, d: n == "snapshot" and len(d["recordings"]) == 5)

    for entry in root.iterdir():
        shutil.rmtree(entry)
    for i in range(5):
        await log.wait_for(lambda n, d, i=i: n == "removed" and d["id"] == f"r{i}")
    make_recording(root, "after")
    await log.wait_for(lambda n, d: n == "status" and d["id"] == "after")
    await log.disconnect()


async def test_new_folders_are_never_missed(live_server: LiveServer) -> None:
    """Folder and file created at once: inotify may drop the file's event."""
    log = EventLog()
    await log.connect(live_server.url)
    await log.wait_for(lambda n, d: n == "snapshot")

    ids = [f"burst{i}" for i in range(40)]
    for rec_id in ids:
        make_recording(live_server.root, rec_id)
    for rec_id in ids:
        await log.wait_for(lambda n, d, r=rec_id: n == "status" and d["id"] == r)
    await log.disconnect()


async def test_coalescing_keeps_every_state_change(live_server: LiveServer) -> None:
    root = live_server.root
    log = EventLog()
    await log.connect(live_server.url)
    await log.wait_for(lambda n, d: n == "snapshot")

    status = make_recording(root, "busy")
    # The watcher reads the newest file, so writes microseconds apart can merge;
    # the pipeline's state changes are seconds apart.
    await log.wait_for(lambda n, d: n == "status" and d["id"] == "busy")
    status = bump(root, status, state="processing")
    writes = 0
    for done in range(1, 61):
        progress = {"frames_done": done, "frames_total": 60, "fps": 30.0, "eta_s": 1.0}
        status = bump(root, status, progress=progress)
        writes += 1
        await asyncio.sleep(0.005)
    status = bump(root, status, state="completed")
    await log.wait_for(lambda n, d: n == "status" and d["state"] == "completed")
    await log.disconnect()

    seen = log.statuses("busy")
    states = [s["state"] for s in seen]
    # Each state appears, in order, and the last event is the last write.
    assert [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s] == [
        "validated",
        "processing",
        "completed",
    ]
    assert seen[-1] == status
    assert [s["seq"] for s in seen] == sorted(s["seq"] for s in seen)
    # Progress was coalesced: far fewer events than writes.
    assert len(seen) < writes / 2


async def test_reconnect_gets_exactly_what_was_missed(live_server: LiveServer) -> None:
    root = live_server.root
    kept = make_recording(root, "kept", state="completed")
    changing = make_recording(root, "changing")
    gone = make_recording(root, "gone", state="completed")
    await _until_served(live_server, lambda ids: len(ids) == 3)

    first = EventLog()
    await first.connect(live_server.url)
    _, snap = await first.wait_for(
        lambda n, d: n == "snapshot" and len(d["recordings"]) == 3
    )
    seqs = {s["id"]: s["seq"] for s in snap["recordings"]}
    await first.disconnect()

    # While disconnected: one change, one deletion, one new recording.
    changing = bump(root, changing, state="processing")
    changing = bump(root, changing, state="completed")
    shutil.rmtree(root / gone["id"])
    fresh = make_recording(root, "fresh")
    await _until_served(live_server, lambda ids: "gone" not in ids and "fresh" in ids)
    await _until_seq(live_server, "changing", changing["seq"])

    second = EventLog()
    await second.connect(live_server.url, auth={"seqs": seqs})
    _, resumed = await second.wait_for(lambda n, d: n == "resumed")
    await asyncio.sleep(0.3)
    await second.disconnect()

    got = {(n, d["id"]) for n, d in second.events if n in {"status", "removed"}}
    assert got == {("status", "changing"), ("status", "fresh"), ("removed", "gone")}
    assert "snapshot" not in second.names()
    assert resumed == {"missed": 2, "removed": ["gone"]}
    assert second.statuses("changing")[-1] == changing
    assert second.statuses("fresh")[-1] == fresh
    assert kept["id"] not in {d.get("id") for _, d in second.events}


async def test_garbage_files_never_reach_clients(live_server: LiveServer) -> None:
    root = live_server.root
    good = make_recording(root, "victim", state="processing")
    await _until_served(live_server, lambda ids: "victim" in ids)
    log = EventLog()
    await log.connect(live_server.url)
    await log.wait_for(lambda n, d: n == "snapshot" and d["recordings"])

    path = root / "victim" / "status.json"
    garbage = [b"", b"{", b'{"id": "victim", "seq": 99', b"\x00\xff\xfe", b"[1, 2]",
               b'{"id": "victim", "state": "exploded", "seq": 100}', b"null"]  # fmt: skip
    for raw in garbage:
        with path.open("wb") as handle:  # torn, non-atomic writes on purpose
            handle.write(raw)
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    assert live_server.get(f"/api/recordings/{good['id']}") == good

    fixed = bump(root, good, state="completed")
    await log.wait_for(lambda n, d: n == "status" and d["id"] == "victim")
    await log.disconnect()

    assert log.statuses("victim") == [fixed]
    assert live_server.get("/healthz")["ok"] is True
    assert read_status(root, "victim") == fixed


async def test_subscribe_to_one_recording(live_server: LiveServer) -> None:
    root = live_server.root
    mine = make_recording(root, "mine")
    other = make_recording(root, "other")
    await _until_served(live_server, lambda ids: {"mine", "other"} <= ids)

    log = EventLog()
    await log.connect(live_server.url, auth={"all": False, "seqs": {}})
    ack = await log.client.call("subscribe", {"id": "mine"}, timeout=5)
    bad = await log.client.call("subscribe", {"id": "../x"}, timeout=5)
    missing = await log.client.call("subscribe", {"id": "nothere"}, timeout=5)
    bump(root, other, state="processing")
    mine = bump(root, mine, state="processing")
    await log.wait_for(
        lambda n, d: n == "status" and d["id"] == "mine" and d["seq"] == mine["seq"]
    )
    await asyncio.sleep(0.3)
    await log.client.call("unsubscribe", {"id": "mine"}, timeout=5)
    bump(root, mine, state="completed")
    await asyncio.sleep(0.3)
    await log.disconnect()

    assert ack["ok"] is True and ack["status"]["id"] == "mine"
    assert bad["ok"] is False and missing["ok"] is False
    assert {d["id"] for n, d in log.events if n == "status"} == {"mine"}
    assert [d["seq"] for n, d in log.events if n == "status"] == [mine["seq"]]


async def _until_served(server: LiveServer, check) -> None:  # type: ignore[no-untyped-def]
    for _ in range(200):
        ids = {s["id"] for s in server.get("/api/recordings")["recordings"]}
        if check(ids):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("server never showed the expected recordings")


async def _until_seq(server: LiveServer, rec_id: str, seq: int) -> None:
    for _ in range(200):
        if server.get(f"/api/recordings/{rec_id}")["seq"] == seq:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"server never reached seq {seq} for {rec_id}")


def test_env_is_clean() -> None:
    assert "SIGNWATCH_RECORDINGS" not in os.environ
