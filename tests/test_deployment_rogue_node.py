"""An outsider holding only ``ca.crt`` cannot join the federation, and a node that is connected
without being a provisioned partner is never sampled, only reported.

The guard around the SuperLink's HTTP app is exercised directly (ASGI calls from chosen peer
addresses); the loopback test runs the real coordinator with the SuperLink bound to 0.0.0.0
and dials it, as an outsider would, at this machine's non-loopback address.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from deployment_loopback import FEDPATH, PARTNERS, Loopback, free_ports, http
from prometheus_samples import samples

from fedpath.clients.daemon import SupernodeSettings, supernode_command
from fedpath.federation.flower_env import flower_env
from fedpath.federation.layout import load_workspace
from fedpath.server.deployed.status import render_status, status_metrics
from fedpath.server.deployed.superlink_guard import LoopbackControl
from fedpath.server.provision import load_bundle, pki

MARKOV = {"model": "markov", "item_buckets": 64}
FLWR = str(Path(FEDPATH).with_name("flwr"))


# ------------------------------------------------------------------------------- the guard
async def _ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"served"})


def call(guard: LoopbackControl, path: str, peer: str) -> int:
    """The status the guarded app answers a POST to ``path`` from ``peer`` with."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "client": (peer, 40000)}
    asyncio.run(guard(scope, receive, send))
    return sent[0]["status"]


def test_the_guard_serves_the_fleet_api_to_all_and_the_rest_to_this_machine_only() -> None:
    # Prepare: the SuperLink bound to every address, as for partners on other machines
    guard = LoopbackControl(_ok, "0.0.0.0")
    register = "/v1/control/register-node"

    # Execute / Assert: outsiders reach the Fleet API and /health, nothing else
    assert call(guard, "/v1/fleet/pull-messages", "203.0.113.9") == 200
    assert call(guard, "/health", "203.0.113.9") == 200
    assert call(guard, register, "203.0.113.9") == 403
    assert call(guard, "/v1/runtime/pull-messages", "203.0.113.9") == 403
    assert call(guard, "/v1/fleet/../control/register-node", "203.0.113.9") == 403
    # ... this machine reaches everything, on IPv4, IPv6 and IPv4-mapped loopback
    for peer in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        assert call(guard, register, peer) == 200
    # ... a peer that dials the machine's own address is not loopback under a wildcard bind
    assert call(guard, register, "192.0.2.2") == 403
    # ... but is the coordinator's own when the SuperLink binds that one address
    assert call(LoopbackControl(_ok, "192.0.2.2"), register, "192.0.2.2") == 200


def test_status_and_metrics_report_unknown_nodes() -> None:
    # Prepare
    status = {
        "service": {"partners": {"alpha": {"node_id": 11, "index": 0}}},
        "campaign": {"campaign": "c0001", "connected_nodes": [11], "unknown_nodes": [99]},
    }

    # Execute
    text = render_status(status)
    metrics = samples(status_metrics(status))
    quiet = samples(status_metrics({"campaign": {"unknown_nodes": []}}))

    # Assert
    assert "WARNING" in text and "99" in text
    assert metrics["fedpath_unknown_nodes"] == 1
    assert quiet["fedpath_unknown_nodes"] == 0


# --------------------------------------------------------------------------- the loopback
def outside_address() -> str | None:
    """One of this machine's own non-loopback IPv4 addresses, or None if it has none."""
    candidates = set()
    with contextlib.suppress(OSError):
        candidates |= set(socket.gethostbyname_ex(socket.gethostname())[2])
    for target in ("192.0.2.254", "10.255.255.254", "203.0.113.1"):
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe,
            contextlib.suppress(OSError),
        ):
            probe.connect((target, 9))  # UDP: picks the route's source, sends nothing
            candidates.add(probe.getsockname()[0])
    for address in sorted(candidates):
        if ipaddress.ip_address(address).is_loopback:
            continue
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.bind((address, 0))
            return address
    return None


@pytest.fixture
def reachable(tmp_path: Path, shared_data: Path) -> Iterator[tuple[Loopback, str]]:
    """A loopback federation whose certificate also names this machine's outside address."""
    outside = outside_address()
    if outside is None:
        pytest.skip("this machine has no non-loopback address to dial as an outsider")
    rees46 = shared_data / "rees46-multicategory-sample" / "2019-Oct-head.csv"
    loop = Loopback.provision(tmp_path, rees46, MARKOV)
    project = yaml.safe_load((tmp_path / "project.yaml").read_text())
    project["coordinator"]["sans"] = [outside]
    (tmp_path / "project.yaml").write_text(yaml.safe_dump(project))
    shutil.rmtree(loop.kit.root)
    subprocess.run([FEDPATH, "provision", "project.yaml", "--out", "kit"], cwd=tmp_path, check=True)
    try:
        yield loop, outside
    finally:
        loop.close()


def flwr(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLWR, *args], capture_output=True, text=True, env=flower_env(home), timeout=120
    )


def json_tail(text: str) -> dict[str, Any]:
    start = text.find("{")
    with contextlib.suppress(json.JSONDecodeError):
        return json.loads(text[start:]) if start >= 0 else {}
    return {}


def outsider_home(root: Path, address: str, ca: Path) -> Path:
    """A Flower config that dials ``address`` trusting ``ca``: all an outsider has."""
    home = root / "outsider-home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "target"\n\n[superlink.target]\n'
        f'address = "{address}"\nroot-certificates = "{ca}"\n'
    )
    return home


