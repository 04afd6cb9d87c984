"""A partner whose SuperNode loses the coordinator's TLS identity while connected: real
coordinator and partner daemons on 127.0.0.1 (tests/deployment_loopback.py).

Flower 1.42's SuperNode gives up when a reconnection fails its TLS handshake but stays alive,
connected to nothing; the partner daemon must see it end, report it in /health, restart it with
backoff, and be connected again by itself once the coordinator's certificate is restored.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from deployment_loopback import Loopback, partner_health, start_partner

from fedpath.server.provision import provision
from fedpath.server.provision.project import load_project

MARKOV = {"model": "markov", "item_buckets": 512}
WAITING = {"strategy": "sum", "rounds": 1, "wait_all_s": 3600}  # the campaign waits: no round
FAST_BACKOFF = {"supernode": {"backoff_initial": 0.5, "backoff_max": 2.0}}


def supernode(loop: Loopback) -> dict:
    return partner_health(loop, 0).get("supernode") or {}


def supernode_events(loop: Loopback) -> list[dict]:
    """alpha's daemon log: its SuperNode's connections and exits, in order."""
    lines = (loop.root / "alpha.out").read_text().splitlines()
    events = [json.loads(line) for line in lines if '"event": "supernode_' in line]
    return [e for e in events if e["event"] in ("supernode_connected", "supernode_exit")]


def failed_tls(health: dict) -> bool:
    last_exit = (health.get("supernode") or {}).get("last_exit") or {}
    return "CERTIFICATE_VERIFY_FAILED" in (last_exit.get("reason") or "")


def restart_coordinator(loop: Loopback, tls: Path) -> None:
    """SIGKILL the coordinator, give it the TLS identity in ``tls``, start it again."""
    loop.kill("coordinator")
    live = loop.kit.coordinator / "tls"
    shutil.rmtree(live)
    shutil.copytree(tls, live)
    loop.coordinator(WAITING)


def test_a_partner_whose_tls_fails_on_reconnection_restarts_and_recovers(
    tmp_path: Path, shared_data: Path
) -> None:
    # Prepare: a coordinator waiting for all three partners (nothing trains), alpha connected,
    # and the TLS identity of another federation's coordinator (a CA alpha does not trust)
    rees46 = shared_data / "rees46-multicategory-sample" / "2019-Oct-head.csv"
    loop = Loopback.provision(tmp_path, rees46, MARKOV)
    try:
        foreign = provision(load_project(tmp_path / "project.yaml"), tmp_path / "other-kit")
        original = shutil.copytree(loop.kit.coordinator / "tls", tmp_path / "tls-original")
        loop.coordinator(WAITING)
        start_partner(loop, 0, FAST_BACKOFF)
        loop.wait(lambda: supernode(loop).get("state") == "connected", 120, "alpha to connect")
        first = supernode(loop)

        # Execute: the coordinator comes back with a certificate alpha cannot verify ...
        restart_coordinator(loop, foreign.coordinator / "tls")
        loop.wait(lambda: failed_tls(partner_health(loop, 0)), 90, "alpha's SuperNode to exit")
        broken = partner_health(loop, 0)
        # ... then with its own certificate again
        restart_coordinator(loop, original)
        loop.wait(lambda: supernode(loop).get("state") == "connected", 90, "alpha to reconnect")
        recovered = partner_health(loop, 0)

        # Assert: the SuperNode that failed the handshake exited (it did not linger), the daemon
        # said why in its log and in /health, restarted it with backoff, and it reconnected
        assert first["node_id"]  # (an earlier start may have been refused: keys not registered)
        events = supernode_events(loop)
        kinds = [e["event"] for e in events]
        connected = kinds.index("supernode_connected")
        assert kinds[connected + 1] == "supernode_exit"
        assert "CERTIFICATE_VERIFY_FAILED" in events[connected + 1]["reason"]
        backoffs = [e["backoff_s"] for e in events if e["event"] == "supernode_exit"]
        assert backoffs == [min(0.5 * 2**i, 2.0) for i in range(len(backoffs))]
        assert broken["status"] == "degraded" and broken["degraded"] == ["supernode"]
        assert broken["supernode"]["state"] != "connected"
        assert recovered["status"] != "degraded" and "degraded" not in recovered
        assert recovered["supernode"]["node_id"] == first["node_id"]
        assert recovered["supernode"]["starts"] > first["starts"]  # a fresh SuperNode, restarted
        assert kinds.count("supernode_connected") == 2
    finally:
        loop.close()
