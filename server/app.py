"""The web application: Quart routes plus Socket.IO on one ASGI callable.

`create_app` wires the collaborators (store, watcher, event hub, job runner) and
returns an ASGI app whose lifespan starts and stops them with the server.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import socketio
from quart import Quart, Response, jsonify, render_template, request, send_file
from werkzeug.exceptions import HTTPException

from . import recordings, uploads
from .config import PROJECT_ROOT, Settings
from .errors import BadRequestError, ConflictError, NotFoundError, SignwatchError
from .events import EventHub, create_socketio
from .jobs import EmbeddedRunner, JobRunner
from .recordings import ACTIVE_STATES, Status, check_id
from .store import StatusStore
from .watcher import StatusWatcher

logger = logging.getLogger(__name__)

CLIENT_DIR = PROJECT_ROOT / "client"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
SOCKETIO_PATH = "socket.io"


@dataclass
class Services:
    """The long-lived parts of a running server, reachable from routes and tests."""

    settings: Settings
    store: StatusStore
    watcher: StatusWatcher
    hub: EventHub
    runner: JobRunner
    sio: socketio.AsyncServer


class SignwatchASGI:
    """Routes `/socket.io/` to python-socketio and everything else to Quart.

    Quart gets the lifespan events, so its `before_serving` starts the watcher,
    event hub and runner.
    """

    def __init__(
        self, app: Quart, sio: socketio.AsyncServer, services: Services
    ) -> None:
        self.app = app
        self.services = services
        self._sio_app = socketio.ASGIApp(sio, socketio_path=SOCKETIO_PATH)
        self._prefix = f"/{SOCKETIO_PATH}"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] in {"http", "websocket"} and path.startswith(self._prefix):
            await self._sio_app(scope, receive, send)
        else:
            await self.app(scope, receive, send)  # type: ignore[arg-type]


def create_app(settings: Settings, runner: JobRunner | None = None) -> SignwatchASGI:
    """Build the ASGI application for `settings`.

    Args:
        settings: resolved configuration.
        runner: job runner; the embedded one by default.
    """
    settings.recordings.mkdir(parents=True, exist_ok=True)
    store = StatusStore(settings.recordings)
    sio = create_socketio()
    services = Services(
        settings=settings,
        store=store,
        watcher=StatusWatcher(
            store,
            force_polling=settings.force_polling,
            reconcile_s=settings.reconcile_s,
            debounce_ms=settings.watch_step_ms,
            step_ms=settings.watch_step_ms,
        ),
        hub=EventHub(sio, store, progress_interval_s=settings.progress_interval_s),
        runner=runner or EmbeddedRunner(settings),
        sio=sio,
    )
    app = Quart(
        __name__,
        static_folder=str(CLIENT_DIR / "src"),
        static_url_path="/static",
        template_folder=str(TEMPLATES_DIR),
    )
    # Uploads stream to disk with their own limit; this bound only stops
    # bodies far beyond it before any byte is read.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes + 1024**2
    app.config["BODY_TIMEOUT"] = 3600
    app.config["RESPONSE_TIMEOUT"] = 3600
    app.extensions["signwatch"] = services
    _add_lifecycle(app, services)
    _add_error_handlers(app)
    _add_api_routes(app, services)
    _add_page_routes(app, services)
    return SignwatchASGI(app, sio, services)


def _add_lifecycle(app: Quart, services: Services) -> None:
    @app.before_serving
    async def start() -> None:
        await services.watcher.start()
        await services.hub.start()
        await services.runner.start(services.store)

    @app.after_serving
    async def stop() -> None:
        await services.runner.stop()
        await services.watcher.stop()
        await services.hub.stop()


def error_body(code: str, message: str) -> dict[str, Any]:
    """The JSON body of every error answer."""
    return {"error": {"code": code, "message": message}}


def _add_error_handlers(app: Quart) -> None:
    @app.errorhandler(SignwatchError)
    async def on_error(exc: SignwatchError) -> tuple[Response, int]:
        if exc.status_code >= 500:
            logger.error("request failed: %s", exc, exc_info=exc)
        return jsonify(error_body(exc.code, str(exc))), exc.status_code

    @app.errorhandler(HTTPException)
    async def on_http(exc: HTTPException) -> tuple[Response, int]:
        code = (exc.name or "error").lower().replace(" ", "_")
        message = exc.description or exc.name or "Request failed."
        if exc.code == 413:
            code, message = (
                "too_large",
                "The request body exceeds the upload size limit.",
            )
        return jsonify(error_body(code, message)), exc.code or 500

    @app.errorhandler(Exception)
    async def on_crash(exc: Exception) -> tuple[Response, int]:
        logger.error("unhandled error", exc_info=exc)
        return jsonify(
            error_body("internal", "The server failed to handle the request.")
        ), 500


def _find(services: Services, rec_id: str) -> Status:
    status = services.store.get(check_id(rec_id))
    if status is None:
        # The watcher may lag a write by a few milliseconds: ask the disk.
        services.store.refresh(rec_id)
        status = services.store.get(rec_id)
    if status is None:
        raise NotFoundError(f"No recording with id {rec_id!r}.")
    return status


def _add_api_routes(app: Quart, services: Services) -> None:
    settings = services.settings
    root = settings.recordings

    @app.get("/healthz")
    async def healthz() -> Response:
        return jsonify(
            ok=True,
            recordings=len(services.store),
            watcher=services.watcher.mode,
            runner=services.runner.describe(),
        )

    @app.get("/api/recordings")
    async def list_recordings() -> Response:
        etag = services.store.etag()
        if request.if_none_match.contains(etag):
            return Response(status=304, headers={"ETag": f'"{etag}"'})
        response = jsonify(recordings=services.store.all())
        response.set_etag(etag)
        response.headers["Cache-Control"] = "no-cache"
        return response

    @app.post("/api/recordings")
    async def upload() -> tuple[Response, int]:
        status = await uploads.receive(request, settings)
        services.store.apply(status)
        services.runner.submit(status["id"])
        if _wants_html():
            # A plain form post (no JavaScript): land on the recording's page.
            return Response(
                status=303, headers={"Location": f"/recordings/{status['id']}"}
            ), 303
        return jsonify(status), 201

    @app.get("/api/recordings/<rec_id>")
    async def get_recording(rec_id: str) -> Response:
        return jsonify(_find(services, rec_id))

    @app.delete("/api/recordings/<rec_id>")
    async def delete_recording(rec_id: str) -> tuple[str, int]:
        status = _find(services, rec_id)
        if status["state"] in ACTIVE_STATES:
            raise ConflictError(
                f"Recording {rec_id!r} is {status['state']}; cancel it before deleting."
            )
        await asyncio.to_thread(_remove_folder, root, rec_id)
        services.store.remove(rec_id)
        return "", 204

    @app.post("/api/recordings/<rec_id>/cancel")
    async def cancel(rec_id: str) -> Response:
        _find(services, rec_id)
        status = await services.runner.cancel(rec_id)
        services.store.apply(status)
        return jsonify(status)

    @app.post("/api/recordings/<rec_id>/retry")
    async def retry(rec_id: str) -> Response:
        _find(services, rec_id)
        status = await services.runner.retry(rec_id)
        services.store.apply(status)
        return jsonify(status)

    @app.get("/api/recordings/<rec_id>/files/<path:name>")
    async def get_file(rec_id: str, name: str) -> Response:
        _find(services, rec_id)
        path = _result_file(root / rec_id, name)
        return await send_file(path, conditional=True)


def _wants_html() -> bool:
    # On a tie (`*/*`, scripts) the first offer, JSON, wins.
    offers = ["application/json", "text/html"]
    return request.accept_mimetypes.best_match(offers) == "text/html"


def _result_file(folder: Path, name: str) -> Path:
    parts = Path(name).parts
    if not parts or any(p in {"..", "."} or p.startswith(".") for p in parts):
        raise BadRequestError(f"Invalid file name {name!r}.")
    if parts[0] == recordings.STATUS_FILE or parts[0].startswith("source."):
        raise NotFoundError(f"No result file named {name!r}.")
    path = (folder / name).resolve()
    if folder.resolve() not in path.parents or not path.is_file():
        raise NotFoundError(f"No result file named {name!r}.")
    return path


def _remove_folder(root: Path, rec_id: str) -> None:
    # Rename first so the recording disappears at once, then delete at leisure.
    trash = root / f".trash-{rec_id}-{recordings.new_id()}"
    (root / rec_id).rename(trash)
    shutil.rmtree(trash, ignore_errors=True)


CSP = (
    "default-src 'self'; img-src 'self' data:; media-src 'self'; "
    "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


def _add_page_routes(app: Quart, services: Services) -> None:
    vendor = CLIENT_DIR / "node_modules" / "socket.io-client" / "dist"

    @app.after_request
    async def harden(response: Response) -> Response:
        if response.mimetype == "text/html":
            response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.get("/")
    async def index() -> Response:
        return Response(status=302, headers={"Location": "/status"})

    @app.get("/status")
    async def status_page() -> str:
        statuses = services.store.all()
        boot = {"etag": services.store.etag()}
        return await render_template("status.html", recordings=statuses, boot=boot)

    @app.get("/recordings/<rec_id>")
    async def recording_page(rec_id: str) -> str:
        status = _find(services, rec_id)
        return await render_template("recording.html", recording=status)

    @app.get("/vendor/<name>")
    async def vendor_file(name: str) -> Response:
        if name not in {
            "socket.io.esm.min.js",
            "socket.io.esm.min.js.map",
            "socket.io.min.js",
            "socket.io.min.js.map",
        }:
            raise NotFoundError(f"No vendor file named {name!r}.")
        path = vendor / name
        if not path.is_file():
            raise NotFoundError(
                f"Vendor file {name!r} is missing; run the set-up (npm install in client/)."
            )
        return await send_file(path, conditional=True)