# Two minutes of real processes: with the loopback campaign test and the reconnection test it
# would take the default run past ~10 minutes, so it runs with the slow deployment tests
# (`pytest -m slow tests/test_deployment_rogue_node.py`); the guard's refusals and the status
# report of unknown nodes are tested in the default run above.
@pytest.mark.slow
def test_an_outsider_cannot_register_and_a_rogue_node_gets_nothing(
    reachable: tuple[Loopback, str],
) -> None:
    # Prepare: the documented coordinator for partners on other machines (superlink 0.0.0.0)
    loop, outside = reachable
    config = loop.root / "coordinator.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "superlink": {"host": "0.0.0.0"},
                "training": {"strategy": "sum", "rounds": 1},
                "secagg": {"timeout": 120},
            }
        )
    )
    loop.start(
        "coordinator",
        "coordinator",
        "--workspace",
        str(loop.kit.coordinator),
        "--config",
        str(config),
        "--http-port",
        str(loop.http_port),
    )
    loop.wait(
        lambda: (
            all(p.get("node_id") for p in loop.service().get("partners", {}).values())
            and len(loop.service().get("partners", {})) == len(PARTNERS)
        ),
        300,
        "the partners' keys to be registered",
    )
    private, public = pki.openssh_key_pair()
    (loop.root / "rogue.pub").write_bytes(public)
    ca = load_workspace(loop.kit.coordinator).ca_cert

    # Execute 1: an outsider with ca.crt and a key of its own calls the Control API from outside
    outsider = flwr(
        outsider_home(loop.root, f"{outside}:{loop.port}", ca),
        *("supernode", "register", str(loop.root / "rogue.pub"), "target", "--format", "json"),
    )
    loop.wait(
        lambda: loop.service().get("refusals", {}).get("control API call from another machine"),
        60,
        "the coordinator to count the refused Control API call",
    )

    # Assert 1: refused; the key was not registered (the coordinator's own call succeeds next)
    assert not json_tail(outsider.stdout).get("success"), outsider.stdout + outsider.stderr
    superlink_log = (loop.state / "logs" / "superlink.log").read_text()
    assert f"fedpath guard refused /v1/control/register-node from {outside}" in superlink_log

    # Execute 2: the key registered anyway (an operator's slip, or before this guard existed),
    # and its SuperNode dials the Fleet API from outside; then the three partners join
    inside = flwr(
        loop.state / "flwr-home",
        *("supernode", "register", str(loop.root / "rogue.pub"), "fedpath", "--format", "json"),
    )
    registered = json_tail(inside.stdout)
    assert registered.get("success"), inside.stdout + inside.stderr
    rogue_id = int(registered["node-id"])
    rogue = start_rogue(loop, private, f"{outside}:{loop.port}")
    try:
        loop.wait(lambda: online(loop, rogue_id), 180, "the rogue node to connect")
        for index in range(len(PARTNERS)):
            loop.partner(index)
        loop.wait(loop.finished, 600, "the campaign to finish")
        status = loop.status_text()
        metrics = samples(http(f"http://127.0.0.1:{loop.http_port}/metrics")[1])
        still_online = online(loop, rogue_id)
    finally:
        with contextlib.suppress(ProcessLookupError):
            rogue.send_signal(signal.SIGTERM)
        rogue.wait(timeout=30)

    # Assert 2: the campaign completed with the three partners; the rogue received nothing
    campaign = loop.campaign()
    (record,) = campaign["records"]
    assert (record["participants"], record["dropped"]) == ([0, 1, 2], 0)
    assert campaign["promoted"]["published_to"] == [0, 1, 2]
    assert still_online, "the rogue must stay connected throughout, or the test proves nothing"
    rogue_out = (loop.root / "rogue" / "supernode.out").read_text()
    assert "Receiving:" not in rogue_out
    # ... and it is reported: status, fedpath status, metrics, the run's log
    assert campaign["unknown_nodes"] == [rogue_id]
    assert "WARNING" in status and str(rogue_id) in status
    assert "3 of 3 connected" in status
    assert metrics["fedpath_unknown_nodes"] == 1
    run_log = next((loop.state / "logs").glob("run-c0001-*.log")).read_text()
    warnings = [
        json.loads(line[line.index("{") :])
        for line in run_log.splitlines()
        if '"event": "unknown_node"' in line
    ]
    assert [w["node_id"] for w in warnings] == [rogue_id]


def start_rogue(loop: Loopback, private: bytes, address: str) -> subprocess.Popen[bytes]:
    """A SuperNode with the rogue key (from a copy of alpha's bundle) dialing ``address``."""
    bundle_dir = loop.root / "rogue"
    shutil.copytree(loop.kit.partners["alpha"], bundle_dir)
    (bundle_dir / "partner.key").unlink()
    pki.write_private(bundle_dir / "partner.key", private)
    command = supernode_command(
        load_bundle(bundle_dir),
        bundle_dir / "runtime.json",
        SupernodeSettings(runtime_port=free_ports(1)[0]),
    )
    command[command.index("--superlink") + 1] = address
    with (bundle_dir / "supernode.out").open("w") as sink:
        return subprocess.Popen(
            command,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=flower_env(bundle_dir / "fh"),
            start_new_session=True,
        )


def online(loop: Loopback, node_id: int) -> bool:
    """Whether the SuperLink lists ``node_id`` as online (the coordinator's own Flower config)."""
    nodes = json_tail(flwr(loop.state / "flwr-home", "supernode", "ls", "--format", "json").stdout)
    return any(
        int(n["node-id"]) == node_id and n["status"] == "online" for n in nodes.get("nodes", [])
    )
