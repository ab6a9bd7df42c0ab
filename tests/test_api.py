"""HTTP API of a real server: listing, ETag, JSON errors, files."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import jsonschema
import pytest
from support import SCHEMA, LiveServer, bump, make_recording, wait_until


def _request(
    url: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def _served(server: LiveServer) -> set[str]:
    return {s["id"] for s in server.get("/api/recordings")["recordings"]}


def test_list_is_newest_first_and_valid(live_server: LiveServer) -> None:
    root = live_server.root
    for rec_id in ("a1", "b2", "c3"):
        make_recording(root, rec_id)
    wait_until(lambda: _served(live_server) == {"a1", "b2", "c3"})

    listing = live_server.get("/api/recordings")["recordings"]

    assert [s["id"] for s in listing] == ["c3", "b2", "a1"]
    schema = json.loads(SCHEMA.read_text())
    for status in listing:
        jsonschema.validate(status, schema)


def test_etag_and_304(live_server: LiveServer) -> None:
    status = make_recording(live_server.root, "e1")
    wait_until(lambda: _served(live_server) == {"e1"})
    url = live_server.url + "/api/recordings"

    code, headers, _ = _request(url)
    etag = headers["etag"]
    again, _, body = _request(url, headers={"If-None-Match": etag})
    bump(live_server.root, status, state="processing")
    wait_until(lambda: live_server.get("/api/recordings/e1")["state"] == "processing")
    changed, new_headers, _ = _request(url, headers={"If-None-Match": etag})

    assert (code, again, body) == (200, 304, b"")
    assert changed == 200 and new_headers["etag"] != etag


@pytest.mark.parametrize(
    ("method", "path", "code", "error"),
    [
        ("GET", "/api/recordings/nothere", 404, "not_found"),
        ("GET", "/api/recordings/bad%20id", 400, "bad_request"),
        ("GET", "/api/recordings/..%2F..%2Fetc", 404, "not_found"),
        ("GET", "/no/such/route", 404, "not_found"),
        ("PUT", "/api/recordings", 405, "method_not_allowed"),
        ("DELETE", "/api/recordings/nothere", 404, "not_found"),
        ("POST", "/api/recordings/nothere/cancel", 404, "not_found"),
        ("GET", "/api/recordings/done/files/status.json", 404, "not_found"),
        (
            "GET",
            "/api/recordings/done/files/..%2Fdone%2Fstatus.json",
            400,
            "bad_request",
        ),
        ("GET", "/api/recordings/done/files/.hidden", 400, "bad_request"),
        ("POST", "/api/recordings/done/cancel", 409, "conflict"),
        ("GET", "/vendor/evil.js", 404, "not_found"),
    ],
    ids=lambda v: str(v),
)
def test_errors_are_json(
    shared_server: LiveServer, method: str, path: str, code: int, error: str
) -> None:
    if "done" not in _served(shared_server):
        make_recording(shared_server.root, "done", state="completed")
        wait_until(lambda: "done" in _served(shared_server))

    got, headers, body = _request(shared_server.url + path, method=method)

    assert got == code
    assert headers["content-type"].startswith("application/json")
    payload: dict[str, Any] = json.loads(body)
    assert payload["error"]["code"] == error
    assert payload["error"]["message"]


def test_result_file_served(live_server: LiveServer) -> None:
    make_recording(live_server.root, "files", state="completed")
    (live_server.root / "files" / "detections.csv").write_text("frame,time_s\n")
    wait_until(lambda: "files" in _served(live_server))

    code, _headers, body = _request(
        live_server.url + "/api/recordings/files/files/detections.csv"
    )

    assert code == 200 and body == b"frame,time_s\n"


def test_healthz(live_server: LiveServer) -> None:
    health = live_server.get("/healthz")
    assert health["ok"] is True
    assert health["watcher"] in {"inotify", "polling"}


def test_status_page_renders_without_js(live_server: LiveServer) -> None:
    make_recording(live_server.root, "page1", name="<b>bold</b>.mp4")
    wait_until(lambda: "page1" in _served(live_server))

    code, headers, body = _request(live_server.url + "/status")

    assert code == 200 and headers["content-type"].startswith("text/html")
    html = body.decode()
    assert "&lt;b&gt;bold&lt;/b&gt;.mp4" in html and "<b>bold</b>" not in html
    assert 'http-equiv="refresh"' not in html.lower()


def test_error_state_is_served(live_server: LiveServer) -> None:
    """A failed job's status reaches the API (reconciliation: test_watcher.py)."""
    status = make_recording(live_server.root, "r1")
    wait_until(lambda: "r1" in _served(live_server))
    bump(live_server.root, status, state="error", error="Boom.")
    wait_until(lambda: live_server.get("/api/recordings/r1")["state"] == "error")
