"""Defaults of the long-running services (``conf/coordinator.yaml``, ``conf/partner.yaml``),
overlaid by an operator's own file.

The daemons take plain YAML rather than a Hydra tree: an operator edits one file beside the
workspace or bundle, and a key that is not in the defaults is refused with its file and path,
so a typo never silently falls back to a default.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from fedpath.errors import ConfigError


def load_service_config(name: str, override: Path | None = None) -> dict[str, Any]:
    """The packaged ``conf/<name>.yaml`` with ``override`` (a YAML file) merged over it."""
    defaults = yaml.safe_load((files("fedpath.conf") / f"{name}.yaml").read_text())
    if override is None:
        return defaults
    try:
        changes = yaml.safe_load(Path(override).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{override}: must be a readable YAML file, got {error}") from None
    return _merge(defaults, changes, str(override), "")


def _merge(base: dict[str, Any], changes: Any, source: str, prefix: str) -> dict[str, Any]:
    if not isinstance(changes, Mapping):
        raise ConfigError(f"{source}: {prefix or 'the file'} must be a mapping, got {changes!r}")
    merged = dict(base)
    for key, value in changes.items():
        if key not in base:
            raise ConfigError(
                f"{source}: key {prefix + str(key)!r} must be one of "
                f"{sorted(prefix + k for k in base)}, got an unknown key"
            )
        if isinstance(base[key], dict):
            merged[key] = _merge(base[key], value, source, f"{prefix}{key}.")
        else:
            merged[key] = value
    return merged
