"""The project file ``fedpath provision`` reads: who takes part, where the coordinator listens,
and the federation contract they all sign up to (NVIDIA FLARE's ``project.yml``, in small).

Example::

    name: shopfed
    validity_days: 365             # certificates expire after this many days
    coordinator:
      host: coordinator.example.com  # the address partners dial; the TLS certificate names it
      port: 9092                     # the SuperLink's one HTTPS port (Fleet and Control APIs)
      sans: [10.0.0.5]               # further DNS names / IPs; 127.0.0.1 and localhost always
    partners:
      - name: alpha
      - name: beta
    federation:                      # fedpath.federation.contract.FederationContract
      model: gru4rec
      item_buckets: 4096
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedpath.errors import ConfigError
from fedpath.federation.contract import FederationContract
from fedpath.yamlconf import read_yaml

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MIN_PARTNERS = 2  # SecAgg+ and a mean both need two updates


@dataclass(frozen=True)
class CoordinatorSpec:
    host: str
    port: int
    sans: tuple[str, ...] = ()

    @property
    def address(self) -> str:
        """``host:port`` as a SuperNode's ``--superlink`` takes it."""
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class PartnerSpec:
    """One partner; ``index`` (its place in the project file) is its ``partition-id``."""

    name: str
    index: int


@dataclass(frozen=True)
class Project:
    name: str
    coordinator: CoordinatorSpec
    partners: tuple[PartnerSpec, ...]
    federation: FederationContract
    validity_days: int = 365


def load_project(path: Path) -> Project:
    """Read and check a project file; every error names the file and the field."""
    source = str(path)
    data = _mapping(read_yaml(Path(path)), source, "the project")
    _known(data, source, "", {"name", "validity_days", "coordinator", "partners", "federation"})
    name = _name(data.get("name"), source, "name")
    days = data.get("validity_days", 365)
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ConfigError(f"{source}: validity_days must be an integer >= 1, got {days!r}")
    return Project(
        name=name,
        coordinator=_coordinator(data.get("coordinator"), source),
        partners=_partners(data.get("partners"), source),
        federation=FederationContract.from_dict(data.get("federation") or {}, source=source),
        validity_days=days,
    )


def _coordinator(data: Any, source: str) -> CoordinatorSpec:
    data = _mapping(data, source, "coordinator")
    _known(data, source, "coordinator.", {"host", "port", "sans"})
    host = data.get("host")
    if not isinstance(host, str) or not host:
        raise ConfigError(f"{source}: coordinator.host must be a host name or IP, got {host!r}")
    port = data.get("port", 9092)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"{source}: coordinator.port must be in 1..65535, got {port!r}")
    sans = data.get("sans") or []
    if not isinstance(sans, list) or not all(isinstance(s, str) and s for s in sans):
        raise ConfigError(f"{source}: coordinator.sans must be a list of names, got {sans!r}")
    return CoordinatorSpec(host=host, port=port, sans=tuple(sans))


def _partners(data: Any, source: str) -> tuple[PartnerSpec, ...]:
    if not isinstance(data, list) or len(data) < MIN_PARTNERS:
        raise ConfigError(
            f"{source}: partners must be a list of at least {MIN_PARTNERS}, got {data!r}"
        )
    partners = []
    for index, entry in enumerate(data):
        entry = _mapping(entry, source, f"partners[{index}]")
        _known(entry, source, f"partners[{index}].", {"name"})
        partners.append(
            PartnerSpec(_name(entry.get("name"), source, f"partners[{index}].name"), index)
        )
    names = [p.name for p in partners]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"{source}: partner names must be unique, got {repeated} twice")
    return tuple(partners)


def _name(value: Any, source: str, field: str) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise ConfigError(
            f"{source}: {field} must be lowercase letters, digits and '-' (a folder name), "
            f"got {value!r}"
        )
    return value


def _mapping(value: Any, source: str, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: {what} must be a mapping, got {value!r}")
    return value


def _known(data: Mapping[str, Any], source: str, prefix: str, allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(
            f"{source}: keys must be among {sorted(prefix + k for k in allowed)}, "
            f"got {[prefix + k for k in unknown]}"
        )
