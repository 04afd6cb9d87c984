"""The deployment's parts one by one, without a running federation: a partner's local data,
the deployed partner, the SecAgg+ contract guard, campaigns, status, refusals, settings and the
SuperNode supervisor."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from flower_messages import message
from flwr.app import Context, Message, MessageType, RecordDict
from privacy_data import BAD_SESSION, BAD_USER, write_rees46_log  # tests/ is on sys.path
from prometheus_samples import samples

from fedpath.clients.daemon import SupernodeSettings, SupernodeSupervisor
from fedpath.clients.deployed_app import RUNTIME_KEY, contract_secagg_mod
from fedpath.clients.local_data import QUARANTINE, load_catalog, prepare_local_data
from fedpath.clients.partner import Runtime, load_deployed_partner
from fedpath.clients.store import load_partner
from fedpath.data.hashing import ItemHasher
from fedpath.errors import ConfigError
from fedpath.federation.keys import (
    LOCAL_EPOCHS,
    PUBLISH_CALIBRATION,
    PUBLISH_CARD,
    PUBLISH_DECISION,
    PUBLISH_VERSION,
    SERVER_ROUND,
)
from fedpath.federation.registry import ModelRegistry
from fedpath.models.calibration import Calibration
from fedpath.models.temperature import Temperatures
from fedpath.privacy.keys import PSEUDONYM_KEY_ENV
from fedpath.privacy.scan import opaque_files, scan_for_raw_ids
from fedpath.server.deployed.coordinator import Coordinator, choose_campaign
from fedpath.server.deployed.settings import coordinator_settings, read_plan, write_plan
from fedpath.server.deployed.status import read_status, render_status, status_metrics, write_status
from fedpath.server.provision import load_bundle, load_project, provision
from fedpath.yamlconf import load_service_config

TINY_GRU = {"embedding_size": 8, "hidden_size": 8, "batch_size": 64}


def make_kit(folder: Path, federation: dict) -> Path:
    project = {
        "name": "parts",
        "coordinator": {"host": "127.0.0.1", "port": 9092},
        "partners": [{"name": "alpha"}, {"name": "beta"}, {"name": "gamma"}],
        "federation": federation,
    }
    (folder / "project.yaml").write_text(yaml.safe_dump(project))
    return provision(load_project(folder / "project.yaml"), folder / "kit").root


@pytest.fixture
def rees46(shared_data: Path) -> Path:
    return shared_data / "rees46-multicategory-sample" / "2019-Oct-head.csv"


@pytest.fixture
def gru_partner(tmp_path: Path, rees46: Path) -> Path:
    """alpha's work folder, prepared from a third of the REES46 sample; returns its runtime."""
    kit = make_kit(tmp_path, {"model": "gru4rec", "item_buckets": 128, "model_params": TINY_GRU})
    bundle = load_bundle(kit / "partners" / "alpha")
    events = pd.read_csv(rees46)
    log = tmp_path / "alpha.csv"
    events[events["user_id"] % 3 == 0].to_csv(log, index=False)
    work = tmp_path / "work"
    local = prepare_local_data(bundle, log, work)
    return Runtime(
        bundle=str(bundle.root),
        cases=str(local.cases_dir),
        registry=str(work / "models"),
        secagg=True,
    ).write(work / "runtime.json")


def test_local_data_lives_in_the_shared_bucket_space(tmp_path: Path, rees46: Path) -> None:
    # Prepare
    kit = make_kit(tmp_path, {"model": "markov", "item_buckets": 64})
    bundle = load_bundle(kit / "partners" / "beta")
    hasher = ItemHasher(bundle.item_key.read_bytes(), 64)
    raw = pd.read_csv(rees46)["product_id"].astype(str)

    # Execute
    local = prepare_local_data(bundle, rees46, tmp_path / "work")
    cases = load_partner(local.cases_dir, bundle.index)
    catalog = load_catalog(local.catalog, 64)

    # Assert: every item index is the bucket of some raw id of the log
    buckets_of_log = set(hasher.buckets(raw.unique()).tolist())
    train = cases["train"]
    used = set(train.prefixes[train.prefixes >= 0].tolist()) | set(
        train.next_item[train.next_item >= 0].tolist()
    )
    assert used and used <= buckets_of_log
    assert local.sessions["train"] > 0 and local.cases["train"] == len(train)
    # ... and the catalogue names, per bucket, the log's most frequent item in that bucket
    counts = raw.value_counts()
    bucket = next(b for b in sorted(buckets_of_log) if catalog[b] is not None)
    in_bucket = counts[hasher.buckets(counts.index.to_list()) == bucket]
    assert catalog[bucket] == in_bucket.index[0]
    assert all(catalog[b] is None for b in set(range(64)) - buckets_of_log)


