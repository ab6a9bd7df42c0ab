"""Job runners: who takes `validated` recordings and runs inference on them.

`JobRunner` is the one interface the web app talks to, so a distributed queue
can replace `EmbeddedRunner` without touching routes. The embedded runner keeps
an in-process FIFO (upload order), runs each job in its own worker process
(inference never blocks the event loop, and a crash in native code kills only
that process) and supervises it: whatever way a job ends, its status ends in
`completed` or `error`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import importlib
import logging
import multiprocessing
import multiprocessing.synchronize
import os
import shutil
import signal
from pathlib import Path
from typing import Any, Protocol

from .config import Settings
from .errors import ConflictError, NotFoundError
from .recordings import (
    FINAL_STATES,
    Status,
    empty_progress,
    read_status,
    update_status,
)
from .store import StatusStore
from .uploads import remove_stale_staging

logger = logging.getLogger(__name__)

CANCELLED = "Cancelled by user."
MAX_ATTEMPTS = 3
_RESULT_NAMES = ("detections.jsonl", "detections.csv", "annotated.mp4", "thumbs")
_GRACE_S = 5.0
_PR_SET_PDEATHSIG = 1


class JobRunner(Protocol):
    """What the web app needs from a job runner."""

    async def start(self, store: StatusStore) -> None:
        """Recover interrupted jobs and begin taking work."""

    async def stop(self) -> None:
        """Stop taking work; interrupt running jobs so they recover on restart."""

    def submit(self, rec_id: str) -> None:
        """Queue a `validated` recording."""

    async def cancel(self, rec_id: str) -> Status:
        """Cancel a queued or running job; return the resulting status."""

    async def retry(self, rec_id: str) -> Status:
        """Queue a finished recording again; return its new status."""

    def describe(self) -> dict[str, Any]:
        """A small summary for /healthz."""


class EmbeddedRunner:
    """Runs jobs in worker processes of this machine, `settings.workers` at once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.recordings
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._running: dict[str, _Job] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._ctx = multiprocessing.get_context("spawn")

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "embedded",
            "workers": self.settings.workers,
            "queued": len(self._queued),
            "running": sorted(self._running),
        }

    async def start(self, store: StatusStore) -> None:
        remove_stale_staging(self.root)
        for status in sorted(store.all(), key=lambda s: (s["created_at"], s["id"])):
            if status["state"] == "processing":
                status = await asyncio.to_thread(self._recover, status["id"])
                store.apply(status)
            if status["state"] == "validated":
                self.submit(status["id"])
        self._workers = [
            asyncio.create_task(self._work_forever(), name=f"job-worker-{i}")
            for i in range(self.settings.workers)
        ]

    async def stop(self) -> None:
        # Running jobs stay `processing` on disk and are requeued on restart.
        for job in list(self._running.values()):
            job.abandon()
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []

    def submit(self, rec_id: str) -> None:
        if rec_id not in self._queued and rec_id not in self._running:
            self._queued.add(rec_id)
            self._queue.put_nowait(rec_id)

    async def cancel(self, rec_id: str) -> Status:
        job = self._running.get(rec_id)
        if job is not None:
            await asyncio.to_thread(job.cancel)
            return await self._wait_final(rec_id)
        status = self._read(rec_id)
        if status["state"] != "validated":
            raise ConflictError(
                f"Recording {rec_id!r} is {status['state']}; only queued or "
                "processing recordings can be cancelled."
            )
        self._queued.discard(rec_id)
        return await asyncio.to_thread(_finish, self.root, rec_id, "error", CANCELLED)

    async def retry(self, rec_id: str) -> Status:
        status = self._read(rec_id)
        if status["state"] not in FINAL_STATES:
            raise ConflictError(
                f"Recording {rec_id!r} is {status['state']}; only completed or "
                "failed recordings can be retried."
            )
        status = await asyncio.to_thread(_reset, self.root, rec_id, keep_attempts=False)
        self.submit(rec_id)
        return status

    def _read(self, rec_id: str) -> Status:
        status = read_status(self.root, rec_id)
        if status is None:
            raise NotFoundError(f"No recording with id {rec_id!r}.")
        return status

    def _recover(self, rec_id: str) -> Status:
        """Requeue a job a crash left `processing`, or fail it with the reason."""
        status = self._read(rec_id)
        if not _source(self.root / rec_id):
            return _finish(
                self.root,
                rec_id,
                "error",
                "The uploaded video is missing; it cannot be processed again.",
            )
        if status.get("attempts", 0) >= MAX_ATTEMPTS:
            return _finish(
                self.root,
                rec_id,
                "error",
                f"Processing was interrupted {status['attempts']} times; giving up.",
            )
        logger.warning("requeueing %s, interrupted while processing", rec_id)
        return _reset(self.root, rec_id, keep_attempts=True)

    async def _wait_final(self, rec_id: str) -> Status:
        while rec_id in self._running:
            await asyncio.sleep(0.05)
        return self._read(rec_id)

    async def _work_forever(self) -> None:
        while True:
            rec_id = await self._queue.get()
            if rec_id not in self._queued:
                continue
            self._queued.discard(rec_id)
            status = read_status(self.root, rec_id)
            if status is None or status["state"] != "validated":
                continue
            job = _Job(self._ctx, self.settings, rec_id)
            self._running[rec_id] = job
            try:
                await asyncio.to_thread(job.run)
            except Exception:
                logger.exception("supervising job %s failed", rec_id)
            finally:
                del self._running[rec_id]


