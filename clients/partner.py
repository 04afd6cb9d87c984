"""A deployed partner inside its ClientApp process: the simulation's ``PartnerClient`` plus what
a real partner adds.

* Its weight in the mean is capped at the contract's ``max_weight``: SecAgg+ scales an update by
  ``weight / max_weight`` before masking and overflows above 1, so a partner larger than the
  bound reports the bound (and says so in its log).
* A publish round (``fedpath.server.deployed.publish``) carries the promoted model and its
  calibration: the partner files it in its local registry under the coordinator's version
  number and promotes it there, where its prediction server picks it up; it then evaluates it
  like any round.
* Differential privacy is the contract's (``federation.privacy`` in its own bundle), applied as
  the simulation applies it (``PartnerPrivacy``): session-level DP charges the partner's own
  ledger (in its work folder) before each round it trains and refuses a round past its budget;
  partner-level clipping and its share of the noise are mods (``deployed_app``). The ledger's
  run id is the coordinator's campaign, so a campaign's rounds compose in one accounting, and a
  resumed campaign continues it.

The runtime file is how the partner daemon tells the ClientApp process where things are.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from flwr.common import NDArrays, Scalar

from fedpath.clients.client import ClientSettings, PartnerClient
from fedpath.clients.store import load_partner
from fedpath.data.containers import Cases
from fedpath.errors import ConfigError
from fedpath.federation.keys import (
    PUBLISH_CALIBRATION,
    PUBLISH_CARD,
    PUBLISH_DECISION,
    PUBLISH_VERSION,
)
from fedpath.federation.layout import Bundle, load_bundle
from fedpath.federation.registry import ModelRegistry
from fedpath.models.calibration import Calibration
from fedpath.privacy.dp.client import PartnerPrivacy
from fedpath.privacy.keys import model_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    """Paths and knobs of one partner's ClientApp, written by the daemon as ``runtime.json``."""

    bundle: str
    cases: str  # folder of the prepared cases (fedpath.clients.store)
    registry: str  # the partner's local model registry (what its /predict serves)
    secagg: bool  # the contract's: read by the SecAgg+ mod without loading the bundle
    ledger_dir: str = "privacy-ledgers"  # its privacy ledger's folder (the daemon's, absolute)
    threads: int = 1
    ks: tuple[int, ...] = (5, 10, 20)
    review_threshold: float = 0.85

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def read(cls, path: Path) -> Runtime:
        try:
            data = json.loads(Path(path).read_text())
            return cls(**{**data, "ks": tuple(data["ks"])})
        except (OSError, json.JSONDecodeError, TypeError, KeyError) as error:
            raise ConfigError(
                f"{path}: must be the runtime file the partner daemon wrote, got {error!r}"
            ) from None


class DeployedPartner(PartnerClient):
    def __init__(
        self,
        partner: int,
        cases: dict[str, Cases],
        settings: ClientSettings,
        *,
        registry: ModelRegistry,
        max_weight: float,
    ) -> None:
        super().__init__(partner, cases, settings)
        self.registry = registry
        self.max_weight = max_weight

    def fit(
        self, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[NDArrays, int, dict[str, Scalar]]:
        arrays, weight, metrics = super().fit(parameters, config)
        if weight > self.max_weight:
            log.warning(
                "partner %d reports weight %d, the contract's max_weight, instead of its %d "
                "train cases",
                self.partner,
                int(self.max_weight),
                weight,
            )
            weight = int(self.max_weight)
        return arrays, weight, metrics

    def evaluate(
        self, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[float, int, dict[str, Scalar]]:
        if PUBLISH_VERSION in config:
            self._install(parameters, config)
        return super().evaluate(parameters, config)

    def _install(self, parameters: NDArrays, config: dict[str, Scalar]) -> None:
        """File the published model under the coordinator's version number, and promote it."""
        version = int(config[PUBLISH_VERSION])
        promoted = self.registry.promoted()
        if promoted is not None and promoted.version == version:
            return
        card = json.loads(str(config[PUBLISH_CARD]))
        model = self.spec.build()
        model.set_weights(self.spec.from_arrays(parameters))
        if PUBLISH_CALIBRATION in config:  # fitted by the campaign's calibration round
            model.calibration = Calibration.from_dict(json.loads(str(config[PUBLISH_CALIBRATION])))
        self.registry.register(
            model,
            campaign=card["campaign"],
            round=card["round"],
            config_hash=card["config_hash"],
            parent=card["parent"],
            metrics=card["metrics"],
            version=version,
        )
        self.registry.promote(version, json.loads(str(config[PUBLISH_DECISION])))
        log.info("partner %d installed model version %d", self.partner, version)


def deployed_privacy(bundle: Bundle, ledger_dir: str, campaign: str) -> PartnerPrivacy | None:
    """The contract's DP as this partner applies it in ``campaign`` (None when it has none).

    The ledger is the partner's own (``ledger_dir``, in its work folder): the contract's
    ``session.ledger_dir`` names a simulation's folder and is not used here. Noise shares assume
    every partner is sampled (``n_partners``): the coordinator refuses ``fraction_fit`` below 1
    under partner-level DP, so a partner never adds less than its share.
    """
    contract = bundle.federation
    settings = contract.privacy_settings()
    if not settings.enabled:
        return None
    if not campaign:
        raise ConfigError(
            "a deployed run must name its campaign (run config 'fedpath-campaign') under "
            "differential privacy: the partner's ledger charges are keyed by it, got none"
        )
    if settings.session is not None:
        settings = replace(settings, session=replace(settings.session, ledger_dir=ledger_dir))
    return PartnerPrivacy(
        settings=settings,
        run_id=campaign,
        n_partners=bundle.n_partners,
        sampled=bundle.n_partners,
        secagg=contract.secagg,
    )


def load_deployed_partner(runtime_file: Path, campaign: str = "") -> DeployedPartner:
    """The partner a ClientApp process plays in ``campaign`` (needed under DP only), from the
    daemon's runtime file."""
    runtime = Runtime.read(runtime_file)
    bundle = load_bundle(Path(runtime.bundle))
    spec = bundle.federation.model_spec()
    if not spec.is_count:
        import torch  # only neural partners pay for torch

        torch.set_num_threads(runtime.threads)
    settings = ClientSettings(
        model=spec,
        data_dir=Path(runtime.cases),
        ks=runtime.ks,
        review_threshold=runtime.review_threshold,
        threads=runtime.threads,
        privacy=deployed_privacy(bundle, runtime.ledger_dir, campaign),
    )
    return DeployedPartner(
        bundle.index,
        load_partner(Path(runtime.cases), bundle.index),
        settings,
        registry=ModelRegistry(Path(runtime.registry), key=model_key(bundle.model_key)),
        max_weight=bundle.federation.max_weight,
    )
