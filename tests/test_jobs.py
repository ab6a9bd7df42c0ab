"""Uploads and jobs through a real server: validation, cancel, retry, delete, crashes."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import jsonschema
import psutil
import pytest
import requests
from support import CLIP, SCHEMA, LiveServer, wait_until

from server.recordings import read_status


def upload(
    server: LiveServer, path: Path, field: str = "file", **form: Any
) -> requests.Response:
    with path.open("rb") as handle:
        return requests.post(
            server.url + "/api/recordings",
            files={field: (path.name, handle, "video/mp4")},
            data=form,
            timeout=60,
        )


def state_of(server: LiveServer, rec_id: str) -> dict[str, Any]:
    return requests.get(f"{server.url}/api/recordings/{rec_id}", timeout=10).json()


def wait_state(
    server: LiveServer, rec_id: str, *states: str, timeout: float = 60
) -> dict[str, Any]:
    return wait_until(
        lambda: (s := state_of(server, rec_id))["state"] in states and s,
        timeout=timeout,
    )


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


def test_upload_runs_to_completed(live_server: LiveServer) -> None:
    response = upload(live_server, CLIP, stride="2", batch="3")
    assert response.status_code == 201, response.text
    status = response.json()
    rec_id = status["id"]

    done = wait_state(live_server, rec_id, "completed", "error")

    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(status, schema)
    jsonschema.validate(done, schema)
    assert status["state"] == "validated"
    assert status["name"] == CLIP.name
    assert status["video"]["frames"] > 200 and status["video"]["width"] == 960
    assert status["options"]["stride"] == 2 and status["options"]["batch"] == 3
    assert done["state"] == "completed", done["error"]
    assert done["progress"]["frames_done"] == done["progress"]["frames_total"]
    assert done["progress"]["frames_total"] == (status["video"]["frames"] + 1) // 2
    assert done["result"]["frames_processed"] == done["progress"]["frames_total"]
    names = {d["name"] for d in done["downloads"]}
    assert {"detections.jsonl", "detections.csv"} <= names
    csv = requests.get(
        live_server.url + f"/api/recordings/{rec_id}/files/detections.csv", timeout=10
    )
    assert csv.status_code == 200 and csv.text.startswith("frame,")


def _truncated(tmp_path: Path) -> Path:
    path = tmp_path / "truncated.mp4"
    path.write_bytes(CLIP.read_bytes()[: CLIP.stat().st_size // 3])
    return path


def _text(tmp_path: Path) -> Path:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 100)
    return path


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize(
    ("make", "field", "form", "code", "error", "words"),
    [
        (_text, "file", {}, 422, "invalid_upload", "video"),
        (_truncated, "file", {}, 422, "invalid_upload", ""),
        (_empty, "file", {}, 422, "invalid_upload", "empty"),
        (lambda t: CLIP, "video", {}, 400, "bad_request", "'file'"),
        (lambda t: CLIP, "file", {"stride": "zero"}, 400, "bad_request", "stride"),
        (lambda t: CLIP, "file", {"imgsz": "33"}, 400, "bad_request", "imgsz"),
        (lambda t: CLIP, "file", {"colour": "red"}, 400, "bad_request", "colour"),
    ],
    ids=[
        "text",
        "truncated",
        "empty",
        "wrong-field",
        "bad-stride",
        "bad-imgsz",
        "unknown-field",
    ],
)
def test_bad_uploads_leave_nothing(
    shared_server: LiveServer, tmp_path: Path, make: Any, field: str,
    form: dict[str, str], code: int, error: str, words: str,
) -> None:  # fmt: skip
    before = leftovers(shared_server.root)

    response = upload(shared_server, make(tmp_path), field=field, **form)

    assert response.status_code == code, response.text
    body = response.json()["error"]
    assert body["code"] == error and words in body["message"]
    assert leftovers(shared_server.root) == before


def test_not_multipart(shared_server: LiveServer) -> None:
    response = requests.post(shared_server.url + "/api/recordings", data=b"raw", timeout=10,
                             headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    assert response.status_code == 400
    assert "multipart/form-data" in response.json()["error"]["message"]


def test_too_large(server_factory: Any) -> None:
    server = server_factory(SIGNWATCH_MAX_UPLOAD_BYTES="100000")
    response = upload(server, CLIP)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert leftovers(server.root) == []


def test_cancel_retry_delete(server_factory: Any) -> None:
    server = server_factory(SIGNWATCH_FAKE_DELAY_S="0.05")
    first = upload(server, CLIP).json()
    queued = upload(server, CLIP).json()
    wait_state(server, first["id"], "processing")

    # Cancel the queued one, then the running one.
    cancelled_queued = requests.post(
        f"{server.url}/api/recordings/{queued['id']}/cancel", timeout=30
    ).json()
    cancelled = requests.post(
        f"{server.url}/api/recordings/{first['id']}/cancel", timeout=30
    ).json()
    conflict = requests.post(
        f"{server.url}/api/recordings/{first['id']}/cancel", timeout=30
    )

    assert (
        cancelled_queued["state"] == "error"
        and cancelled_queued["error"] == "Cancelled by user."
    )
    assert cancelled["state"] == "error" and cancelled["error"] == "Cancelled by user."
    assert conflict.status_code == 409
    assert not (server.root / first["id"] / "detections.jsonl").exists()

    # Retry runs it again to the end; deleting removes the folder.
    retried = requests.post(
        f"{server.url}/api/recordings/{queued['id']}/retry", timeout=30
    ).json()
    assert retried["state"] == "validated" and retried["error"] is None
    done = wait_state(server, queued["id"], "completed", "error", timeout=120)
    assert done["state"] == "completed"
    deleted = requests.delete(f"{server.url}/api/recordings/{done['id']}", timeout=10)
    assert deleted.status_code == 204
    assert not (server.root / done["id"]).exists()
    assert (
        requests.get(
            f"{server.url}/api/recordings/{done['id']}", timeout=10
        ).status_code
        == 404
    )


def test_delete_refused_while_active(server_factory: Any) -> None:
    server = server_factory(SIGNWATCH_FAKE_DELAY_S="0.05")
    rec = upload(server, CLIP).json()
    wait_state(server, rec["id"], "processing")
    response = requests.delete(f"{server.url}/api/recordings/{rec['id']}", timeout=10)
    assert response.status_code == 409
    requests.post(f"{server.url}/api/recordings/{rec['id']}/cancel", timeout=30)


def test_worker_crash_mid_job(server_factory: Any) -> None:
    server = server_factory(SIGNWATCH_DETECTOR="fakes:crash_detector")
    rec = upload(server, CLIP).json()

    failed = wait_state(server, rec["id"], "error", "completed")

    assert failed["state"] == "error"
    assert (
        "stopped unexpectedly" in failed["error"] and "exit code 3" in failed["error"]
    )
    assert requests.get(server.url + "/healthz", timeout=10).json()["ok"] is True


def test_restart_recovers_interrupted_job(server_factory: Any, tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    server = server_factory(root, SIGNWATCH_FAKE_DELAY_S="0.05")
    rec = upload(server, CLIP).json()
    wait_state(server, rec["id"], "processing")
    workers = psutil.Process(server.proc.pid).children(recursive=True)
    assert workers
    os.kill(server.proc.pid, signal.SIGKILL)  # a crash: no clean shutdown
    server.proc.wait(10)
    _, alive = psutil.wait_procs(workers, timeout=20)
    assert not alive, "workers must not outlive the server"
    assert read_status(root, rec["id"])["state"] == "processing"
    (root / ".upload-deadbeef0000").mkdir()  # a half-received upload

    restarted = server_factory(root)
    done = wait_state(restarted, rec["id"], "completed", "error", timeout=120)

    assert done["state"] == "completed"
    assert done["attempts"] == 2
    assert not (root / ".upload-deadbeef0000").exists()


def test_restart_fails_job_without_video(server_factory: Any, tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    server = server_factory(root, SIGNWATCH_FAKE_DELAY_S="0.05")
    rec = upload(server, CLIP).json()
    wait_state(server, rec["id"], "processing")
    workers = psutil.Process(server.proc.pid).children(recursive=True)
    server.stop(kill=True)
    psutil.wait_procs(workers, timeout=20)
    for source in (root / rec["id"]).glob("source.*"):
        source.unlink()

    restarted = server_factory(root)
    failed = wait_state(restarted, rec["id"], "error", "completed")

    assert "missing" in failed["error"]


def test_multipart_cut_short(shared_server: LiveServer) -> None:
    before = leftovers(shared_server.root)
    body = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\n'
    body += CLIP.read_bytes()[:50000]
    response = requests.post(
        shared_server.url + "/api/recordings",
        data=body,
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
        timeout=30,
    )
    assert response.status_code == 400
    assert "multipart body" in response.json()["error"]["message"]
    assert leftovers(shared_server.root) == before


def test_plain_form_post_redirects(shared_server: LiveServer) -> None:
    with CLIP.open("rb") as handle:
        response = requests.post(
            shared_server.url + "/api/recordings",
            files={"file": (CLIP.name, handle, "video/mp4")},
            data={"imgsz": "", "stride": "4"},
            headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
            allow_redirects=False,
            timeout=30,
        )
    assert response.status_code == 303
    rec_id = response.headers["Location"].rsplit("/", 1)[1]
    assert state_of(shared_server, rec_id)["options"]["stride"] == 4