class _Job:
    """One recording's worker process and its supervision."""

    def __init__(self, ctx: Any, settings: Settings, rec_id: str) -> None:
        self.rec_id = rec_id
        self.root = settings.recordings
        self.cancel_event: multiprocessing.synchronize.Event = ctx.Event()
        self.cancelled = False
        self.abandoned = False
        self.process = ctx.Process(
            target=worker_main,
            args=(
                str(self.root),
                rec_id,
                str(settings.weights),
                settings.detector,
                self.cancel_event,
            ),
            name=f"signwatch-job-{rec_id}",
            daemon=True,
        )

    def run(self) -> None:
        """Start the process, wait for it, and make sure the status is final."""
        self.process.start()
        self.process.join()
        code = self.process.exitcode
        if self.abandoned:
            return
        status = read_status(self.root, self.rec_id)
        if status is None or status["state"] in FINAL_STATES:
            return
        if self.cancelled:
            _finish(self.root, self.rec_id, "error", CANCELLED)
        else:
            logger.error("worker for %s died with exit code %s", self.rec_id, code)
            _finish(
                self.root,
                self.rec_id,
                "error",
                f"The inference worker stopped unexpectedly (exit code {code}).",
            )

    def abandon(self) -> None:
        """Kill the worker at shutdown, leaving its status for recovery."""
        self.abandoned = True
        if self.process.is_alive():
            self.process.kill()

    def cancel(self) -> None:
        """Ask the worker to stop; kill it if it does not within the grace time."""
        self.cancelled = True
        self.cancel_event.set()
        self.process.join(_GRACE_S)
        if self.process.is_alive():
            logger.warning("worker for %s ignored cancel; killing it", self.rec_id)
            self.process.kill()


def _source(folder: Path) -> Path | None:
    return next(iter(sorted(folder.glob("source.*"))), None)


def _finish(root: Path, rec_id: str, state: str, error: str | None) -> Status:
    def change(status: Status) -> None:
        status["state"] = state
        status["error"] = error

    return update_status(root, rec_id, change)


def _reset(root: Path, rec_id: str, keep_attempts: bool) -> Status:
    folder = root / rec_id
    for name in _RESULT_NAMES:
        path = folder / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def change(status: Status) -> None:
        status.update(
            state="validated",
            error=None,
            result=None,
            downloads=[],
            progress=empty_progress(),
        )
        if not keep_attempts:
            status["attempts"] = 0

    return update_status(root, rec_id, change)


def load_factory(path: str) -> Any:
    """Import `module:attribute`, the detector factory named in the settings."""
    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def worker_main(
    root_text: str,
    rec_id: str,
    weights: str,
    detector_path: str,
    cancel_event: multiprocessing.synchronize.Event,
) -> None:
    """Body of a worker process: run one recording to `completed` or `error`."""
    from . import offline

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    offline.configure()
    from . import inference, results

    parent = _die_with_parent()
    root = Path(root_text)
    folder = root / rec_id
    status = _start(root, rec_id)
    options = inference.InferenceOptions(**(status.get("options") or {}))
    try:
        source = _source(folder)
        if source is None:
            raise FileNotFoundError("The uploaded video is missing.")
        detector = load_factory(detector_path)(Path(weights), options)
        progress = functools.partial(_write_progress, root, rec_id)

        def should_stop() -> bool:
            if os.getppid() != parent:
                # The server died: leave `processing` for its restart to requeue.
                os._exit(1)
            return cancel_event.is_set()

        frames = (status.get("video") or {}).get("frames")
        result = inference.run_inference(
            source, folder, options, detector, progress, should_stop, frames_hint=frames
        )
    except inference.Cancelled:
        _finish(root, rec_id, "error", CANCELLED)
        return
    except Exception as exc:
        logger.exception("job %s failed", rec_id)
        _finish(root, rec_id, "error", _user_message(exc))
        return

    def complete(status: Status) -> None:
        status.update(
            state="completed",
            error=None,
            result=result,
            downloads=results.list_downloads(folder, rec_id),
        )
        status["progress"]["eta_s"] = 0.0

    update_status(root, rec_id, complete)


def _die_with_parent() -> int:
    """Ask Linux to kill this worker when the server dies; return the parent pid."""
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    return parent


def _start(root: Path, rec_id: str) -> Status:
    def change(status: Status) -> None:
        status.update(state="processing", error=None, progress=empty_progress())
        status["attempts"] = status.get("attempts", 0) + 1

    return update_status(root, rec_id, change)


def _user_message(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    if type(exc).__module__.startswith("server"):
        return text
    return f"Processing failed: {text}"


def _write_progress(
    root: Path,
    rec_id: str,
    frames_done: int,
    frames_total: int | None,
    fps: float | None,
    eta_s: float | None,
) -> None:
    # `run_inference` already reports at most four times a second.
    progress = {
        "frames_done": frames_done,
        "frames_total": frames_total,
        "fps": fps,
        "eta_s": eta_s,
    }
    update_status(root, rec_id, lambda s: s.update(progress=progress))
