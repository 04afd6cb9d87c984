"""Differential privacy in a deployed federation: chosen in the contract (``project.yaml``),
applied by each partner from its own bundle, charged to its own ledger (refused past its budget),
and ε per partner in the coordinator's status and ``fedpath status``.

The parts run here without processes; the loopback campaign (real coordinator and partners,
SecAgg+, one partner out of budget) is slow.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from deployment_loopback import PARTNERS, Loopback, http  # tests/ is on sys.path
from test_deployment_parts import TINY_GRU, make_kit

from fedpath.clients.local_data import prepare_local_data
from fedpath.clients.partner import Runtime, load_deployed_partner
from fedpath.errors import ConfigError
from fedpath.federation.contract import FederationContract
from fedpath.federation.keys import LOCAL_EPOCHS, SERVER_ROUND
from fedpath.privacy.dp.budget import SESSION_EPSILON, PrivacyRefusal
from fedpath.privacy.dp.client import session_epsilon
from fedpath.privacy.dp.config import SessionDP
from fedpath.privacy.dp.ledger import PrivacyLedger
from fedpath.server.deployed.commands import privacy_lines
from fedpath.server.deployed.settings import coordinator_settings
from fedpath.server.provision import load_bundle, load_workspace
from fedpath.yamlconf import load_service_config

DELTA = 1e-5
SESSION = {"noise_multiplier": 1.0, "sample_rate": 0.25, "budget_epsilon": 50.0}
GRU_DP = {
    "model": "gru4rec",
    "item_buckets": 64,
    "model_params": TINY_GRU,
    "privacy": {"delta": DELTA, "session": SESSION},
}


@pytest.fixture
def rees46(shared_data: Path) -> Path:
    return shared_data / "rees46-multicategory-sample" / "2019-Oct-head.csv"


def test_the_contract_carries_the_privacy_and_refuses_what_it_cannot_make_private() -> None:
    # Execute
    contract = FederationContract.from_dict(GRU_DP, source="project.yaml")
    settings = contract.privacy_settings()

    # Assert: the simulation's settings, part of the contract's digest
    assert settings.session == SessionDP(**SESSION) and settings.delta == DELTA
    assert (
        contract.digest
        != FederationContract.from_dict({**GRU_DP, "privacy": {}}, source="p").digest
    )
    assert "privacy" not in FederationContract().to_dict()  # no DP: the digest it always had
    refused = {  # what the contract says -> why it is refused
        "privacy.partner must be off for count models": {
            "model": "markov",
            "privacy": {"partner": {}},
        },
        "under SecAgg\\+ must be side=client, clipping=fixed": {
            "privacy": {"partner": {"clipping": "adaptive"}},
        },
        "must give a dense pair table under privacy.session": {
            "model": "markov",
            "item_buckets": 256,
            "model_params": {"pair_cells": 1024},
            "privacy": {"session": {}},
        },
        "privacy keys must be among": {"privacy": {"sesion": {}}},
    }
    for reason, federation in refused.items():
        with pytest.raises(ConfigError, match=rf"project\.yaml: .*{reason}"):
            FederationContract.from_dict(federation, source="project.yaml")


def test_the_coordinator_takes_the_contracts_privacy_and_refuses_sampling_under_it(
    tmp_path: Path,
) -> None:
    # Prepare
    federation = {**GRU_DP, "privacy": {"partner": {"clip_norm": 0.5}}}
    workspace = load_workspace(make_kit(tmp_path, federation) / "coordinator")
    raw = load_service_config("coordinator", None)

    # Execute
    settings = coordinator_settings(workspace, raw, "c0001")
    raw["training"]["fraction_fit"] = 0.67

    # Assert
    assert settings.federation.privacy.partner.clip_norm == 0.5
    with pytest.raises(ConfigError, match=r"fraction_fit must be 1\.0 under the contract's"):
        coordinator_settings(workspace, raw, "c0001")


def test_a_deployed_partner_charges_its_own_ledger_per_campaign_and_refuses_past_budget(
    tmp_path: Path, rees46: Path
) -> None:
    # Prepare: alpha's bundle under the contract's session DP, and its prepared cases
    kit = make_kit(tmp_path, GRU_DP)
    bundle = load_bundle(kit / "partners" / "alpha")
    log = tmp_path / "alpha.csv"
    events = pd.read_csv(rees46)
    events[events["user_id"] % 3 == 0].to_csv(log, index=False)
    work = tmp_path / "work"
    local = prepare_local_data(bundle, log, work)
    ledgers = work / "privacy-ledgers"
    runtime = Runtime(
        bundle=str(bundle.root),
        cases=str(local.cases_dir),
        registry=str(work / "models"),
        secagg=True,
        ledger_dir=str(ledgers),
    ).write(work / "runtime.json")
    partner = load_deployed_partner(runtime, "c0001")
    weights = partner.spec.to_arrays(partner.spec.initial_weights)

    # Execute: two rounds of campaign c0001
    replies = [partner.fit(weights, {SERVER_ROUND: r, LOCAL_EPOCHS: 1}) for r in (1, 2)]

    # Assert: weight 1, ε of the campaign so far, charged to the ledger in the work folder
    session = SessionDP(**SESSION)
    expected = [session_epsilon(session, epochs=r, delta=DELTA) for r in (1, 2)]
    assert [reply[1] for reply in replies] == [1, 1]
    assert [reply[2][SESSION_EPSILON] for reply in replies] == pytest.approx(expected)
    ledger = PrivacyLedger(ledgers / "partner-0000.jsonl", 50.0, 1e-3)
    assert {e.data["run_id"] for e in ledger.charges()} == {"c0001"}
    assert ledger.spent() == pytest.approx(expected[-1])

    # Execute / Assert: a campaign past what is left is refused, and nothing more is charged
    ledger.charge("an-earlier-campaign", 50.0 - ledger.spent() - 1e-3, 0.0, note="spent")
    with pytest.raises(PrivacyRefusal, match="partner=0"):
        load_deployed_partner(runtime, "c0002").fit(weights, {SERVER_ROUND: 1, LOCAL_EPOCHS: 1})
    assert PrivacyLedger(ledgers / "partner-0000.jsonl", 50.0, 1e-3).spent() < 50.0
    with pytest.raises(ConfigError, match="must name its campaign"):
        load_deployed_partner(runtime, "")


def test_fedpath_status_shows_epsilon_by_partner_and_refusals() -> None:
    # Prepare
    campaign = {
        "epsilon_by_partner": {"beta": 0.5, "alpha": 1.25},
        "privacy_delta": DELTA,
        "records": [{"privacy": {"refused": ["gamma"]}}, {"privacy": {"refused": []}}],
    }

    # Execute
    lines = privacy_lines(campaign)

    # Assert
    assert lines == [
        "privacy      ε by partner at δ=1e-05: alpha 1.250, beta 0.500",
        "             refused a round (budget spent): gamma",
    ]
    assert privacy_lines({"records": []}) == []  # no DP: nothing shown


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_loopback_campaign_under_session_dp_with_a_partner_out_of_budget(
    tmp_path: Path, rees46: Path
) -> None:
    # Prepare: gamma spent all but a sliver of its budget before this campaign
    loop = Loopback.provision(tmp_path, rees46, GRU_DP)
    gamma_ledger = loop.kit.partners["gamma"] / "work" / "privacy-ledgers" / "partner-0002.jsonl"
    gamma_ledger.parent.mkdir(parents=True)
    PrivacyLedger(gamma_ledger, 50.0, 1e-3).charge("an-earlier-campaign", 49.99, DELTA, "spent")
    try:
        loop.coordinator({"rounds": 2, "local_epochs": 1}, {"timeout": 120})
        loop.wait(
            lambda: (
                len(loop.service().get("partners", {})) == len(PARTNERS)
                and all(p["node_id"] for p in loop.service()["partners"].values())
            ),
            300,
            "the partners' keys to be registered",
        )
        for index in range(len(PARTNERS)):
            loop.partner(index)

        # Execute
        loop.wait(loop.finished, 1500, "the campaign to finish")
        status = loop.status_text()
        code, body = http(f"http://127.0.0.1:{loop.http_port}/status")
    finally:
        loop.close()

    # Assert: both rounds trained without gamma, whose ledger was not charged again
    campaign = loop.campaign()
    assert [r["participants"] for r in campaign["records"]] == [[0, 1], [0, 1]]
    assert [r["privacy"]["refused"] for r in campaign["records"]] == [["gamma"], ["gamma"]]
    two_rounds = session_epsilon(SessionDP(**SESSION), epochs=2, delta=DELTA)
    assert campaign["epsilon_by_partner"] == pytest.approx(
        {"alpha": two_rounds, "beta": two_rounds}
    )
    assert PrivacyLedger(gamma_ledger, 50.0, 1e-3).spent() == pytest.approx(49.99)
    for name in ("alpha", "beta"):
        index = PARTNERS.index(name)
        ledger = loop.kit.partners[name] / "work" / "privacy-ledgers" / f"partner-{index:04d}.jsonl"
        charges = PrivacyLedger(ledger, 50.0, 1e-3).charges()
        assert [c.data["run_id"] for c in charges] == ["c0001", "c0001"]
    # ... and ε per partner is in /status and in `fedpath status`
    assert code == 200
    assert json.loads(body)["campaign"]["epsilon_by_partner"].keys() == {"alpha", "beta"}
    assert f"alpha {two_rounds:.3f}" in status and "beta" in status
    assert (
        yaml.safe_load((loop.kit.partners["alpha"] / "partner.yaml").read_text())["federation"][
            "privacy"
        ]["session"]["noise_multiplier"]
        == SESSION["noise_multiplier"]
    )