def test_prepared_work_folder_holds_no_raw_id_but_in_the_quarantine(
    tmp_path: Path, caplog, monkeypatch
) -> None:
    # Prepare: a freshly provisioned bundle (its own pseudonym.key) and a log of distinctive ids
    monkeypatch.delenv(PSEUDONYM_KEY_ENV, raising=False)
    kit = make_kit(tmp_path, {"model": "markov", "item_buckets": 64})
    bundle = load_bundle(kit / "partners" / "alpha")
    users, sessions = write_rees46_log(tmp_path / "alpha.csv")
    work = tmp_path / "work"
    caplog.set_level(logging.DEBUG)

    # Execute
    local = prepare_local_data(bundle, tmp_path / "alpha.csv", work)
    findings = scan_for_raw_ids(work, [*users, *sessions])

    # Assert: every file written was scanned as bytes (none compressed), and the only raw ids
    # found are the malformed row's, which the quarantine keeps verbatim: the scan sees a leak
    written = sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.is_file())
    assert written == [
        "cases/partner-0000-paths.npz",
        "cases/partner-0000.npz",
        "catalog.json",
        QUARANTINE,
    ]
    assert opaque_files(work) == []
    assert local.sessions["train"] > 0 and local.n_quarantined == 1
    assert {(f.path.name, f.raw_id) for f in findings} == {
        (QUARANTINE, BAD_USER),
        (QUARANTINE, BAD_SESSION),
    }
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "quarantined" in logged
    assert [i for i in [*users, *sessions] if i in logged] == []


def test_a_bundle_without_pseudonym_key_needs_the_variable_or_is_refused(
    tmp_path: Path, monkeypatch
) -> None:
    # Prepare: a bundle as provisioned before partners held a pseudonym key
    monkeypatch.delenv(PSEUDONYM_KEY_ENV, raising=False)
    kit = make_kit(tmp_path, {"model": "markov", "item_buckets": 64})
    (kit / "partners" / "beta" / "pseudonym.key").unlink()
    bundle = load_bundle(kit / "partners" / "beta")
    write_rees46_log(tmp_path / "beta.csv")

    # Execute / Assert: refused, naming the bundle and the variable, before writing anything
    with pytest.raises(
        ConfigError, match=rf"must hold pseudonym\.key .*\${PSEUDONYM_KEY_ENV}"
    ) as caught:
        prepare_local_data(bundle, tmp_path / "beta.csv", tmp_path / "refused")
    assert str(bundle.root) in str(caught.value)
    assert not (tmp_path / "refused").exists()

    # Execute / Assert: the partner's own key in the variable is taken instead
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, os.urandom(32).hex())
    local = prepare_local_data(bundle, tmp_path / "beta.csv", tmp_path / "work")
    assert local.sessions["train"] > 0


def test_deployed_partner_installs_a_published_model_once(gru_partner: Path) -> None:
    # Prepare
    partner = load_deployed_partner(gru_partner)
    weights = partner.spec.to_arrays(partner.spec.initial_weights)
    card = {"campaign": "c0001", "round": 3, "config_hash": "h", "parent": 2, "metrics": {}}
    calibration = Calibration(
        Temperatures(action=0.5, convert=2.0), {"exit": 0.9, "action": math.inf}
    )
    config = {
        SERVER_ROUND: 1,
        PUBLISH_VERSION: 3,
        PUBLISH_CARD: json.dumps(card),
        PUBLISH_DECISION: json.dumps({"promoted": True}),
        PUBLISH_CALIBRATION: json.dumps(calibration.to_dict()),
    }

    # Execute
    loss, n, metrics = partner.evaluate(weights, config)
    partner.evaluate(weights, config)  # the same publication again
    registry = ModelRegistry(
        Path(json.loads(gru_partner.read_text())["registry"]), key=partner.registry.key
    )

    # Assert
    assert [(v.version, v.round, v.parent) for v in registry.versions()] == [(3, 3, 2)]
    assert registry.promoted().version == 3
    assert len((registry.root / "promotions.jsonl").read_text().splitlines()) == 1
    assert n > 0 and 0.0 <= loss <= 1.0 and metrics["partner"] == 0
    loaded = registry.load(3)
    for name, array in zip(partner.spec.names, weights, strict=True):
        np.testing.assert_array_equal(loaded.get_weights()[name], array)
    assert loaded.calibration == calibration  # served calibrated, with the certified cutoffs


