"""DP settings (privacy/dp/config.py): what composes with SecAgg+ runs, the rest is refused by
``run_federation`` before any partner starts, and the YAML groups load into typed settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from federation_paths import TINY_GRU, walk_split  # pytest puts tests/ on sys.path

from fedpath.errors import ConfigError
from fedpath.federation.config import FederationConfig, FunnelSettings
from fedpath.privacy.dp.config import PartnerDP, PrivacySettings, SessionDP, check_combination
from fedpath.simulations.federation import run_federation
from fedpath.simulations.partition import PartitionConfig, partition

CONF = Path(__file__).resolve().parents[1] / "conf" / "privacy"


def _refusal(model: str, strategy: str, privacy: PrivacySettings, **config) -> str:
    split = walk_split()
    partners = partition(split, PartitionConfig(scheme="iid", n_partners=2))
    params = TINY_GRU if model == "gru4rec" else {}
    federation = FederationConfig(
        model=model, model_params=params, strategy=strategy, privacy=privacy, **config
    )
    with pytest.raises(ConfigError) as refused:
        run_federation(split, partners, federation)
    return str(refused.value)


@pytest.mark.parametrize(
    ("partner", "rule"),
    [
        (PartnerDP(side="server"), "side=client, clipping=fixed"),
        (PartnerDP(clipping="adaptive"), "adaptive clipping sends each partner's clipped bit"),
        (PartnerDP(side="server", clipping="adaptive"), "the coordinator only sees the sum"),
    ],
    ids=["server-fixed", "client-adaptive", "server-adaptive"],
)
def test_partner_level_dp_under_secagg_is_refused_unless_client_side_fixed(partner, rule):
    # Prepare / Execute
    message = _refusal("gru4rec", "fedavg", PrivacySettings(partner=partner))
    # Assert
    assert rule in message and "secagg=off" in message


def test_partner_level_dp_is_refused_for_count_models():
    message = _refusal("markov", "sum", PrivacySettings(partner=PartnerDP()))
    assert "privacy.partner must be off for count models" in message


def test_session_dp_is_refused_with_fedprox_and_any_dp_with_the_funnel():
    # Prepare
    session = PrivacySettings(session=SessionDP())
    # Execute
    fedprox = _refusal("gru4rec", "fedprox", session, strategy_params={"proximal_mu": 0.1})
    funnel = _refusal("gru4rec", "fedavg", session, funnel=FunnelSettings(enabled=True))
    # Assert
    assert "must not be 'fedprox' with privacy.session" in fedprox
    assert "funnel must be off with differential privacy" in funnel


@pytest.mark.parametrize(
    ("privacy", "secagg", "count_model"),
    [
        (PrivacySettings(session=SessionDP()), True, False),
        (PrivacySettings(session=SessionDP()), True, True),
        (PrivacySettings(session=SessionDP()), False, True),
        (PrivacySettings(partner=PartnerDP()), True, False),
        (PrivacySettings(partner=PartnerDP(side="server", clipping="adaptive")), False, False),
        (PrivacySettings(session=SessionDP(), partner=PartnerDP()), True, False),
    ],
)
def test_supported_combinations_pass(privacy, secagg, count_model):
    check_combination(
        privacy, secagg=secagg, count_model=count_model, strategy="fedavg", funnel=False
    )


@pytest.mark.parametrize("path", sorted(CONF.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_privacy_config_group_loads_into_settings(path: Path):
    # Prepare: the groups interpolate ${out}; a run folder parent stands in for it
    values = yaml.safe_load(path.read_text().replace("${out}", "runs"))
    # Execute
    settings = PrivacySettings.from_dict(values)
    # Assert: the file names the level it configures
    assert (settings.session is not None) == path.stem.startswith("session")
    assert (settings.partner is not None) == path.stem.startswith("partner")


def test_unknown_keys_and_bad_values_are_refused_with_their_rule():
    with pytest.raises(ConfigError, match="privacy keys must be among"):
        PrivacySettings.from_dict({"epsilon": 8})
    with pytest.raises(ConfigError, match="known keys"):
        PrivacySettings.from_dict({"session": {"noise": 1.0}})
    with pytest.raises(ConfigError, match=r"session.sample_rate must be in \(0, 1\], got 1.5"):
        SessionDP(sample_rate=1.5)
    with pytest.raises(ConfigError, match=r"partner\.side must be one of"):
        PartnerDP(side="both")
