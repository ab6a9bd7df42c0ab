"""Turns changes of `recordings/*/status.json` into store updates.

One watchfiles `awatch` over the recordings root does the fast path. Facts it
must absorb (watchfiles 1.3, Linux):

- an atomic `os.replace` arrives as `added`, not `modified`, so every change
  kind triggers a re-read;
- inotify is not recursive: when a folder and its `status.json` appear at once,
  the file's event is lost now and then, so a new folder is read directly;
- in `force_polling` mode (network mounts) rewrites within one second can be
  missed, so the reconciliation scan compares file identity and contents.

A periodic reconciliation scan backs all of this up, so a missed notification
cannot leave clients stale for longer than one scan interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets

from watchfiles import Change, awatch

from .recordings import STATUS_FILE, is_valid_id, list_ids
from .store import StatusStore

logger = logging.getLogger(__name__)

_PROBE_PREFIX = ".signwatch-probe-"
_Signature = tuple[int, int, int]


class StatusWatcher:
    """Watches a recordings root and keeps a `StatusStore` current.

    Args:
        store: the store to feed; its `root` is watched.
        debounce_ms: watchfiles debounce; small so a write is seen in ~15 ms.
        step_ms: watchfiles step between checks for more changes.
        reconcile_s: interval of the backup scan (inotify mode).
        poll_s: interval of watchfiles' polling and of the scan in polling mode.
        force_polling: True or False to choose; None to probe at start-up.
        probe_timeout_s: how long the start-up probe waits for its event.
    """

    def __init__(
        self,
        store: StatusStore,
        *,
        debounce_ms: int = 5,
        step_ms: int = 5,
        reconcile_s: float = 5.0,
        poll_s: float = 0.5,
        force_polling: bool | None = None,
        probe_timeout_s: float = 2.0,
    ) -> None:
        self.store = store
        self.root = store.root
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self.reconcile_s = reconcile_s
        self.poll_s = poll_s
        self.force_polling = force_polling
        self.probe_timeout_s = probe_timeout_s
        self.polling = bool(force_polling)
        self._signatures: dict[str, _Signature] = {}
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def mode(self) -> str:
        """'polling' or 'inotify' (the native notifier of the platform)."""
        return "polling" if self.polling else "inotify"

    async def start(self) -> None:
        """Probe the notifier, load every status and start watching."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self.force_polling is None and not await self._probe():
            logger.warning(
                "no file events arrive from %s (a network mount?); "
                "falling back to polling every %.1f s",
                self.root,
                self.poll_s,
            )
            self.polling = True
        self.reconcile()
        self._tasks = [
            asyncio.create_task(self._watch_forever(), name="watcher"),
            asyncio.create_task(self._reconcile_forever(), name="reconcile"),
        ]
        logger.info(
            "watching %s (%s, %d recordings)", self.root, self.mode, len(self.store)
        )

    async def stop(self) -> None:
        """Stop watching and wait for the tasks to end."""
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def reconcile(self) -> int:
        """Scan the root once; re-read what changed; return how many changed."""
        changed = 0
        present = set(list_ids(self.root))
        for rec_id in present:
            # Polling mode compares contents too: mtime may be whole seconds.
            if self.polling or self._signature(rec_id) != self._signatures.get(rec_id):
                changed += self._reread(rec_id)
        for rec_id in self.store.ids() - present:
            self._signatures.pop(rec_id, None)
            changed += self.store.remove(rec_id)
        if changed:
            logger.debug("reconciliation found %d changes", changed)
        return changed

    def _signature(self, rec_id: str) -> _Signature | None:
        try:
            st = os.stat(self.root / rec_id / STATUS_FILE)
        except OSError:
            return None
        # The inode changes on every os.replace, even within one mtime tick.
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _accepts(self, change: Change, path: str) -> bool:
        parent, name = os.path.split(path)
        if parent == str(self.root):
            return True
        return name == STATUS_FILE and os.path.dirname(parent) == str(self.root)

    def _handle(self, changes: set[tuple[Change, str]]) -> None:
        ids = set()
        for _change, path in changes:
            parent, name = os.path.split(path)
            # A folder event: read its status.json directly, its own event may be lost.
            rec_id = name if parent == str(self.root) else os.path.basename(parent)
            if is_valid_id(rec_id):
                ids.add(rec_id)
        for rec_id in ids:
            self._reread(rec_id)

    def _reread(self, rec_id: str) -> bool:
        """Re-read one recording into the store and remember its file identity."""
        signature = self._signature(rec_id)
        if signature is None:
            self._signatures.pop(rec_id, None)
        else:
            self._signatures[rec_id] = signature
        return self.store.refresh(rec_id)

    async def _watch_forever(self) -> None:
        while not self._stop.is_set():
            try:
                async for changes in awatch(
                    self.root,
                    watch_filter=self._accepts,
                    debounce=self.debounce_ms,
                    step=self.step_ms,
                    stop_event=self._stop,
                    force_polling=self.polling,
                    poll_delay_ms=int(self.poll_s * 1000),
                    recursive=True,
                    ignore_permission_denied=True,
                ):
                    self._handle(changes)
            except Exception:
                # The root vanished or the notifier failed: rescan, then resume.
                logger.warning("watcher stopped; restarting", exc_info=True)
            if not self._stop.is_set():
                await asyncio.sleep(0.5)
                self.root.mkdir(parents=True, exist_ok=True)
                self.reconcile()

    async def _reconcile_forever(self) -> None:
        interval = self.poll_s if self.polling else self.reconcile_s
        while not self._stop.is_set():
            await asyncio.sleep(interval)
            try:
                self.reconcile()
            except Exception:
                logger.exception("reconciliation scan failed")

    async def _probe(self) -> bool:
        """Write a probe file and tell whether its event arrives in time."""
        probe = self.root / f"{_PROBE_PREFIX}{secrets.token_hex(4)}"
        seen = asyncio.Event()
        stop = asyncio.Event()

        async def listen() -> None:
            async for changes in awatch(
                self.root, debounce=10, step=10, stop_event=stop, recursive=False
            ):
                if any(path == str(probe) for _change, path in changes):
                    seen.set()
                    return

        task = asyncio.create_task(listen())
        try:
            # The native watcher starts in a thread; write until it notices.
            deadline = asyncio.get_running_loop().time() + self.probe_timeout_s
            while not seen.is_set() and asyncio.get_running_loop().time() < deadline:
                probe.write_bytes(b"probe")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(seen.wait(), 0.1)
        finally:
            stop.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            probe.unlink(missing_ok=True)
        return seen.is_set()
