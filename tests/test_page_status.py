"""Browser tests of the /status list page against the real server."""

from __future__ import annotations

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
    wait_served,
    write_status,
)
from support import CLIP

pytestmark = [pytest.mark.browser, pytest.mark.slow]

XSS_NAME = "<img src=x onerror=alert(1)>.mp4"
VIDEO = CLIP


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    yield from run_server(tmp_path / "recordings")


def conn_state(page: Any) -> str:
    return str(page.get_attribute("#conn", "data-state"))


def row_attr(page: Any, rec_id: str, name: str) -> str | None:
    return page.get_attribute(f"#rec-{rec_id}", name)


def test_rows_are_server_rendered_without_javascript(
    browser: Any, server: LiveServer
) -> None:
    write_status(
        server.recordings,
        make_status(
            "aaa111",
            "old.mp4",
            "completed",
            4,
            age_s=60,
            result=completed_result({"stop": (2, 57)}),
        ),
    )
    write_status(
        server.recordings,
        make_status("bbb222", "new.mp4", "processing", 2, frames_done=110),
    )
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{server.url}/status")

    ids = page.eval_on_selector_all(
        "#rec-list > li", "rows => rows.map(r => r.dataset.id)"
    )
    assert ids == ["bbb222", "aaa111"]
    assert page.get_attribute("#rec-aaa111 a", "href") == "/recordings/aaa111"
    assert page.text_content("#rec-bbb222 [data-field=percent]") == "50%"
    assert page.text_content("#rec-aaa111 .count").split() == ["stop", "2"]
    context.close()


def test_status_change_on_disk_updates_the_row_in_place(
    page: Any, server: LiveServer
) -> None:
    write_status(
        server.recordings, make_status("aaa111", "a.mp4", "processing", 1, age_s=30)
    )
    write_status(
        server.recordings,
        make_status(
            "bbb222", "b.mp4", "completed", 3, age_s=60, result=completed_result({})
        ),
    )
    page.goto(f"{server.url}/status")
    wait_conn(page, "live")
    page.evaluate("window.__marker = 1")
    other = page.query_selector("#rec-bbb222")
    page.evaluate("el => { el.__untouched = true; }", other)

    write_status(
        server.recordings,
        make_status("aaa111", "a.mp4", "processing", 2, age_s=30, frames_done=165),
    )
    started = time.monotonic()
    page.wait_for_function(
        "document.querySelector('#rec-aaa111 [data-field=percent]').textContent === '75%'",
        timeout=1000,
    )
    assert time.monotonic() - started < 1.0
    write_status(
        server.recordings,
        make_status(
            "aaa111",
            "a.mp4",
            "completed",
            3,
            age_s=30,
            result=completed_result({"stop": (1, 9)}),
        ),
    )
    page.wait_for_function(
        "document.querySelector('#rec-aaa111').dataset.state === 'completed'",
        timeout=1000,
    )

    assert page.evaluate("window.__marker") == 1
    assert page.evaluate("el => el.__untouched === true && el.isConnected", other)
    assert row_attr(page, "bbb222", "data-seq") == "3"
    assert page.is_hidden("#rec-aaa111 [data-field=progress]")
    assert page.text_content("#rec-aaa111 .count").split() == ["stop", "1"]


def test_new_and_removed_recordings_keep_newest_first(
    page: Any, server: LiveServer
) -> None:
    write_status(
        server.recordings,
        make_status(
            "aaa111", "a.mp4", "completed", 1, age_s=60, result=completed_result({})
        ),
    )
    page.goto(f"{server.url}/status")
    wait_conn(page, "live")
    page.evaluate("window.__marker = 1")

    write_status(server.recordings, make_status("ccc333", "c.mp4", "validated", 0))
    page.wait_for_selector("#rec-ccc333", timeout=2000)
    ids = page.eval_on_selector_all(
        "#rec-list > li", "rows => rows.map(r => r.dataset.id)"
    )
    assert ids == ["ccc333", "aaa111"]

    page.select_option("#filter-state", "completed")
    assert page.is_hidden("#rec-ccc333")
    assert page.is_visible("#rec-aaa111")
    page.select_option("#filter-state", "all")

    (server.recordings / "aaa111" / "status.json").unlink()
    (server.recordings / "aaa111").rmdir()
    page.wait_for_selector("#rec-aaa111", state="detached", timeout=3000)
    assert page.evaluate("window.__marker") == 1


