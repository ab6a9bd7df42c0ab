"""Support for the browser tests: a real server in a thread, a proxy, Chromium.

The page tests run the real app (store, watcher, Socket.IO hub) with a runner
that never starts inference, so status files written by a test stay exactly as
written. A small aiohttp reverse proxy in front of the server can refuse every
`/socket.io/` request (Playwright's `page.route` cannot intercept WebSockets),
and counts the requests it forwards.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import uvicorn
from aiohttp import web
from support import wait_until

from server import recordings
from server.app import create_app
from server.config import resolve
from server.recordings import new_status, patch_status
from server.store import StatusStore

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parent / "artifacts" / "screenshots"
VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}

_HOP_HEADERS = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "content-length",
}
# Kept from the browser's request: Host, so the server sees the browser's
# origin as its own (as behind any reverse proxy), and Origin.
_WS_HEADERS = {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions"}


# Status files


def make_status(
    rec_id: str,
    name: str = "dashcam.mp4",
    state: str = "processing",
    seq: int = 1,
    *,
    age_s: float = 0.0,
    frames_done: int = 0,
    frames_total: int | None = 220,
    **fields: Any,
) -> dict[str, Any]:
    """A status object that follows the README's status.json contract."""
    created = datetime.now(UTC) - timedelta(seconds=age_s)
    stamp = created.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    processing = state == "processing"
    progress = {
        "frames_done": frames_done,
        "frames_total": frames_total,
        "fps": 14.2 if processing else None,
        "eta_s": 7.0 if processing else None,
    }
    video = {"frames": 221, "fps": 25.0, "width": 960, "height": 540,
             "duration_s": 8.84, "codec": "h264", "size_bytes": 1234567}  # fmt: skip
    options = {"imgsz": 416, "conf": 0.25, "stride": 1, "batch": 4,
               "device": "cpu", "annotate": False}  # fmt: skip
    status = new_status(
        rec_id, name, state=state, seq=seq, created_at=stamp, updated_at=stamp,
        progress=progress, video=video, options=options, attempts=1,
    )  # fmt: skip
    status.update(fields)
    return status


