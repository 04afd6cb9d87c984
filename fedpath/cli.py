"""The `fedpath` console command: one subcommand per job, each a Hydra app over `conf/`.

Hydra config is turned into typed values here, at the entry point; nothing below sees Hydra.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fedpath.clients.daemon import partner_command
from fedpath.errors import ConfigError, FedpathError, require
from fedpath.privacy.commands import audit_command
from fedpath.server.deployed.commands import coordinator_command, provision_command, status_command
from fedpath.settings_types import annotated_types, check_types

if TYPE_CHECKING:
    from fedpath.simulations.pipeline import PreparedData
    from fedpath.simulations.training import TrainSettings

CONFIG_PATH = "pkg://fedpath.conf"
T = TypeVar("T")
# A user's mistake, not a bug: said in one line on stderr, exit status USER_ERROR.
USER_ERRORS = (FedpathError, HydraException, OmegaConfBaseException)
USER_ERROR = 1  # as the argparse commands (partner, provision, audit) refuse
FULL_ERROR_ENV = "HYDRA_FULL_ERROR"  # set by a user who wants the traceback after all


class _Refused(BaseException):
    """A user's error carried out of a Hydra task: Hydra catches only ``Exception`` there, and
    would write its own "Error executing job" line and a traceback."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


def _refusing(task: Callable[[DictConfig], None]) -> Callable[[DictConfig], None]:
    @functools.wraps(task)
    def run(cfg: DictConfig) -> None:
        try:
            task(cfg)
        except USER_ERRORS as error:
            raise _Refused(error) from error

    return run


USAGE = """usage: fedpath <command> [hydra overrides...] [--help]

commands:
  train      train one model on one log, centralized (the ceiling federation is compared with)
  simulate   federate N simulated partners (Flower, SecAgg+ on) beside centralized and local-only
  synth      write a synthetic shopping-path log calibrated on real ones (labelled synthetic)
  audit      verify a run's hash-chained audit trail (`fedpath audit verify RUN`)
  partner    run a partner (`--bundle DIR --data PATH`: SuperNode + /predict) or erase a user
             from its store (`fedpath partner forget USER`)
  provision  create a federation's CA, coordinator TLS identity and partner bundles
  coordinator  run the coordinator: SuperLink (TLS, node auth), training campaigns, /metrics
  status     the federation: partners, rounds, promoted model (`fedpath status --workspace DIR`)

examples:
  fedpath train model=gru4rec data=diginetica
  fedpath train -m model=markov,cooccurrence,gru4rec data=rees46
  fedpath simulate strategy=fedprox partners=10 partition=dirichlet partition.alpha=0.3 rounds=10
  fedpath simulate -m strategy=fedavg,fedprox secagg=on,off
  fedpath simulate privacy=session funnel=off privacy.session.noise_multiplier=1.5
  fedpath synth synth.n_sessions=5000 out=runs/synth.csv
  fedpath train data=rees46 data.pseudonymize=true data.pseudonym_key_path=partner.key
  fedpath train artifacts.encrypt=true artifacts.model_key=model.key
  fedpath audit verify runs/simulate-rees46-markov-sum-20260101-120000
  fedpath partner forget 541312140 --store events.csv --ledger privacy-ledger.jsonl
  fedpath provision project.yaml --out kit
  fedpath coordinator --workspace kit/coordinator --rounds 5
  fedpath partner --bundle kit/partners/alpha --data events.csv --serve-port 8080
  fedpath status --workspace kit/coordinator
  fedpath train --help        (every config group and key of a command)
"""


def _plain(node: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]


def _settings(cls: type[T], node: DictConfig, group: str) -> T:
    """A settings dataclass from a config group; YAML lists become the tuples dataclasses hold.

    A key the dataclass does not have (``+secagg.timout=5``) is a ``ConfigError`` naming it, not
    the constructor's ``TypeError``.
    """
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in _plain(node).items()}
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{group}.{unknown[0]} is not a setting of {group}: use {sorted(known)}")
    check_types(values, annotated_types(cls), group)
    return cls(**values)


def _integer(cfg: DictConfig, key: str) -> int:
    """The setting at dotted ``key`` as an int: ``seed=abc`` is a ConfigError naming the key (one
    line for the user), not the ``ValueError`` traceback ``int()`` would raise."""
    value = OmegaConf.select(cfg, key)
    require(isinstance(value, int) and not isinstance(value, bool), key, "an integer", value)
    return int(value)


def _number(cfg: DictConfig, key: str) -> float:
    """The setting at dotted ``key`` as a float, refused like :func:`_integer`."""
    value = OmegaConf.select(cfg, key)
    require(isinstance(value, int | float) and not isinstance(value, bool), key, "a number", value)
    return float(value)


def _run_dir() -> Path:
    return Path(HydraConfig.get().runtime.output_dir)


