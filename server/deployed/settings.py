"""The coordinator's typed settings: the workspace's contract plus ``conf/coordinator.yaml``.

Read in two processes: the coordinator service, and the ServerApp the SuperLink spawns for each
run. The service writes the merged YAML it started with into the state folder (``plan.json``),
and the ServerApp rebuilds the same typed value from it, so both always agree.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fedpath.errors import ConfigError
from fedpath.federation.config import FederationConfig, GateSettings, SecAggSettings
from fedpath.federation.layout import Workspace, load_workspace
from fedpath.privacy.dp.config import check_combination

STATE = "state"
PLAN = "plan.json"
NODE_IDS = "node-ids.json"  # partner name -> node id, as the coordinator registered them


@dataclass(frozen=True)
class CoordinatorSettings:
    workspace: Workspace
    federation: FederationConfig  # model and secagg from the contract, the rest from YAML
    campaign: str  # id of the training campaign the ServerApp runs or resumes
    min_partners: int
    wait_all_s: float
    warm_start: bool
    superlink_host: str
    startup_timeout: float
    http_host: str
    http_port: int
    backoff_initial: float
    backoff_max: float
    raw: Mapping[str, Any]  # the merged YAML, as written to plan.json

    @property
    def state(self) -> Path:
        return self.workspace.root / STATE

    @property
    def config_hash(self) -> str:
        """Digest of everything that shapes a model: contract and training settings."""
        text = json.dumps(
            {"contract": self.workspace.federation.digest, "training": asdict(self.federation)},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(text.encode()).hexdigest()


def coordinator_settings(
    workspace: Path | Workspace, raw: Mapping[str, Any], campaign: str
) -> CoordinatorSettings:
    """Typed settings from a workspace and the merged coordinator YAML."""
    space = workspace if isinstance(workspace, Workspace) else load_workspace(workspace)
    contract = space.federation
    training = dict(raw["training"])
    n_partners = len(space.partners)
    min_partners = training.pop("min_partners") or n_partners
    if not 2 <= min_partners <= n_partners:
        raise ConfigError(
            f"training.min_partners must be in [2, {n_partners}] (the partners provisioned), "
            f"got {min_partners}"
        )
    wait_all_s = float(training.pop("wait_all_s"))
    warm_start = bool(training.pop("warm_start"))
    try:
        federation = FederationConfig(
            model=contract.model,
            model_params=dict(contract.model_params),
            seed=contract.seed,
            max_len=contract.max_len,
            strategy=training.pop("strategy"),
            strategy_params=dict(training.pop("strategy_params") or {}),
            ks=tuple(int(k) for k in training.pop("ks")),
            secagg=SecAggSettings(
                enabled=contract.secagg, max_weight=contract.max_weight, **raw["secagg"]
            ),
            gate=GateSettings(enabled=True, **raw["gate"]),
            privacy=contract.privacy_settings(),
            **training,
        )
    except TypeError as error:
        raise ConfigError(f"coordinator settings must be known keys, got {error}") from None
    spec = contract.model_spec()
    if spec.is_count != (federation.strategy == "sum"):
        raise ConfigError(
            f"training.strategy must be 'sum' exactly for count models, got "
            f"{federation.strategy!r} with model {contract.model!r}"
        )
    if spec.is_count and federation.fraction_fit != 1.0:
        raise ConfigError(
            f"training.fraction_fit must be 1.0 for count models (one sum over every partner), "
            f"got {federation.fraction_fit}"
        )
    check_combination(
        federation.privacy,
        secagg=contract.secagg,
        count_model=spec.is_count,
        strategy=federation.strategy,
        funnel=False,
    )
    if federation.privacy.partner is not None and federation.fraction_fit != 1.0:
        raise ConfigError(
            f"training.fraction_fit must be 1.0 under the contract's partner-level DP (each "
            f"partner adds its share of the noise assuming all {n_partners} are sampled), got "
            f"{federation.fraction_fit}"
        )
    return CoordinatorSettings(
        workspace=space,
        federation=federation,
        campaign=campaign,
        min_partners=min_partners,
        wait_all_s=wait_all_s,
        warm_start=warm_start,
        superlink_host=str(raw["superlink"]["host"]),
        startup_timeout=float(raw["superlink"]["startup_timeout"]),
        http_host=str(raw["http"]["host"]),
        http_port=int(raw["http"]["port"]),
        backoff_initial=float(raw["restart"]["backoff_initial"]),
        backoff_max=float(raw["restart"]["backoff_max"]),
        raw=raw,
    )


def write_plan(settings: CoordinatorSettings) -> Path:
    """What the ServerApp needs to rebuild ``settings``: workspace, campaign, merged YAML."""
    path = settings.state / PLAN
    plan = {
        "workspace": str(settings.workspace.root),
        "campaign": settings.campaign,
        "config": settings.raw,
    }
    path.write_text(json.dumps(plan, indent=1))
    return path


def read_plan(path: Path) -> CoordinatorSettings:
    try:
        plan = json.loads(Path(path).read_text())
        return coordinator_settings(Path(plan["workspace"]), plan["config"], plan["campaign"])
    except (OSError, json.JSONDecodeError, KeyError) as error:
        raise ConfigError(
            f"{path}: must be the plan the coordinator wrote, got {error!r}"
        ) from None


def registered_nodes(state: Path) -> dict[str, int]:
    """Partner name -> the node id its key was registered under (valid with that database)."""
    path = state / NODE_IDS
    return json.loads(path.read_text()) if path.is_file() else {}
