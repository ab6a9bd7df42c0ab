"""End to end: upload through the page, the real model runs, the page follows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from page_support import LiveServer, run_server
from support import CLIP

pytestmark = [pytest.mark.browser, pytest.mark.slow]

VIDEO = CLIP


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    yield from run_server(tmp_path / "recordings", real_runner=True)


@pytest.mark.timeout(600)
def test_upload_through_the_page_reaches_completed(
    browser: Any, server: LiveServer
) -> None:
    context = browser.new_context(
        bypass_csp=True, viewport={"width": 1280, "height": 800}
    )
    page = context.new_page()
    page.goto(f"{server.url}/status")
    page.wait_for_function("document.getElementById('conn').dataset.state === 'live'")
    page.evaluate("window.__marker = 1")

    # Every fifth frame keeps the run short on a small CPU.
    page.click(".upload-options summary")
    page.fill("input[name=stride]", "5")
    page.set_input_files("#upload-file", str(VIDEO))
    with page.expect_response(lambda r: r.url.endswith("/api/recordings")) as answer:
        page.click("#upload-button")
    status = answer.value.json()
    assert answer.value.status == 201, status
    assert status["options"]["stride"] == 5
    row = f"#rec-{status['id']}"
    page.wait_for_selector(row, timeout=1000)

    page.wait_for_function(
        f"['completed', 'error'].includes(document.querySelector('{row}').dataset.state)",
        timeout=540_000,
    )
    error = page.text_content(f"{row} [data-field=error]")
    assert page.get_attribute(row, "data-state") == "completed", error
    assert page.is_visible(f"{row} [data-field=counts]")
    assert page.evaluate("window.__marker") == 1

    page.click(f"{row} [data-field=name]")
    page.wait_for_url(f"**/recordings/{status['id']}")
    page.wait_for_selector("#timeline .tl-chart, #timeline p.hint:not(:empty)")
    assert "could not be loaded" not in page.text_content("#timeline")
    links = page.eval_on_selector_all(
        ".downloads a", "els => els.map(e => e.textContent)"
    )
    assert "detections.jsonl" in links
    context.close()
