"""The status.json contract: ids, atomic writes, tolerant reads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest
from support import SCHEMA

from server.errors import BadRequestError, NotFoundError
from server.recordings import (
    check_id,
    new_id,
    new_status,
    parse_status,
    patch_status,
    read_status,
    write_status,
)
from server.store import StatusStore


@pytest.mark.parametrize(
    ("rec_id", "ok"),
    [
        ("3f2a9c0d1e4b", True),
        ("rec_1-b", True),
        ("a" * 64, True),
        ("a" * 65, False),
        ("", False),
        ("..", False),
        ("../etc", False),
        (".hidden", False),
        ("-lead", False),
        ("has space", False),
        ("semi;colon", False),
        ("uni\u00e9", False),
        ("nul\x00", False),
    ],
    ids=repr,
)
def test_check_id(rec_id: str, ok: bool) -> None:
    if ok:
        assert check_id(rec_id) == rec_id
    else:
        with pytest.raises(BadRequestError, match="Invalid recording id"):
            check_id(rec_id)


def test_new_ids_are_valid_and_unique() -> None:
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(check_id(i) for i in ids)


def test_new_status_matches_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(new_status("abc", "clip.mp4"), schema)


def test_write_is_atomic_and_leaves_no_temp(tmp_path: Path) -> None:
    (tmp_path / "r1").mkdir()
    status = write_status(tmp_path, new_status("r1", "clip.mp4"))

    assert read_status(tmp_path, "r1") == status
    assert os.listdir(tmp_path / "r1") == ["status.json"]


def test_patch_bumps_seq_and_time(tmp_path: Path) -> None:
    (tmp_path / "r1").mkdir()
    first = write_status(tmp_path, new_status("r1", "clip.mp4"))

    second = patch_status(tmp_path, "r1", state="processing")

    assert second["seq"] == first["seq"] + 1
    assert second["updated_at"] >= first["updated_at"]
    assert read_status(tmp_path, "r1") == second
    with pytest.raises(NotFoundError):
        patch_status(tmp_path, "missing", state="error")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   ",
        b"{",
        b"\xff\xfe",
        b"[]",
        b"null",
        b'{"id": "r1"}',
        b'{"id": "r1", "name": "x", "state": "bogus", "created_at": "", '
        b'"updated_at": "", "seq": 1, "progress": {}}',
        b'{"id": "r1", "name": "x", "state": "completed", "created_at": "", '
        b'"updated_at": "", "seq": true, "progress": {}}',
    ],
    ids=[
        "empty",
        "blank",
        "torn",
        "binary",
        "array",
        "null",
        "partial",
        "bad-state",
        "bool-seq",
    ],
)
def test_bad_files_are_rejected(tmp_path: Path, raw: bytes) -> None:
    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "status.json").write_bytes(raw)

    with pytest.raises(ValueError):
        parse_status(raw)
    assert read_status(tmp_path, "r1") is None


def test_id_must_match_folder(tmp_path: Path) -> None:
    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "status.json").write_text(json.dumps(new_status("other", "x")))
    assert read_status(tmp_path, "r1") is None


def test_store_keeps_last_good_and_orders(tmp_path: Path) -> None:
    store = StatusStore(tmp_path)
    changes: list[tuple[str, object]] = []
    store.subscribe(lambda rec_id, status: changes.append((rec_id, status)))
    for rec_id in ("a", "b"):
        (tmp_path / rec_id).mkdir()
        write_status(tmp_path, new_status(rec_id, f"{rec_id}.mp4"))
    for rec_id in ("a", "b"):
        store.refresh(rec_id)
    good = store.get("a")
    (tmp_path / "a" / "status.json").write_bytes(b"{torn")

    assert store.refresh("a") is False
    assert store.get("a") == good
    assert [s["id"] for s in store.all()] == ["b", "a"]
    assert store.apply({**good, "seq": good["seq"] - 1, "state": "error"}) is False
    etag = store.etag()
    assert store.apply({**good, "seq": good["seq"] + 1}) is True
    assert store.etag() != etag
    assert sorted(rec_id for rec_id, _ in changes) == ["a", "a", "b"]
