"""The `fedpath` console command: one subcommand per job, each a Hydra app over `conf/`.

Hydra config is turned into typed values here, at the entry point; nothing below sees Hydra.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

CONFIG_PATH = "pkg://fedpath.conf"

USAGE = """usage: fedpath <command> [hydra overrides...] [--help]

commands:
  train      train one model on one log, centralized (the ceiling federation is compared with)
  synth      write a synthetic shopping-path log calibrated on real ones (labelled synthetic)

examples:
  fedpath train model=gru4rec data=diginetica
  fedpath train -m model=markov,cooccurrence,gru4rec data=rees46
  fedpath synth synth.n_sessions=5000 out=runs/synth.csv
  fedpath train --help        (every config group and key of a command)
"""


def _plain(node: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]


def _run_dir() -> Path:
    return Path(HydraConfig.get().runtime.output_dir)


@hydra.main(version_base=None, config_path=CONFIG_PATH, config_name="train")
def _train(cfg: DictConfig) -> None:
    from fedpath.data.protocol import ProtocolConfig
    from fedpath.pipeline import DataSource, prepare
    from fedpath.report import HEADLINE_METRICS, print_table
    from fedpath.training import TrainSettings, train_centralized

    run_dir = _run_dir()
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    model_params = _plain(cfg.model)
    settings = TrainSettings(
        model_name=model_params.pop("name"),
        model_params=model_params,
        seed=int(cfg.seed),
        threads=int(cfg.train.threads),
        review_threshold=float(cfg.train.review_threshold),
        ks=tuple(int(k) for k in cfg.train.ks),
    )
    source = DataSource(
        name=cfg.data.name,
        path=Path(cfg.data.path) if cfg.data.path else None,
        format=cfg.data.format,
        n_sessions=cfg.data.n_sessions,
        complete_sessions=bool(cfg.data.complete_sessions),
    )
    data = prepare(source, ProtocolConfig(**_plain(cfg.protocol)), run_dir, seed=settings.seed)
    result = train_centralized(data, settings, run_dir)
    rows = [
        {"split": s, **m}
        for s, m in (("valid", result.valid_metrics), ("test", result.test_metrics))
    ]
    print_table(rows, ["split", *HEADLINE_METRICS], title=f"{settings.model_name} on {source.name}")
    print(f"run folder: {run_dir}")


@hydra.main(version_base=None, config_path=CONFIG_PATH, config_name="synth")
def _synth(cfg: DictConfig) -> None:
    from fedpath.synth import SynthConfig, run_synth

    path = run_synth(SynthConfig(**_plain(cfg.synth)), Path(cfg.out), seed=int(cfg.seed))
    print(f"synthetic log written: {path}")


COMMANDS: dict[str, Callable[[], None]] = {"train": _train, "synth": _synth}


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
    COMMANDS[command]()
    return 0
