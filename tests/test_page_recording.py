"""Browser tests of the /recordings/<id> page against the real server."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from page_support import (
    VIEWPORTS,
    LiveServer,
    SocketBlockingProxy,
    completed_result,
    make_status,
    run_server,
    save_screenshot,
    wait_conn,
    write_status,
)
from PIL import Image
from support import CLIP

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REC = "aaa111"
XSS_NAME = "<img src=x onerror=alert(1)>.mp4"
VIDEO = CLIP


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    yield from run_server(tmp_path / "recordings")


def wait_seq(page: Any, seq: int, timeout_ms: int = 1000) -> None:
    page.wait_for_function(
        "seq => document.getElementById('recording').dataset.seq === String(seq)",
        arg=seq,
        timeout=timeout_ms,
    )


def write_results(root: Path, rec_id: str, with_video: bool) -> list[dict[str, Any]]:
    """Result files as the pipeline writes them; returns the `downloads` list."""
    folder = root / rec_id
    (folder / "thumbs").mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "frame": f,
            "time_s": f / 25,
            "class": cls,
            "confidence": 0.8,
            "track_id": track,
            "box": [10, 10, 40, 40],
        }
        for f, cls, track in [
            (10, "stop", 1),
            (11, "stop", 1),
            (12, "stop", 1),
            (150, "stop", 2),
            (60, "crosswalk", 3),
            (200, "speedlimit", 4),
        ]
    ]
    (folder / "detections.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows)
    )
    (folder / "detections.csv").write_text("frame,time_s,class\n")
    names = [("detections.csv", "csv"), ("detections.jsonl", "jsonl")]
    for i, color in enumerate(["red", "blue", "green"]):
        Image.new("RGB", (64, 64), color).save(folder / "thumbs" / f"sign-{i}.jpg")
        names.append((f"thumbs/sign-{i}.jpg", "thumbnail"))
    if with_video and VIDEO.exists():
        shutil.copyfile(VIDEO, folder / "annotated.mp4")
        names.append(("annotated.mp4", "video"))
    return [
        {
            "name": name,
            "kind": kind,
            "url": f"/api/recordings/{rec_id}/files/{name}",
            "size_bytes": (folder / name).stat().st_size,
        }
        for name, kind in names
    ]


def completed(
    root: Path, seq: int, name: str = "dashcam.mp4", video: bool = True
) -> dict[str, Any]:
    downloads = write_results(root, REC, with_video=video)
    return make_status(
        REC,
        name,
        "completed",
        seq,
        result=completed_result(
            {"stop": (2, 4), "crosswalk": (1, 1), "speedlimit": (1, 1)}
        ),
        downloads=downloads,
    )


def test_live_progress_then_results(page: Any, server: LiveServer) -> None:
    write_status(server.recordings, make_status(REC, "dashcam.mp4", "processing", 1))
    page.goto(f"{server.url}/recordings/{REC}")
    wait_conn(page, "live")
    page.evaluate("window.__marker = 1")

    write_status(
        server.recordings,
        make_status(REC, "dashcam.mp4", "processing", 2, frames_done=55),
    )
    wait_seq(page, 2)
    assert page.text_content("[data-field=percent]") == "25%"
    assert page.is_enabled("#btn-cancel")
    assert page.is_disabled("#btn-delete")

    write_status(server.recordings, completed(server.recordings, 3))
    wait_seq(page, 3)
    page.wait_for_selector(".tl-lane .tl-mark", timeout=3000)

    assert page.is_hidden("[data-field=progress]")
    lanes = page.eval_on_selector_all(
        ".tl-lane .tl-label", "els => els.map(e => e.textContent)"
    )
    assert lanes[:3] == ["stop", "crosswalk", "speedlimit"]
    assert page.eval_on_selector_all(".gallery img", "els => els.length") == 3
    rows = page.eval_on_selector_all(
        ".counts-table tbody tr",
        "rows => rows.map(r => r.cells[0].textContent + r.cells[1].textContent + r.cells[2].textContent)",
    )
    assert rows == ["stop24", "crosswalk11", "speedlimit11"]
    links = page.eval_on_selector_all(
        ".downloads a", "els => els.map(e => e.textContent)"
    )
    assert "detections.csv" in links and "detections.jsonl" in links
    if VIDEO.exists():
        assert page.get_attribute(".player video", "src") == (
            f"/api/recordings/{REC}/files/annotated.mp4"
        )
    assert page.is_enabled("#btn-delete")
    assert page.evaluate("window.__marker") == 1


def test_cancel_and_json_errors(page: Any, server: LiveServer) -> None:
    write_status(server.recordings, make_status(REC, "dashcam.mp4", "processing", 1))
    page.goto(f"{server.url}/recordings/{REC}")
    wait_conn(page, "live")

    page.click("#btn-cancel")
    page.wait_for_function(
        "document.getElementById('recording').dataset.state === 'error'", timeout=3000
    )
    assert page.text_content("[data-field=error]") == "Cancelled by user."
    assert page.is_enabled("#btn-retry")

    # A refusal shows the server's message.
    message = "Recording 'aaa111' cannot be retried more than 3 times."
    page.route(
        f"**/api/recordings/{REC}/retry",
        lambda route: route.fulfill(
            status=409,
            content_type="application/json",
            body=json.dumps({"error": {"code": "conflict", "message": message}}),
        ),
    )
    page.click("#btn-retry")
    page.wait_for_function("document.getElementById('action-error').textContent !== ''")
    assert page.text_content("#action-error") == message


def test_delete_shows_notice(page: Any, server: LiveServer) -> None:
    write_status(server.recordings, completed(server.recordings, 1, video=False))
    page.goto(f"{server.url}/recordings/{REC}")
    wait_conn(page, "live")
    page.click("#btn-delete")
    assert page.dialogs and (server.recordings / REC).exists()
    page.accept_dialogs = True
    page.click("#btn-delete")
    page.wait_for_selector("#deleted-notice", state="visible", timeout=3000)
    assert not (server.recordings / REC).exists()


def test_polls_the_recording_while_socket_is_blocked(
    page: Any, server: LiveServer
) -> None:
    write_status(server.recordings, make_status(REC, "dashcam.mp4", "processing", 1))
    proxy = SocketBlockingProxy(server.url)
    try:
        proxy.block()
        page.goto(f"{proxy.url}/recordings/{REC}")
        wait_conn(page, "polling")
        since = time.monotonic()
        write_status(
            server.recordings,
            make_status(REC, "dashcam.mp4", "processing", 2, frames_done=110),
        )
        wait_seq(page, 2, 4000)
        time.sleep(4.2)
        polls = proxy.log.count("GET", f"/api/recordings/{REC}", since)
        assert 2 <= polls <= 4, polls

        write_status(server.recordings, completed(server.recordings, 3, video=False))
        wait_seq(page, 3, 4000)
        wait_conn(page, "paused", 4000)
        proxy.unblock()
        wait_conn(page, "live", 12_000)
    finally:
        proxy.close()


def test_user_supplied_name_is_text(page: Any, server: LiveServer) -> None:
    write_status(server.recordings, make_status(REC, XSS_NAME, "processing", 1))
    page.goto(f"{server.url}/recordings/{REC}")
    wait_conn(page, "live")
    write_status(
        server.recordings, completed(server.recordings, 2, name=XSS_NAME, video=False)
    )
    wait_seq(page, 2)

    assert page.text_content("h1") == XSS_NAME
    assert page.query_selector("img[src=x]") is None
    assert XSS_NAME in page.title()
    page.wait_for_timeout(300)
    assert page.dialogs == []


@pytest.mark.parametrize("viewport", list(VIEWPORTS), ids=list(VIEWPORTS))
def test_screenshot(browser: Any, server: LiveServer, viewport: str) -> None:
    width, height = VIEWPORTS[viewport]
    write_status(server.recordings, completed(server.recordings, 4))
    context = browser.new_context(
        bypass_csp=True, viewport={"width": width, "height": height}
    )
    page = context.new_page()
    page.goto(f"{server.url}/recordings/{REC}")
    wait_conn(page, "live")
    page.wait_for_selector(".tl-mark")
    path = save_screenshot(page, f"recording-{viewport}")
    assert path.stat().st_size > 0
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    context.close()