def test_polls_while_socket_is_blocked_then_pauses_then_goes_live(
    page: Any, server: LiveServer
) -> None:
    proxy = SocketBlockingProxy(server.url)
    try:
        proxy.block()
        write_status(server.recordings, make_status("aaa111", "a.mp4", "processing", 1))
        page.goto(f"{proxy.url}/status")
        page.evaluate("window.__marker = 1")
        wait_conn(page, "polling")

        # While something is in progress: one GET every 2 s.
        since = time.monotonic()
        time.sleep(6.2)
        polls = proxy.log.count("GET", "/api/recordings", since)
        assert 2 <= polls <= 4, polls

        # A change reaches the page through polling.
        write_status(
            server.recordings,
            make_status(
                "aaa111",
                "a.mp4",
                "completed",
                2,
                result=completed_result({"stop": (1, 3)}),
            ),
        )
        page.wait_for_function(
            "document.querySelector('#rec-aaa111').dataset.state === 'completed'",
            timeout=4000,
        )
        wait_conn(page, "paused", 4000)

        # Nothing in progress: no more polling.
        since = time.monotonic()
        time.sleep(4.5)
        assert proxy.log.count("GET", "/api/recordings", since) == 0

        # The socket comes back: live again, and changes arrive at once.
        proxy.unblock()
        wait_conn(page, "live", 12_000)
        write_status(server.recordings, make_status("bbb222", "b.mp4", "validated", 0))
        page.wait_for_selector("#rec-bbb222", timeout=1500)
        since = time.monotonic()
        time.sleep(2.5)
        assert proxy.log.count("GET", "/api/recordings", since) == 0
        assert page.evaluate("window.__marker") == 1
    finally:
        proxy.close()


def test_polling_uses_etags(page: Any, server: LiveServer) -> None:
    write_status(server.recordings, make_status("aaa111", "a.mp4", "processing", 1))
    # The page's ETag must come from a list that already holds the recording.
    wait_served(server, "aaa111", 1)
    statuses: list[int] = []
    page.on(
        "response",
        lambda r: (
            statuses.append(r.status) if r.url.endswith("/api/recordings") else None
        ),
    )
    proxy = SocketBlockingProxy(server.url)
    try:
        proxy.block()
        page.goto(f"{proxy.url}/status")
        wait_conn(page, "polling")
        # Playwright delivers events only while it runs: wait inside it.
        page.wait_for_timeout(4500)
        assert len(statuses) >= 2
        # The page starts from the server-rendered list's ETag: nothing changed.
        assert set(statuses) == {304}
    finally:
        proxy.close()


def test_socket_dropping_mid_session_falls_back_to_polling(
    page: Any, server: LiveServer
) -> None:
    write_status(server.recordings, make_status("aaa111", "a.mp4", "processing", 1))
    proxy = SocketBlockingProxy(server.url)
    try:
        page.goto(f"{proxy.url}/status")
        wait_conn(page, "live")
        proxy.block()
        wait_conn(page, "polling", 8000)
        write_status(
            server.recordings,
            make_status("aaa111", "a.mp4", "processing", 2, frames_done=22),
        )
        page.wait_for_function(
            "document.querySelector('#rec-aaa111').dataset.seq === '2'", timeout=4000
        )
        proxy.unblock()
        wait_conn(page, "live", 12_000)
    finally:
        proxy.close()


def test_user_supplied_name_is_text(page: Any, server: LiveServer) -> None:
    write_status(
        server.recordings,
        make_status(
            "aaa111",
            XSS_NAME,
            "completed",
            1,
            result=completed_result({"<b>x</b>": (1, 1)}),
        ),
    )
    page.goto(f"{server.url}/status")
    wait_conn(page, "live")
    write_status(server.recordings, make_status("bbb222", XSS_NAME, "processing", 1))
    page.wait_for_selector("#rec-bbb222")

    assert page.text_content("#rec-aaa111 [data-field=name]") == XSS_NAME
    assert page.text_content("#rec-bbb222 [data-field=name]") == XSS_NAME
    assert page.query_selector("#rec-list img") is None
    assert page.query_selector("#rec-list b") is None
    page.wait_for_timeout(300)
    assert page.dialogs == []


def test_upload_refusal_shows_the_server_message(
    page: Any, server: LiveServer, tmp_path: Path
) -> None:
    junk = tmp_path / "notes.mp4"
    junk.write_text("this is not a video\n" * 50)
    page.goto(f"{server.url}/status")
    wait_conn(page, "live")

    page.set_input_files("#upload-file", str(junk))
    with page.expect_response(lambda r: r.url.endswith("/api/recordings")) as answer:
        page.click("#upload-button")
    body = answer.value.json()
    assert answer.value.status >= 400

    page.wait_for_function("document.getElementById('upload-error').textContent !== ''")
    assert page.text_content("#upload-error") == body["error"]["message"]
    assert page.query_selector("#rec-list > li") is None


