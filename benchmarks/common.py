"""What the benchmark scripts share: the run configuration `fedpath train` would use, and memory.

Benchmarks compose the same Hydra config (`conf/`, same defaults, same overrides) as the CLI, so a
benchmark figure and a `fedpath train` run of the same model can never differ by a hidden
default. Memory is read from Linux's ``/proc/self/status`` because ``tracemalloc`` does not see
torch's CPU allocator nor numpy's large buffers reliably; ``VmHWM`` (peak resident set) can be
reset between phases, so one phase's peak is not hidden behind an earlier, larger one.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_module
from hydra.errors import MissingConfigException
from omegaconf import DictConfig, OmegaConf

from fedpath.errors import ConfigError
from fedpath.simulations.pipeline import DataSource

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
_STATUS = Path("/proc/self/status")
_MIB = 1024  # /proc/self/status reports kB


def train_config(overrides: Sequence[str]) -> DictConfig:
    """The `fedpath train` config with these Hydra overrides (e.g. ``["model=narm"]``)."""
    try:
        with initialize_config_module(config_module="fedpath.conf", version_base=None):
            return compose(config_name="train", overrides=list(overrides))
    except MissingConfigException as error:
        raise ConfigError(
            f"overrides must name configs that exist in conf/, got {list(overrides)}: {error}"
        ) from error


def plain(node: DictConfig) -> dict[str, Any]:
    """A resolved config node as plain Python values (what the core accepts)."""
    return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]


def data_source(data: DictConfig) -> DataSource:
    """The ``data`` group as a ``DataSource``; a relative path is taken from the repository root.

    `fedpath train` resolves a relative path against the working folder; a benchmark anchors it
    to the repository so that it reads the same file from wherever it is started.
    """
    values = plain(data)
    known = {f.name for f in dataclasses.fields(DataSource)}
    path = values.get("path")
    if path is not None:
        path = Path(path) if Path(path).is_absolute() else REPO / path
        if not path.is_file():
            raise ConfigError(
                f"data.path must be an existing file (set FEDPATH_SHARED_DATA), got {path}"
            )
    return DataSource(**{**{k: v for k, v in values.items() if k in known}, "path": path})


def _status_mb(field: str) -> float:
    match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"{_STATUS} must report {field} (Linux only), got no such line")
    return int(match.group(1)) / _MIB


def rss_mb() -> float:
    """Resident memory of this process now."""
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    """Peak resident memory of this process since it started or since ``reset_peak_rss``."""
    return _status_mb("VmHWM")


def reset_peak_rss() -> None:
    """Set the peak back to the current resident memory (Linux ``clear_refs`` code 5)."""
    Path("/proc/self/clear_refs").write_text("5")