def completed_result(classes: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """A `result` object; `classes` maps a class to (tracks, detections)."""
    return {
        "classes": {
            name: {"tracks": t, "detections": d, "first_s": 0.4, "last_s": 3.2}
            for name, (t, d) in classes.items()
        },
        "tracks_total": sum(t for t, _ in classes.values()),
        "detections_total": sum(d for _, d in classes.values()),
        "frames_processed": 220,
        "wall_s": 14.1,
        "model": "signwatch-signs.pt",
    }


def write_status(root: Path, status: dict[str, Any]) -> None:
    """Write `status` the way the pipeline does (atomically), folder and all."""
    (root / status["id"]).mkdir(parents=True, exist_ok=True)
    recordings.write_status(root, status)


# The server


class NullRunner:
    """A job runner that runs nothing: status files change only when tests write."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.submitted: list[str] = []

    async def start(self, store: StatusStore) -> None:
        return None

    async def stop(self) -> None:
        return None

    def submit(self, rec_id: str) -> None:
        self.submitted.append(rec_id)

    async def cancel(self, rec_id: str) -> dict[str, Any]:
        return patch_status(
            self.root, rec_id, state="error", error="Cancelled by user."
        )

    async def retry(self, rec_id: str) -> dict[str, Any]:
        return patch_status(self.root, rec_id, state="validated", error=None)

    def describe(self) -> dict[str, Any]:
        return {"kind": "null"}


class _ThreadLoop:
    """An event loop running in a daemon thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name=name, daemon=True
        )
        self.thread.start()

    def call(self, coro: Any, timeout_s: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@dataclass
class LiveServer:
    """A running server: its base URL and its recordings folder."""

    url: str
    recordings: Path
    runner: Any


def run_server(recordings: Path, *, real_runner: bool = False) -> Iterator[LiveServer]:
    """Run the real app with uvicorn in a thread until the generator closes.

    Args:
        recordings: the recordings root (created if missing).
        real_runner: run inference with the server's own runner instead of
            a `NullRunner`.
    """
    settings = resolve({"recordings": recordings, "port": 8000}, env={})
    app = create_app(settings, runner=None if real_runner else NullRunner(recordings))
    runner = app.services.runner
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        ws="websockets-sansio",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    wait_until(lambda: server.started, 20)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", recordings, runner)
    finally:
        server.should_exit = True
        thread.join(10)


# The proxy


@dataclass
class ProxyLog:
    """Requests the proxy saw: (monotonic time, method, path)."""

    entries: list[tuple[float, str, str]] = field(default_factory=list)

    def count(self, method: str, path: str, since: float = 0.0) -> int:
        return sum(
            1 for t, m, p in self.entries if m == method and p == path and t >= since
        )


class SocketBlockingProxy:
    """A loopback reverse proxy that can answer 403 to every `/socket.io/` request.

    Args:
        upstream: base URL of the server, such as "http://127.0.0.1:8123".
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.blocked = False
        self.log = ProxyLog()
        self._sockets: set[web.WebSocketResponse] = set()
        self._bridges: set[asyncio.Task[Any]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._thread = _ThreadLoop("proxy")
        self.url = self._thread.call(self._start())

    def block(self) -> None:
        """Refuse `/socket.io/` from now on and drop open WebSockets."""
        self.blocked = True
        self._thread.call(self._close_sockets())

    def unblock(self) -> None:
        self.blocked = False

    def close(self) -> None:
        self._thread.call(self._stop())
        self._thread.close()

    async def _start(self) -> str:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"

    async def _stop(self) -> None:
        await self._close_sockets()
        for task in list(self._bridges):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _close_sockets(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        self._sockets.clear()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.log.entries.append((time.monotonic(), request.method, request.path))
        if self.blocked and request.path.startswith("/socket.io/"):
            return web.Response(status=403, text="Blocked by the test proxy.")
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._bridge(request)
        return await self._forward(request)

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS
        }
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
        ) as upstream:
            body = await upstream.read()
            answer = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() not in _HOP_HEADERS
            }
            return web.Response(status=upstream.status, headers=answer, body=body)

    async def _bridge(self, request: web.Request) -> web.WebSocketResponse:
        assert self._session is not None
        client = web.WebSocketResponse()
        try:
            await client.prepare(request)
        except ConnectionError:
            return client
        self._sockets.add(client)
        url = "ws" + self.upstream.removeprefix("http") + request.path_qs
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in _HOP_HEADERS | _WS_HEADERS
        }
        pumps: list[asyncio.Task[Any]] = []
        try:
            async with self._session.ws_connect(url, headers=headers) as server:
                pumps = [
                    asyncio.create_task(_pump(client, server)),
                    asyncio.create_task(_pump(server, client)),
                ]
                self._bridges.update(pumps)
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        except (aiohttp.ClientError, ConnectionError):
            pass
        finally:
            for task in pumps:
                task.cancel()
                self._bridges.discard(task)
            self._sockets.discard(client)
            await client.close()
        return client


async def _pump(source: Any, target: Any) -> None:
    try:
        async for message in source:
            if message.type == aiohttp.WSMsgType.TEXT:
                await target.send_str(message.data)
            elif message.type == aiohttp.WSMsgType.BINARY:
                await target.send_bytes(message.data)
            else:
                break
        await target.close()
    except ConnectionError:
        pass


# The browser


def launch_browser() -> Iterator[Any]:
    """Debian's Chromium through Playwright, headless."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing; install Debian's chromium package.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def save_screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot under tests/artifacts/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def fresh_folder(root: Path) -> Path:
    """An empty recordings folder under `root` (removed first if present)."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    return root


def wait_conn(page: Any, state: str, timeout_ms: int = 10_000) -> None:
    """Wait until the connection indicator shows `state`."""
    page.wait_for_function(
        "state => document.getElementById('conn').dataset.state === state",
        arg=state,
        timeout=timeout_ms,
    )


def open_page(browser: Any) -> Iterator[Any]:
    """A desktop-sized page that records dialogs (dismissed unless accepted)."""
    context = browser.new_context(
        bypass_csp=True, viewport={"width": 1280, "height": 800}
    )
    page = context.new_page()
    page.dialogs = []
    page.accept_dialogs = False

    def on_dialog(dialog: Any) -> None:
        page.dialogs.append(dialog.message)
        if page.accept_dialogs:
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", on_dialog)
    yield page
    context.close()


def wait_served(
    server: LiveServer, rec_id: str, seq: int, timeout_s: float = 10
) -> None:
    """Wait until the server's API shows `rec_id` at `seq` (the watcher caught up)."""
    import urllib.error
    import urllib.request

    def served() -> bool:
        try:
            url = f"{server.url}/api/recordings/{rec_id}"
            with urllib.request.urlopen(url, timeout=5) as response:
                return bool(json.loads(response.read())["seq"] == seq)
        except urllib.error.HTTPError:
            return False

    wait_until(served, timeout_s)