def _train_settings(cfg: DictConfig) -> TrainSettings:
    from fedpath.simulations.training import TrainSettings

    model_params = _plain(cfg.model)
    return TrainSettings(
        model_name=model_params.pop("name"),
        model_params=model_params,
        seed=_integer(cfg, "seed"),
        threads=_integer(cfg, "train.threads"),
        review_threshold=_number(cfg, "train.review_threshold"),
        review_items_k=_integer(cfg, "train.review_items_k"),
        ks=tuple(_integer(cfg, f"train.ks.{i}") for i in range(len(cfg.train.ks))),
    )


def _model_key(cfg: DictConfig) -> bytes | None:
    """The key the run's model is encrypted under (``artifacts``), None to keep it plain.

    Read before any data is prepared, so a missing or malformed key stops the run before it
    trains, not after, when the trained model would have nowhere safe to go.
    """
    from fedpath.privacy.keys import model_key

    if not cfg.artifacts.encrypt:
        return None
    try:
        return model_key(cfg.artifacts.model_key)
    except ConfigError as error:
        raise ConfigError(
            f"artifacts.encrypt=true needs the model key (artifacts.model_key=FILE): {error}"
        ) from None


def _prepare(cfg: DictConfig, run_dir: Path) -> PreparedData:
    from fedpath.data.protocol import ProtocolConfig
    from fedpath.simulations.pipeline import DataSource, prepare

    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    source = DataSource(
        name=cfg.data.name,
        path=_data_path(cfg.data.path),
        format=cfg.data.format,
        n_sessions=cfg.data.n_sessions,
        complete_sessions=bool(cfg.data.complete_sessions),
        pseudonymize=bool(cfg.data.pseudonymize),
        pseudonym_key_path=Path(key_path) if (key_path := cfg.data.pseudonym_key_path) else None,
        columns=_plain(cfg.data.columns) if cfg.data.get("columns") else None,
        actions=_plain(cfg.data.actions) if cfg.data.get("actions") else None,
        time_format=cfg.data.get("time_format"),
    )
    return prepare(
        source, ProtocolConfig(**_plain(cfg.protocol)), run_dir, seed=_integer(cfg, "seed")
    )


def _data_path(value: str | None) -> Path | None:
    """``data.path`` as a file that exists, refused here with the fix rather than deep inside."""
    if not value:
        return None
    path = Path(value)
    if path.is_file():
        return path
    problem = "is a folder" if path.is_dir() else "does not exist"
    raise ConfigError(
        f"data.path={path} {problem}: give data.path=FILE, an event log file (the shipped "
        "samples are read from $FEDPATH_SHARED_DATA, else ../shared/data beside the checkout)"
    )


@hydra.main(version_base=None, config_path=CONFIG_PATH, config_name="train")
@_refusing
def _train(cfg: DictConfig) -> None:
    from fedpath.report import HEADLINE_METRICS, print_table
    from fedpath.simulations.training import train_centralized

    run_dir = _run_dir()
    settings = _train_settings(cfg)
    key = _model_key(cfg)
    data = _prepare(cfg, run_dir)
    result = train_centralized(data, settings, run_dir, model_key=key)
    scores = (("valid", result.valid_metrics), ("test", result.test_metrics))
    rows = [{"split": split, **metrics} for split, metrics in scores]
    title = f"{settings.model_name} on {data.source.name}"
    print_table(rows, ["split", *HEADLINE_METRICS], title=title)
    print(f"run folder: {run_dir}")


