"""In-memory index of every recording's last good status.

The recordings root may hold thousands of folders, so neither an HTTP request
nor a Socket.IO snapshot re-reads files: the watcher feeds changes in here and
readers take what is held.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from pathlib import Path

from .recordings import Status, read_status, sort_newest_first

logger = logging.getLogger(__name__)

ChangeListener = Callable[[str, Status | None], None]


class StatusStore:
    """The last good status of each recording, with change notification.

    Listeners get `(id, status)` for a new or changed recording and
    `(id, None)` for a removed one. They run synchronously, in the thread that
    applied the change (the event loop's, in the server).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._items: dict[str, Status] = {}
        self._sorted: list[Status] | None = None
        self._listeners: list[ChangeListener] = []
        self._boot = secrets.token_hex(4)
        self._generation = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, rec_id: object) -> bool:
        return rec_id in self._items

    def subscribe(self, listener: ChangeListener) -> None:
        """Call `listener` on every change from now on."""
        self._listeners.append(listener)

    def get(self, rec_id: str) -> Status | None:
        """The held status of one recording, or None."""
        return self._items.get(rec_id)

    def ids(self) -> set[str]:
        """Ids of every held recording."""
        return set(self._items)

    def all(self) -> list[Status]:
        """Every held status, newest first (cached between changes)."""
        if self._sorted is None:
            self._sorted = sort_newest_first(list(self._items.values()))
        return self._sorted

    def etag(self) -> str:
        """An (unquoted) entity tag that changes whenever any recording changes."""
        digest = hashlib.blake2s(
            f"{self._boot}:{self._generation}".encode(), digest_size=8
        ).hexdigest()
        return digest

    def apply(self, status: Status) -> bool:
        """Take a freshly read status; return True if it changed anything.

        A status older than the held one (lower `seq`) is ignored: events can
        arrive out of order. One with the same `seq` but other content is
        taken, since a hand-edited file may not bump `seq`.
        """
        rec_id = status["id"]
        held = self._items.get(rec_id)
        if held is not None and (status["seq"] < held["seq"] or status == held):
            return False
        self._items[rec_id] = status
        self._changed(rec_id, status)
        return True

    def remove(self, rec_id: str) -> bool:
        """Forget a recording; return True if it was held."""
        if self._items.pop(rec_id, None) is None:
            return False
        self._changed(rec_id, None)
        return True

    def refresh(self, rec_id: str) -> bool:
        """Re-read one recording's file and apply it (missing folder -> removed)."""
        status = read_status(self.root, rec_id)
        if status is not None:
            return self.apply(status)
        if not (self.root / rec_id).is_dir():
            return self.remove(rec_id)
        return False

    def _changed(self, rec_id: str, status: Status | None) -> None:
        self._sorted = None
        self._generation += 1
        for listener in self._listeners:
            try:
                listener(rec_id, status)
            except Exception:
                logger.exception("status listener failed for %s", rec_id)
