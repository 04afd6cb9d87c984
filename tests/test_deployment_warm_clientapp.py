"""The partner's warm ClientApp and Flower's shortened polls, without a federation: the
supervisor restarts a ClientApp host that died, and the Flower 1.42 internals fedpath shortens
are still where it shortens them (this test fails first after a Flower upgrade moves them).

A whole deployed round through the warm host runs in ``test_deployment_loopback.py``.
"""

from __future__ import annotations

import inspect
import logging
import signal
import threading
import time
from pathlib import Path

from deployment_loopback import free_ports  # tests/ is on sys.path
from flwr.superlink.grid import http_grid
from flwr.supernode import start_client_internal

from fedpath.clients.daemon import clientapp_command
from fedpath.clients.supernode import cap_sleeps
from fedpath.clients.supervisor import SupernodeSettings, clientapp_supervisor
from fedpath.federation.flower_env import OBJECT_PULL_BACKOFF_S


def test_a_dead_clientapp_host_is_restarted_and_logged(tmp_path: Path, caplog) -> None:
    # Prepare: the real host command, its SuperNode's Runtime API not (yet) there
    caplog.set_level(logging.INFO, logger="fedpath.clients.supervisor")
    settings = SupernodeSettings(runtime_port=free_ports(1)[0], backoff_initial=0.2)
    supervisor = clientapp_supervisor(clientapp_command(settings), tmp_path, settings)
    stop = threading.Event()
    runner = threading.Thread(target=supervisor.run, args=(stop,))
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while supervisor.process is None and time.monotonic() < deadline:
            time.sleep(0.05)
        first = supervisor.process
        assert first is not None and supervisor.health()[0]

        # Execute: the host dies
        first.send_signal(signal.SIGKILL)
        while supervisor.starts < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        up_again = supervisor.health()
    finally:
        stop.set()
        runner.join(timeout=60)

    # Assert: its exit logged with the signal, and a new host started
    exits = [r for r in caplog.records if getattr(r, "event", None) == "clientapp_exit"]
    assert [r.code for r in exits] == [-signal.SIGKILL]
    assert supervisor.starts == 2 and supervisor.process is not first
    assert up_again[0] and up_again[1]["last_exit"]["code"] == -signal.SIGKILL
    assert (tmp_path / "clientapp.log").exists()
    assert not runner.is_alive() and supervisor.process.poll() is not None


def test_flowers_fixed_polls_are_where_fedpath_shortens_them() -> None:
    # Prepare: Flower 1.42's SuperNode loop sleeps 3 s when idle and pulls arrays with backoff
    source = inspect.getsource(start_client_internal)
    assert "time.sleep(3)" in source and "pull_objects(" in source
    assert "pull_objects(" in inspect.getsource(http_grid)

    # Execute
    cap_sleeps(0.05)
    started = time.monotonic()
    start_client_internal.time.sleep(3)
    slept = time.monotonic() - started

    # Assert: the idle poll is capped, object pulls retry sooner, time itself is untouched
    assert slept < 1.0
    assert start_client_internal.pull_objects.keywords["initial_backoff"] == OBJECT_PULL_BACKOFF_S
    assert abs(start_client_internal.time.time() - time.time()) < 1.0
