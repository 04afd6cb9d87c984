"""Defaults of the long-running services (``conf/coordinator.yaml``, ``conf/partner.yaml``),
overlaid by an operator's own file.

The daemons take plain YAML rather than a Hydra tree: an operator edits one file beside the
workspace or bundle, and a key that is not in the defaults is refused with its file and path,
so a typo never silently falls back to a default. ``packaged_yaml`` is the one reader of the
YAML shipped in ``conf/``, for these defaults and the models' (``conf/model/``) alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from fedpath.errors import ConfigError


def packaged_yaml(*parts: str) -> Any:
    """A YAML file shipped in ``conf/`` (``fedpath.conf``), found wherever fedpath is installed."""
    return yaml.safe_load(files("fedpath.conf").joinpath(*parts).read_text(encoding="utf-8"))


def load_service_config(name: str, override: Path | None = None) -> dict[str, Any]:
    """The packaged ``conf/<name>.yaml`` with ``override`` (a YAML file) merged over it."""
    defaults = packaged_yaml(f"{name}.yaml")
    if override is None:
        return defaults
    return _merge(defaults, read_yaml(Path(override)) or {}, str(override), "")


def read_yaml(path: Path) -> Any:
    """The YAML document in ``path``, else a ConfigError naming the file, the place and the fix
    in one line (yaml's own messages span several, and a decoding error is no yaml error)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: must be UTF-8 text, got byte 0x{error.object[error.start]:02x} at offset "
            f"{error.start}: save the file as UTF-8"
        ) from None
    except OSError as error:
        raise ConfigError(f"{path}: must be a readable file, got {error.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path}: must be valid YAML, got {problem}{where}") from None


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
