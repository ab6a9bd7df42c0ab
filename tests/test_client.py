"""The Python event client and the `signwatch upload` / `follow` commands."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support import CLIP, PROJECT, LiveServer, bump, make_recording, wait_until

from server.client import ClientError, EventStream, upload


async def _next(stream: EventStream, name: str, timeout: float = 20) -> Any:
    async def find() -> Any:
        async for event in stream:
            if event.name == name:
                return event.data
        return None

    return await asyncio.wait_for(find(), timeout)


async def test_stream_resumes_after_server_restart(
    server_factory: Any, tmp_path: Path
) -> None:
    root = tmp_path / "recordings"
    a = make_recording(root, "a")
    make_recording(root, "b", state="completed")
    server: LiveServer = server_factory(root)
    port = int(server.url.rsplit(":", 1)[1])

    async with EventStream(server.url) as stream:
        snapshot = await _next(stream, "snapshot")
        assert {s["id"] for s in snapshot["recordings"]} == {"a", "b"}
        server.stop(kill=True)
        await _next(stream, "disconnected")
        a = bump(root, a, state="completed")
        server_factory(root, port=port)
        resumed = await _next(stream, "resumed", timeout=30)

    assert resumed == {"missed": 1, "removed": []}
    assert stream.recordings["a"] == a


async def test_upload_and_follow_one(live_server: LiveServer) -> None:
    sent: list[int] = []
    status = await upload(
        live_server.url, CLIP, {"stride": 3}, lambda done, size: sent.append(done)
    )
    assert sent[-1] == CLIP.stat().st_size

    seen: list[str] = []
    from server.client import follow_one

    final = await asyncio.wait_for(
        follow_one(live_server.url, status["id"], lambda s: seen.append(s["state"])), 60
    )
    assert final["state"] == "completed"
    assert seen[-1] == "completed"


async def test_upload_refused_has_server_message(
    live_server: LiveServer, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    with pytest.raises(ClientError, match="refused the upload"):
        await upload(live_server.url, bad)
    with pytest.raises(ClientError, match="No such file"):
        await upload(live_server.url, tmp_path / "missing.mp4")


def _signwatch(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=PROJECT,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("detector", "code", "state"),
    [("fakes:make_detector", 0, "completed"), ("fakes:crash_detector", 1, "error")],
    ids=["completed", "error"],
)
def test_upload_follow_command(
    server_factory: Any, detector: str, code: int, state: str
) -> None:
    server = server_factory(SIGNWATCH_DETECTOR=detector)

    done = _signwatch("upload", str(CLIP), "--follow", "--url", server.url)

    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == code, done.stderr
    assert lines[-1]["state"] == state
    assert "detect" in done.stderr  # the progress bar


def test_follow_command_prints_json_lines(live_server: LiveServer) -> None:
    status = make_recording(live_server.root, "f1", state="processing")
    wait_until(
        lambda: (
            "f1" in {s["id"] for s in live_server.get("/api/recordings")["recordings"]}
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "follow", "f1", "--url", live_server.url],
        stdout=subprocess.PIPE, text=True, cwd=PROJECT,
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
    )  # fmt: skip
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())
    bump(live_server.root, status, state="completed")
    rest = [json.loads(line) for line in proc.stdout]

    assert proc.wait(30) == 0
    assert first["event"] == "status" and first["data"]["id"] == "f1"
    assert rest[-1]["event"] == "status" and rest[-1]["data"]["state"] == "completed"