def test_deployed_partner_reports_at_most_the_contract_weight(gru_partner: Path) -> None:
    # Prepare: a partner with more train cases than the contract's max_weight
    partner = load_deployed_partner(gru_partner)
    partner.max_weight = 10.0
    weights = partner.spec.to_arrays(partner.spec.initial_weights)

    # Execute
    _, weight, _ = partner.fit(weights, {SERVER_ROUND: 1, LOCAL_EPOCHS: 1})

    # Assert
    assert len(partner.cases["train"]) > 10
    assert weight == 10


def node_context(runtime: Path) -> Context:
    return Context(1, 1, {RUNTIME_KEY: str(runtime)}, RecordDict(), {})


@pytest.mark.parametrize("secagg", [True, False])
def test_a_partner_never_trains_unmasked_under_a_secagg_contract(
    tmp_path: Path, secagg: bool
) -> None:
    # Prepare
    runtime = Runtime(bundle="-", cases="-", registry="-", secagg=secagg).write(
        tmp_path / "runtime.json"
    )
    answered = []

    def call_next(msg: Message, context: Context) -> Message:
        answered.append(msg)
        return msg

    # Execute / Assert
    if secagg:
        with pytest.raises(PermissionError, match="must carry SecAgg\\+ stages"):
            contract_secagg_mod(message(MessageType.TRAIN), node_context(runtime), call_next)
    else:
        contract_secagg_mod(message(MessageType.TRAIN), node_context(runtime), call_next)
    contract_secagg_mod(message(MessageType.EVALUATE), node_context(runtime), call_next)
    assert len(answered) == (1 if secagg else 2)  # evaluation is never masked


def test_campaigns_resume_until_finished_then_wait_for_a_new_one(tmp_path: Path) -> None:
    # Execute / Assert
    assert choose_campaign(tmp_path, new=False) == "c0001"
    assert choose_campaign(tmp_path, new=True) == "c0001"  # unfinished: resumed, not replaced
    write_status(tmp_path / "campaign.json", {"campaign": "c0001", "state": "finished"})
    assert choose_campaign(tmp_path, new=False) == ""
    assert choose_campaign(tmp_path, new=True) == "c0002"


def test_status_view_and_metrics_of_a_campaign() -> None:
    # Prepare
    status = {
        "service": {
            "address": "coord:9092",
            "superlink_up": True,
            "partners": {"alpha": {"node_id": 11}, "beta": {"node_id": 12}},
            "refusals": {"unregistered node key": 2},
            "run_attempts": 1,
        },
        "campaign": {
            "campaign": "c0001",
            "state": "training",
            "rounds": 3,
            "completed_rounds": 1,
            "connected_nodes": [11],
            "records": [
                {
                    "round": 1,
                    "participants": [0],
                    "dropped": 1,
                    "round_seconds": 12.5,
                    "bytes_up": 100,
                    "bytes_down": 200,
                    "metrics": {"recall@20": 0.25, "conversion_auc": None},
                }
            ],
        },
    }

    # Execute
    view = render_status(status)
    metrics = samples(status_metrics(status))

    # Assert
    assert "1 of 2 connected" in view
    assert "beta             node 12  not seen" in view
    assert "round 1 of 3 completed" in view
    assert "1 partners, 1 dropped, 12.5 s; recall@20 0.2500" in view
    assert "promoted     none yet" in view
    assert metrics['fedpath_round_dropped{round="1"}'] == 1
    assert metrics['fedpath_round_bytes_up{round="1"}'] == 100
    assert math.isnan(metrics['fedpath_last_round_metric{metric="conversion_auc"}'])
    assert metrics['fedpath_refusals_total{reason="unregistered node key"}'] == 2
    assert metrics["fedpath_partners_connected"] == 1