@hydra.main(version_base=None, config_path=CONFIG_PATH, config_name="simulate")
@_refusing
def _simulate(cfg: DictConfig) -> None:
    from fedpath.federation.config import (
        FaultSettings,
        FederationConfig,
        FunnelSettings,
        GateSettings,
        PersonalizationSettings,
        SecAggSettings,
    )
    from fedpath.privacy.dp.client import PartnerPrivacy
    from fedpath.privacy.dp.config import PrivacySettings
    from fedpath.report import HEADLINE_METRICS, print_table
    from fedpath.simulations.experiment import ExperimentSettings, run_experiment
    from fedpath.simulations.lineage import begin_simulation_audit, record_privacy_plan
    from fedpath.simulations.partition import PartitionConfig
    from fedpath.simulations.progress import RoundProgress
    from fedpath.simulations.termination import ray_ends_with_run

    # Flower sets its logger to DEBUG when imported, after Hydra configured logging: its
    # per-round summaries repeat what the progress bar and the report say.
    logging.getLogger("flwr").setLevel(logging.WARNING)
    from fedpath.simulations.report import write_simulation_run

    run_dir = _run_dir()
    train = _train_settings(cfg)
    strategy_params = _plain(cfg.strategy)
    federation = FederationConfig(
        model=train.model_name,
        model_params=train.model_params,
        strategy=strategy_params.pop("name"),
        strategy_params=strategy_params,
        rounds=_integer(cfg, "rounds"),
        local_epochs=_integer(cfg, "local_epochs"),
        fraction_fit=_number(cfg, "fraction_fit"),
        fraction_evaluate=_number(cfg, "fraction_evaluate"),
        eval_split=str(cfg.eval_split),
        calibration=bool(cfg.calibration),
        item_rows=str(cfg.item_rows),
        secagg=_settings(SecAggSettings, cfg.secagg, "secagg"),
        funnel=_settings(FunnelSettings, cfg.funnel, "funnel"),
        gate=_settings(GateSettings, cfg.gate, "gate"),
        faults=_settings(FaultSettings, cfg.faults, "faults"),
        personalization=_settings(PersonalizationSettings, cfg.personalization, "personalization"),
        privacy=PrivacySettings.from_dict(_plain(cfg.privacy)),
        seed=train.seed,
        ks=train.ks,
        review_threshold=train.review_threshold,
        max_len=_integer(cfg, "protocol.max_prefix_length"),
        threads_per_partner=_integer(cfg, "threads_per_partner"),
        cpus_per_partner=_number(cfg, "cpus_per_partner"),
    )
    settings = ExperimentSettings(
        federation=federation,
        partition=_settings(PartitionConfig, cfg.partition, "partition"),
        train=train,
        baselines=bool(cfg.baselines),
    )
    key = _model_key(cfg)
    data = _prepare(cfg, run_dir)
    audit = begin_simulation_audit(data, settings, run_dir)

    def record_plan(privacy: PartnerPrivacy, count: bool) -> None:
        rounds, epochs = federation.rounds, federation.local_epochs
        record_privacy_plan(audit, privacy, rounds=rounds, epochs_per_round=epochs, count=count)

    with ray_ends_with_run(), RoundProgress(federation.rounds) as progress:
        result = run_experiment(
            data,
            settings,
            on_stage=progress.stage,
            on_round=progress.round_done,
            on_privacy=record_plan,
        )
    write_simulation_run(data, settings, result, run_dir, audit=audit, model_key=key)
    title = f"{federation.model} on {data.source.name}: {len(result.partners)} partners"
    print_table(result.comparison_rows(), ["system", *HEADLINE_METRICS], title=title)
    for name, value in result.ratios().items():
        print(f"{name}: {value:.3f}")
    print(f"run folder: {run_dir}")


@hydra.main(version_base=None, config_path=CONFIG_PATH, config_name="synth")
@_refusing
def _synth(cfg: DictConfig) -> None:
    from fedpath.synth import SynthConfig, run_synth

    path = run_synth(SynthConfig(**_plain(cfg.synth)), Path(cfg.out), seed=_integer(cfg, "seed"))
    print(f"synthetic log written: {path}")


COMMANDS: dict[str, Callable[[], None]] = {
    "train": _train,
    "simulate": _simulate,
    "synth": _synth,
    "audit": audit_command,
    "partner": partner_command,
    "provision": provision_command,
    "coordinator": coordinator_command,
    "status": status_command,
}


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``fedpath <command> ...`` to the command's Hydra app."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"fedpath: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    sys.argv = [f"fedpath-{command}", *rest]
    return _run(COMMANDS[command])


def _run(command: Callable[[], None]) -> int:
    """Run one command; a user's error is one line on stderr and exit status 1, no traceback.

    Hydra prints a trimmed traceback of a config error itself unless ``HYDRA_FULL_ERROR`` is
    set, in which case it re-raises: so it is set for the command, and the error is said here
    (or re-raised, traceback and all, when the user set the variable).
    """
    wants_traceback = bool(os.environ.get(FULL_ERROR_ENV))
    os.environ[FULL_ERROR_ENV] = "1"
    try:
        command()
    except _Refused as refused:
        error: Exception = refused.error
    except USER_ERRORS as raised:
        error = raised
    else:
        return 0
    finally:
        if not wants_traceback:
            del os.environ[FULL_ERROR_ENV]
    if wants_traceback:
        raise error
    print(f"fedpath: error: {_one_line(error)}", file=sys.stderr)
    return USER_ERROR


def _one_line(error: BaseException) -> str:
    """The error's message on one line: Hydra's and OmegaConf's span several."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if isinstance(error, MissingConfigException) and error.options:
        lines = [f"{lines[0]}; choose one of: {', '.join(error.options)}"]
    elif isinstance(error, OmegaConfBaseException):
        lines = lines[:1]  # then full_key / object_type lines, for a debugger
    cause = error.__cause__
    if isinstance(cause, OmegaConfBaseException):
        lines.append(f"({_one_line(cause)})")
    return " ".join(lines) or type(error).__name__
