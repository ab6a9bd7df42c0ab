"""Shared fixtures: a real server on loopback with its own recordings root."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import LiveServer, start_server


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start real servers (`python -m server`); each is stopped after the test."""
    started: list[LiveServer] = []

    def start(
        root: Path | None = None, port: int | None = None, **env: str
    ) -> LiveServer:
        root = root or tmp_path / "recordings"
        root.mkdir(parents=True, exist_ok=True)
        server = start_server(root, tmp_path / "server.log", port, **env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def live_server(server_factory: Callable[..., LiveServer]) -> LiveServer:
    """A real server with the fake detector and an empty recordings root."""
    return server_factory()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One real server for a whole module of read-mostly tests."""
    base = tmp_path_factory.mktemp("shared")
    root = base / "recordings"
    root.mkdir()
    server = start_server(root, base / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium through Playwright, headless, for one module's tests.

    Module scope, not session: sync Playwright keeps its own event loop running
    in this thread, which would break the asyncio tests of later modules.
    """
    from page_support import launch_browser

    yield from launch_browser()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh desktop-sized page; dialogs are recorded in `page.dialogs`."""
    from page_support import open_page

    yield from open_page(browser)
