"""A deployed federation of real processes on 127.0.0.1: provisioning, the coordinator
(SuperLink with TLS and node authentication) and three partner daemons (SuperNodes), trained
with SecAgg+, the promoted model answering /predict; intruders refused.

These start a dozen Python processes and Flower starts one more per message: on two cores the
default test takes one to three minutes, the `slow` ones several each.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from deployment_loopback import PARTNERS, Loopback, http
from prometheus_samples import samples

from fedpath.clients.daemon import SupernodeSettings, supernode_command
from fedpath.federation.flower_env import flower_env
from fedpath.federation.registry import ModelRegistry
from fedpath.server.provision import load_bundle, pki, provision
from fedpath.server.provision.project import load_project

MARKOV = {"model": "markov", "item_buckets": 512}


@pytest.fixture
def rees46(shared_data: Path) -> Path:
    return shared_data / "rees46-multicategory-sample" / "2019-Oct-head.csv"


@pytest.fixture
def markov_federation(tmp_path: Path, rees46: Path) -> Iterator[Loopback]:
    loop = Loopback.provision(tmp_path, rees46, MARKOV)
    try:
        yield loop
    finally:
        loop.close()


def coordinator_registry(loop: Loopback) -> ModelRegistry:
    key = (loop.kit.coordinator / "model.key").read_bytes()
    return ModelRegistry(loop.state / "registry", key=key)


def intruder(loop: Loopback, name: str, *, key: bool = False, ca: Path | None = None) -> str:
    """Run alpha's SuperNode command from a copy of its bundle with a foreign key or CA; return
    what it printed before it exited (it must exit: Flower gives up on a refusal)."""
    bundle_dir = loop.root / name
    shutil.copytree(loop.kit.partners["alpha"], bundle_dir)
    if key:
        (bundle_dir / "partner.key").unlink()
        pki.write_private(bundle_dir / "partner.key", pki.openssh_key_pair()[0])
    if ca is not None:
        shutil.copy(ca, bundle_dir / "ca.crt")
    command = supernode_command(
        load_bundle(bundle_dir),
        bundle_dir / "runtime.json",
        SupernodeSettings(runtime_port=loop.runtime_ports[0] + 1000),
    )
    output = bundle_dir / "supernode.out"
    with output.open("w") as sink:  # a file, not a pipe: Flower's children may keep a pipe open
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env=flower_env(bundle_dir / "fh")
        )
        code = process.wait(timeout=180)
    assert code != 0
    return output.read_text()


def registered(loop: Loopback) -> bool:
    partners = loop.service().get("partners", {})
    return len(partners) == len(PARTNERS) and all(p["node_id"] for p in partners.values())


def test_loopback_federation_trains_promotes_and_serves(markov_federation: Loopback) -> None:
    # Prepare: the coordinator registers the partners' keys, then the three partners join
    loop = markov_federation
    loop.coordinator({"strategy": "sum", "rounds": 1}, {"timeout": 120})
    loop.wait(lambda: registered(loop), 300, "the partners' keys to be registered")
    for index in range(len(PARTNERS)):
        loop.partner(index)

    # Execute: one round of the Markov chain (exact secure count sum) under SecAgg+
    loop.wait(loop.finished, 600, "the campaign to finish")
    answers = [
        http(f"http://127.0.0.1:{port}/predict", {"items": ["44600062", "3900821"], "k": 5})
        for port in loop.serve_ports
    ]
    status = loop.status_text()
    metrics = samples(http(f"http://127.0.0.1:{loop.http_port}/metrics")[1])

    # Assert: the round aggregated all three partners under SecAgg+
    campaign = loop.campaign()
    (record,) = campaign["records"]
    assert (record["round"], record["participants"], record["dropped"]) == (1, [0, 1, 2], 0)
    run_log = next((loop.state / "logs").glob("run-c0001-*.log")).read_text()
    assert "Secure aggregation completed" in run_log
    # ... the pair table crossed as a sketch sized by a secure sum of the partners' distinct pairs,
    # not as the dense 512² table (65,536 cells of 4 fields)
    sized = re.search(r"pair sketch: (\d+) cells for (\d+) summed distinct pairs of 3", run_log)
    assert sized is not None, run_log[-2000:]
    assert int(sized[2]) > 0 and int(sized[1]) < 512**2 // 4
    # ... the gate promoted the model, calibrated from secure sums, and every partner serves it
    registry = coordinator_registry(loop)
    promoted = registry.promoted()
    assert promoted is not None and promoted.decision["promoted"] is True
    calibration = registry.load(promoted.version).calibration
    assert calibration is not None and calibration.threshold == 0.85
    assert campaign["promoted"]["published_to"] == [0, 1, 2]
    for code, text in answers:
        assert code == 200, text
        body = json.loads(text)
        assert body["model_version"] == promoted.version
        assert body["calibrated"] is True
        assert body["cutoff_certified"] is True  # the decision's cutoff is the certified one
        assert 1 <= len(body["next_items"]) <= 5
        assert sum(body["next_action"].values()) == pytest.approx(1.0, abs=1e-5)
    assert "3 of 3 connected" in status and f"version {promoted.version}" in status
    assert metrics["fedpath_rounds_completed"] == 1
    assert metrics["fedpath_partners_connected"] == 3


@pytest.mark.slow
def test_an_unregistered_key_and_a_foreign_ca_are_refused(markov_federation: Loopback) -> None:
    # Prepare: a coordinator with its three partners registered (none of them needs to run)
    loop = markov_federation
    loop.coordinator({"strategy": "sum", "rounds": 1})
    loop.wait(lambda: registered(loop), 300, "the partners' keys to be registered")
    other_kit = provision(load_project(loop.root / "project.yaml"), loop.root / "other-kit")

    # Execute: alpha's bundle with a key of its own making, then with another federation's CA
    unregistered = intruder(loop, "unregistered", key=True)
    wrong_ca = intruder(loop, "wrong-ca", ca=other_kit.authority / "ca.crt")
    loop.wait(
        lambda: loop.service().get("refusals", {}).get("unregistered node key", 0) >= 1,
        60,
        "the coordinator to log the refusal",
    )

    # Assert: Flower refused both, and the coordinator counted the unknown key
    assert "Failed to activate SuperNode" in unregistered
    assert "CERTIFICATE_VERIFY_FAILED" in wrong_ca
    metrics = samples(http(f"http://127.0.0.1:{loop.http_port}/metrics")[1])
    assert metrics['fedpath_refusals_total{reason="unregistered node key"}'] == 1
    refusal = [
        json.loads(line)
        for line in (loop.root / "coordinator.out").read_text().splitlines()
        if '"event": "refused"' in line
    ]
    assert refusal[0]["reason"] == "unregistered node key" and refusal[0]["key_sha256"]


GRU = {
    "model": "gru4rec",
    "item_buckets": 256,
    "model_params": {"embedding_size": 16, "hidden_size": 16, "batch_size": 64},
    "max_weight": 2000,  # near the largest partner's train cases: SecAgg+ keeps its precision
}


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_a_partner_killed_mid_round_does_not_stop_the_round(tmp_path: Path, rees46: Path) -> None:
    # Prepare: three partners, SecAgg+ needs two of three shares; gamma will die. A stage waits
    # `timeout` for replies: long enough for a partner's local training on two loaded cores
    loop = Loopback.provision(tmp_path, rees46, GRU)
    try:
        loop.coordinator({"rounds": 2, "min_partners": 2, "wait_all_s": 120}, {"timeout": 180})
        loop.wait(lambda: registered(loop), 300, "the partners' keys to be registered")
        for index in range(len(PARTNERS)):
            loop.partner(index)
        supernode_log = loop.kit.partners["gamma"] / "work" / "supernode.log"

        # Execute: kill gamma while it trains in round 1: it has shared its SecAgg+ keys and
        # received the request for its masked update (its third training message)
        loop.wait(
            lambda: (
                supernode_log.is_file()
                and supernode_log.read_text().count("Receiving: train message") >= 3
            ),
            600,
            "gamma to be in the middle of round 1",
        )
        loop.kill("gamma")
        loop.wait(loop.finished, 900, "the campaign to finish without gamma")

        # Assert
        records = loop.campaign()["records"]
        assert [r["round"] for r in records] == [1, 2]
        assert records[0]["participants"] == [0, 1]
        assert records[0]["dropped_partners"] == [2]
        assert records[1]["participants"] == [0, 1]
        assert loop.campaign()["promoted"]["published_to"] == [0, 1]
    finally:
        loop.close()


def run_logs_say(loop: Loopback, text: str) -> bool:
    return any(text in p.read_text() for p in (loop.state / "logs").glob("run-*.log"))


def final_weights(loop: Loopback, round: int) -> dict[str, np.ndarray]:
    registry = coordinator_registry(loop)
    card = registry.find("c0001", round)
    assert card is not None
    return registry.load(card.version).get_weights()


@pytest.mark.slow
@pytest.mark.timeout(5400)
def test_a_restarted_coordinator_resumes_at_the_next_round(
    tmp_path: Path, rees46: Path, record_property
) -> None:
    # Prepare: the same federation twice: once uninterrupted, once with the coordinator killed
    # (twins: same keys, so the same item buckets and data)
    rounds = {"rounds": 3, "wait_all_s": 600}
    for name in ("uninterrupted", "restarted"):
        (tmp_path / name).mkdir()
    runs = {"uninterrupted": Loopback.provision(tmp_path / "uninterrupted", rees46, GRU)}
    runs["restarted"] = runs["uninterrupted"].twin(tmp_path / "restarted")
    try:
        straight = runs["uninterrupted"]
        straight.coordinator(rounds)
        straight.wait(lambda: registered(straight), 300, "registration")
        for index in range(len(PARTNERS)):
            straight.partner(index)
        straight.wait(straight.finished, 1500, "the uninterrupted campaign")
        straight.close()

        # Execute: kill the coordinator (and its ServerApp) once round 2 has started
        loop = runs["restarted"]
        loop.coordinator(rounds)
        loop.wait(lambda: registered(loop), 300, "registration")
        for index in range(len(PARTNERS)):
            loop.partner(index)
        loop.wait(loop.completed(1), 900, "round 1")
        loop.wait(lambda: run_logs_say(loop, "[ROUND 2]"), 300, "round 2 to start")
        loop.kill("coordinator")
        loop.coordinator(rounds)
        restarted = time.monotonic()
        loop.wait(lambda: run_logs_say(loop, "resumes after round 1"), 600, "the resumed run")
        to_resumed_run = time.monotonic() - restarted
        loop.wait(loop.completed(2), 900, "the resumed round 2")
        to_next_round = time.monotonic() - restarted
        loop.wait(loop.finished, 900, "the resumed campaign")
        record_property("restart_to_resumed_run_s", round(to_resumed_run, 1))
        record_property("restart_to_next_completed_round_s", round(to_next_round, 1))

        # Assert: every round exactly once, resumed at round 2, same model as uninterrupted
        records = loop.campaign()["records"]
        assert [r["round"] for r in records] == [1, 2, 3]
        registry = coordinator_registry(loop)
        assert [(v.campaign, v.round) for v in registry.versions()] == [
            ("c0001", 1),
            ("c0001", 2),
            ("c0001", 3),
        ]
        run_logs = sorted((loop.state / "logs").glob("run-c0001-*.log"))
        assert len(run_logs) == 2 and "resumes after round 1" in run_logs[-1].read_text()
        # SecAgg+ quantizes with stochastic rounding (unseeded), so two runs differ by its noise
        # (about 1e-5 a weight a round here) and training carries it on: equal within that.
        expected, got = final_weights(straight, 3), final_weights(loop, 3)
        gaps = np.concatenate([np.abs(expected[k] - got[k]).ravel() for k in expected])
        record_property("max_abs_weight_difference", float(gaps.max()))
        record_property("mean_abs_weight_difference", float(gaps.mean()))
        assert gaps.mean() < 1e-4 and gaps.max() < 1e-2
        print(
            f"restart -> resumed run {to_resumed_run:.1f} s, -> next completed round "
            f"{to_next_round:.1f} s; |dw| max {gaps.max():.2e} mean {gaps.mean():.2e}"
        )
    finally:
        for run in runs.values():
            run.close()
