"""The watcher alone, in-process: polling fallback, probe, reconciliation."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from support import bump, make_recording

from server.store import StatusStore
from server.watcher import StatusWatcher


async def _wait(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)


async def test_probe_finds_native_events(tmp_path: Path) -> None:
    watcher = StatusWatcher(StatusStore(tmp_path))
    await watcher.start()
    try:
        assert watcher.mode == "inotify"
        assert not [
            p for p in tmp_path.iterdir() if p.name.startswith(".signwatch-probe")
        ]
    finally:
        await watcher.stop()


async def test_falls_back_to_polling_when_probe_sees_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    watcher = StatusWatcher(StatusStore(tmp_path), poll_s=0.2)

    async def silent() -> bool:
        return False

    monkeypatch.setattr(watcher, "_probe", silent)
    await watcher.start()
    try:
        status = make_recording(tmp_path, "p1")
        await _wait(lambda: watcher.store.get("p1") is not None)
        assert watcher.mode == "polling"
        assert "falling back to polling" in caplog.text
        # Rewrites within one second: mtime alone would miss them.
        for _ in range(3):
            status = bump(tmp_path, status)
            await _wait(lambda s=status: watcher.store.get("p1")["seq"] == s["seq"])
    finally:
        await watcher.stop()


async def test_reconcile_catches_missed_events(tmp_path: Path) -> None:
    store = StatusStore(tmp_path)
    watcher = StatusWatcher(store, force_polling=False)
    make_recording(tmp_path, "r1")
    watcher.reconcile()
    status = store.get("r1")
    # Write behind the watcher's back (no task is running).
    bump(tmp_path, status, state="completed")
    make_recording(tmp_path, "r2")

    assert watcher.reconcile() == 2
    assert store.get("r1")["state"] == "completed"
    assert watcher.reconcile() == 0


async def test_survives_root_removal(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    store = StatusStore(root)
    watcher = StatusWatcher(store, reconcile_s=0.2)
    await watcher.start()
    try:
        make_recording(root, "r1")
        await _wait(lambda: store.get("r1") is not None)
        import shutil

        shutil.rmtree(root)
        await _wait(lambda: store.get("r1") is None)
        root.mkdir(exist_ok=True)
        make_recording(root, "r2")
        await _wait(lambda: store.get("r2") is not None, timeout=10)
    finally:
        await watcher.stop()
