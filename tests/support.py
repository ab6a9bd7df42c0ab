"""Helpers shared by the tests: a real server on loopback, status writers, clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import socketio

from server.recordings import new_status, write_status

PROJECT = Path(__file__).resolve().parent.parent
SHARED = PROJECT.parent / "shared" / "data"
CLIP = SHARED / "videos" / "solidWhiteRight.mp4"
ROAD_SIGNS = SHARED / "road-signs"
WEIGHTS = PROJECT / "models" / "signwatch-signs.pt"
SCHEMA = PROJECT / "server" / "schema" / "status.schema.json"
ARTIFACTS = PROJECT / "tests" / "artifacts"
FAKE_DETECTOR = "fakes:make_detector"
REAL_DETECTOR = "server.inference:YoloDetector"


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    """A real signwatch server process on loopback."""

    url: str
    root: Path
    proc: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    def stop(self, kill: bool = False) -> None:
        """Stop the process (SIGKILL with `kill`, as a crash would)."""
        if self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def output(self) -> str:
        """Everything the server logged so far."""
        return self.log.read_text(errors="replace")

    def get(self, path: str) -> Any:
        """GET a JSON document from the server."""
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())


def start_server(
    root: Path, log: Path, port: int | None = None, **env: str
) -> LiveServer:
    """Start `python -m server` (on a free port by default) and wait until it answers."""
    port = port or free_port()
    full_env = {
        **os.environ,
        "PYTHONPATH": f"{PROJECT}{os.pathsep}{PROJECT / 'tests'}",
        "SIGNWATCH_DETECTOR": FAKE_DETECTOR,
        "SIGNWATCH_RECONCILE_S": "1",
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    handle = log.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(port),
         "--recordings", str(root)],
        cwd=PROJECT, env=full_env, stdout=handle, stderr=subprocess.STDOUT,
    )  # fmt: skip
    handle.close()
    server = LiveServer(f"http://127.0.0.1:{port}", root, proc, log, env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.output()}")
        with contextlib.suppress(OSError):
            server.get("/healthz")
            return server
        time.sleep(0.1)
    server.stop(kill=True)
    raise RuntimeError(f"server did not answer in time:\n{server.output()}")


def make_recording(
    root: Path, rec_id: str, name: str = "clip.mp4", **fields: Any
) -> dict[str, Any]:
    """Create a recording folder with a status.json, as the pipeline would."""
    (root / rec_id).mkdir(parents=True, exist_ok=True)
    return write_status(root, new_status(rec_id, name, **fields))


def bump(root: Path, status: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """Write the next version of a status (seq + 1) atomically and return it."""
    status = {**status, **fields, "seq": status["seq"] + 1}
    return write_status(root, status)


class EventLog:
    """A real python-socketio client that records every event it receives."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self._arrived = asyncio.Event()
        for name in ("snapshot", "status", "removed", "resumed"):
            self.client.on(name, self._recorder(name))

    def _recorder(self, name: str) -> Any:
        async def record(data: Any) -> None:
            self.events.append((name, data))
            self._arrived.set()

        return record

    async def connect(self, url: str, auth: dict[str, Any] | None = None) -> None:
        """Connect over WebSocket."""
        await self.client.connect(
            url, auth=auth, transports=["websocket"], wait_timeout=10
        )

    async def disconnect(self) -> None:
        """Disconnect if connected."""
        await self.client.disconnect()

    def names(self) -> list[str]:
        """Names of the events so far, in order."""
        return [name for name, _ in self.events]

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> tuple[str, Any]:
        """Wait for the first event (from now on or already here) matching predicate."""
        deadline = asyncio.get_running_loop().time() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if predicate(*event):
                    return event
            seen = len(self.events)
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"no matching event; got {self.names()}")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)

    def statuses(self, rec_id: str) -> list[dict[str, Any]]:
        """Every `status` event received for one recording."""
        return [
            data
            for name, data in self.events
            if name == "status" and data["id"] == rec_id
        ]


def wait_until(predicate: Any, timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll a predicate until it returns something truthy, else fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("condition not met in time")