def test_upload_shows_the_new_row_at_once(page: Any, server: LiveServer) -> None:
    page.goto(f"{server.url}/status")
    wait_conn(page, "live")
    page.evaluate("window.__marker = 1")

    page.set_input_files("#upload-file", str(VIDEO))
    with page.expect_response(lambda r: r.url.endswith("/api/recordings")) as answer:
        page.click("#upload-button")
    status = answer.value.json()
    assert answer.value.status == 201, status

    row = page.wait_for_selector(f"#rec-{status['id']}", timeout=1000)
    assert row.query_selector("[data-field=name]").text_content() == VIDEO.name
    assert page.text_content("#upload-error") == ""
    assert page.evaluate("window.__marker") == 1
    assert server.runner.submitted == [status["id"]]


@pytest.mark.parametrize("viewport", list(VIEWPORTS), ids=list(VIEWPORTS))
def test_screenshot(browser: Any, server: LiveServer, viewport: str) -> None:
    width, height = VIEWPORTS[viewport]
    write_status(
        server.recordings,
        make_status(
            "aaa111", "dashcam-morning.mp4", "processing", 5, age_s=10, frames_done=132
        ),
    )
    write_status(
        server.recordings,
        make_status(
            "bbb222", "queued-clip.mov", "validated", 0, age_s=5, frames_total=None
        ),
    )
    write_status(
        server.recordings,
        make_status(
            "ccc333",
            "highway.mp4",
            "completed",
            9,
            age_s=300,
            result=completed_result(
                {"stop": (2, 57), "speedlimit": (3, 80), "crosswalk": (1, 9)}
            ),
        ),
    )
    write_status(
        server.recordings,
        make_status(
            "ddd444",
            "broken.avi",
            "error",
            3,
            age_s=600,
            error="The file has no video stream.",
        ),
    )
    context = browser.new_context(
        bypass_csp=True, viewport={"width": width, "height": height}
    )
    page = context.new_page()
    page.goto(f"{server.url}/status")
    wait_conn(page, "live")
    path = save_screenshot(page, f"status-{viewport}")
    assert path.stat().st_size > 0
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, "the page scrolls sideways"
    context.close()


def test_thousand_recordings_update_one_row(browser: Any, tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    for i in range(1000):
        state = "processing" if i == 0 else "completed"
        result = None if i == 0 else completed_result({"stop": (1, 2)})
        write_status(
            root,
            make_status(f"r{i:05d}", f"clip-{i}.mp4", state, 1, age_s=i, result=result),
        )
    for server in run_server(root):
        context = browser.new_context(
            bypass_csp=True, viewport={"width": 1280, "height": 800}
        )
        page = context.new_page()
        page.goto(f"{server.url}/status")
        wait_conn(page, "live")
        assert (
            page.eval_on_selector_all("#rec-list > li", "rows => rows.length") == 1000
        )
        page.evaluate(
            """() => {
                window.__touched = new Set();
                new MutationObserver((records) => {
                    for (const r of records) {
                        const target = r.target.nodeType === 1 ? r.target : r.target.parentElement;
                        const row = target.closest('li.rec');
                        window.__touched.add(row ? row.dataset.id : 'outside-rows');
                    }
                }).observe(document.getElementById('rec-list'),
                           {subtree: true, childList: true, attributes: true, characterData: true});
            }"""
        )
        write_status(
            root, make_status("r00000", "clip-0.mp4", "processing", 2, frames_done=110)
        )
        started = time.monotonic()
        page.wait_for_function(
            "document.querySelector('#rec-r00000').dataset.seq === '2'", timeout=1000
        )
        assert time.monotonic() - started < 1.0
        page.wait_for_timeout(200)
        assert page.evaluate("[...window.__touched]") == ["r00000"]
        context.close()


def test_page_runs_under_its_content_security_policy(
    browser: Any, server: LiveServer
) -> None:
    """No bypass here: the real CSP header applies, and the page still goes live."""
    write_status(server.recordings, make_status("csp1", "csp.mp4", state="processing"))
    context = browser.new_context()
    page = context.new_page()
    violations: list[str] = []
    page.on(
        "console",
        lambda msg: (
            violations.append(msg.text)
            if "Content Security Policy" in msg.text
            else None
        ),
    )
    response = page.goto(f"{server.url}/status")
    page.locator('#conn[data-state="live"]').wait_for(timeout=10_000)
    page.locator("#rec-csp1").wait_for(timeout=10_000)
    context.close()

    assert (
        response is not None
        and "default-src 'self'" in response.headers["content-security-policy"]
    )
    assert violations == []
