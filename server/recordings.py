"""The `status.json` contract: recording ids, status objects and atomic file I/O.

Every component that shows or changes a recording goes through this module: the
pipeline writes status files with `write_status`, the watcher and the API read
them with `read_status`. Writes are atomic (temp file in the same folder, fsync,
`os.replace`) so a reader sees either the old or the new file, never a mix.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import BadRequestError, NotFoundError

logger = logging.getLogger(__name__)

STATUS_FILE = "status.json"
STATES = ("validated", "processing", "completed", "error")
ACTIVE_STATES = frozenset({"validated", "processing"})
FINAL_STATES = frozenset({"completed", "error"})

_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_REQUIRED = {
    "id": str,
    "name": str,
    "state": str,
    "created_at": str,
    "updated_at": str,
    "seq": int,
    "progress": dict,
}

Status = dict[str, Any]

# One lock per recording serialises read-modify-write cycles inside a process.
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def new_id() -> str:
    """Return a fresh recording id (12 lowercase hex digits)."""
    return secrets.token_hex(6)


def is_valid_id(rec_id: str) -> bool:
    """Tell whether `rec_id` is a safe folder name for a recording."""
    return bool(_ID_PATTERN.fullmatch(rec_id))


def check_id(rec_id: str) -> str:
    """Return `rec_id` if it is a valid recording id, else raise BadRequestError."""
    if not is_valid_id(rec_id):
        raise BadRequestError(
            f"Invalid recording id {rec_id!r}; expected 1-64 letters, digits, "
            "'_' or '-', starting with a letter or digit."
        )
    return rec_id


def now_iso() -> str:
    """Current UTC time as an ISO 8601 string with a `Z` suffix."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def empty_progress() -> dict[str, Any]:
    """Progress of a recording nothing has been done for yet."""
    return {"frames_done": 0, "frames_total": None, "fps": None, "eta_s": None}


def new_status(rec_id: str, name: str, **fields: Any) -> Status:
    """Build the first status object of a recording (seq 0, state validated)."""
    stamp = now_iso()
    status: Status = {
        "id": check_id(rec_id),
        "name": name,
        "state": "validated",
        "created_at": stamp,
        "updated_at": stamp,
        "seq": 0,
        "progress": empty_progress(),
        "error": None,
        "result": None,
        "video": None,
        "options": None,
        "attempts": 0,
        "downloads": [],
    }
    status.update(fields)
    return status


def validate_status(data: Any) -> Status:
    """Check the shape a reader relies on; raise ValueError when it is wrong."""
    if not isinstance(data, dict):
        raise ValueError(f"Expected a JSON object, got {type(data).__name__}.")
    for key, kind in _REQUIRED.items():
        if not isinstance(data.get(key), kind) or isinstance(data.get(key), bool):
            raise ValueError(
                f"Field {key!r} must be {kind.__name__}, got {data.get(key)!r}."
            )
    if data["state"] not in STATES:
        raise ValueError(f"State {data['state']!r} is not one of {STATES}.")
    if not is_valid_id(data["id"]):
        raise ValueError(f"Id {data['id']!r} is not a valid recording id.")
    return data


def parse_status(raw: bytes) -> Status:
    """Parse and validate the bytes of a status file; raise ValueError if bad."""
    if not raw.strip():
        raise ValueError("File is empty.")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"Not valid JSON: {exc}.") from exc
    return validate_status(data)


def status_path(root: Path, rec_id: str) -> Path:
    """Path of a recording's status file."""
    return root / check_id(rec_id) / STATUS_FILE


def read_status(root: Path, rec_id: str) -> Status | None:
    """Read one status file; None when it is missing, torn or garbage.

    A bad file is logged and skipped: the caller keeps its last good copy.
    """
    path = status_path(root, rec_id)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("cannot read %s: %s", path, exc)
        return None
    try:
        status = parse_status(raw)
    except ValueError as exc:
        logger.warning("ignoring bad status file %s: %s", path, exc)
        return None
    if status["id"] != rec_id:
        logger.warning(
            "ignoring %s: its id %r does not match its folder", path, status["id"]
        )
        return None
    return status


def write_status(root: Path, status: Status) -> Status:
    """Write a status file atomically: temp file, fsync, `os.replace`.

    The folder must exist. Returns the status as written.
    """
    return write_status_file(root / check_id(status["id"]), status)


def write_status_file(folder: Path, status: Status) -> Status:
    """Write `status` atomically as `folder/status.json` (see `write_status`)."""
    payload = json.dumps(status, indent=1, sort_keys=True).encode()
    fd, tmp = tempfile.mkstemp(prefix=".status.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, folder / STATUS_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return status


def update_status(root: Path, rec_id: str, change: Callable[[Status], None]) -> Status:
    """Read, change and write back a status, bumping `seq` and `updated_at`.

    Args:
        root: recordings root.
        rec_id: the recording.
        change: mutates the status in place.
    """
    with _lock_for(rec_id):
        status = read_status(root, rec_id)
        if status is None:
            raise NotFoundError(f"No recording with id {rec_id!r}.")
        change(status)
        status["seq"] += 1
        status["updated_at"] = now_iso()
        return write_status(root, status)


def patch_status(root: Path, rec_id: str, **fields: Any) -> Status:
    """Set top-level fields of a status (see `update_status`)."""
    return update_status(root, rec_id, lambda status: status.update(fields))


def _lock_for(rec_id: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(rec_id, threading.Lock())


def list_ids(root: Path) -> list[str]:
    """Ids of the recording folders under `root` (valid names only)."""
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return []
    return [e.name for e in entries if e.is_dir() and is_valid_id(e.name)]


def sort_newest_first(statuses: list[Status]) -> list[Status]:
    """Order statuses by creation time, newest first (ties by id)."""
    return sorted(statuses, key=lambda s: (s["created_at"], s["id"]), reverse=True)