SUPERLINK_REFUSAL = (
    "ERROR :     [/v1/fleet/activate-node][ApiError:2004] Attempted to register SuperNode "
    "with public key: b'-----BEGIN PUBLIC KEY-----\\nMHYwEAYHKoZIzj0CAQYFK4EEACIDYgAE\\n"
    "-----END PUBLIC KEY-----\\n', exception: No SuperNode found with the given public key.\n"
)


def test_superlink_refusals_are_logged_with_reason_and_counted(tmp_path: Path, caplog) -> None:
    # Prepare
    kit = make_kit(tmp_path, {"model": "markov", "item_buckets": 16})
    raw = load_service_config("coordinator")
    raw["training"]["strategy"] = "sum"
    coordinator = Coordinator(coordinator_settings(kit / "coordinator", raw, "c0001"))
    coordinator.prepare()

    # Execute
    coordinator._refusal("INFO :      Starting Flower SuperLink\n")
    coordinator._refusal(SUPERLINK_REFUSAL)

    # Assert
    service = read_status(coordinator.state / "service.json")
    assert service["refusals"] == {"unregistered node key": 1}
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "refused"]
    assert record.reason == "unregistered node key" and len(record.key_sha256) == 16


def test_coordinator_settings_check_the_contract_and_round_trip(tmp_path: Path) -> None:
    # Prepare
    kit = make_kit(tmp_path, {"model": "markov", "item_buckets": 16})
    raw = load_service_config("coordinator")

    # Execute / Assert: a count model must be summed, and min_partners must exist
    with pytest.raises(ConfigError, match="'sum' exactly for count models"):
        coordinator_settings(kit / "coordinator", raw, "c0001")
    raw["training"].update(strategy="sum", min_partners=4)
    with pytest.raises(ConfigError, match=r"min_partners must be in \[2, 3\]"):
        coordinator_settings(kit / "coordinator", raw, "c0001")
    raw["training"]["min_partners"] = 2
    settings = coordinator_settings(kit / "coordinator", raw, "c0001")
    settings.state.mkdir()
    again = read_plan(write_plan(settings))
    assert again.config_hash == settings.config_hash and again.min_partners == 2
    assert again.federation.secagg.enabled and again.federation.secagg.max_weight == 100_000


def test_service_config_refuses_unknown_keys_naming_the_file(tmp_path: Path) -> None:
    # Prepare
    override = tmp_path / "partner.yaml"
    override.write_text("serving: {port: 9000, prot: 1}\n")

    # Execute / Assert
    with pytest.raises(ConfigError, match=r"'serving\.prot' must be one of") as caught:
        load_service_config("partner", override)
    assert str(override) in str(caught.value)
    override.write_text("serving: {port: 9000}\n")
    assert load_service_config("partner", override)["serving"]["port"] == 9000


def test_supervisor_restarts_an_exiting_supernode_with_backoff(tmp_path: Path, caplog) -> None:
    # Prepare: a "SuperNode" that is refused at once, as an unregistered one is
    caplog.set_level(logging.INFO, logger="fedpath.clients.daemon")
    script = "print('ERROR : [code: 2004] Failed to activate SuperNode.'); raise SystemExit(1)"
    supervisor = SupernodeSupervisor(
        [sys.executable, "-c", script],
        tmp_path,
        SupernodeSettings(backoff_initial=0.2, backoff_max=0.4),
    )
    stop = threading.Event()
    runner = threading.Thread(target=supervisor.run, args=(stop,))

    # Execute: let it be refused three times
    runner.start()
    while supervisor.starts < 3:
        stop.wait(0.1)
    stop.set()
    runner.join(timeout=30)

    # Assert
    exits = [r for r in caplog.records if getattr(r, "event", None) == "supernode_exit"]
    assert len(exits) >= 2
    assert exits[0].code == 1
    assert "[code: 2004] Failed to activate SuperNode." in exits[0].reason
    assert [r.backoff_s for r in exits[:3]] == [0.2, 0.4, 0.4][: len(exits)]  # doubling, capped
    assert (tmp_path / "supernode.log").read_text().count("Failed to activate") >= 2
