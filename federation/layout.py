"""The two folders provisioning hands out, and how each side reads its own back.

* the coordinator's workspace: its TLS identity, the CA certificate, one public key per partner
  (the authorised list) and ``coordinator.yaml``;
* a partner's bundle: its node key pair, the CA certificate, the coordinator's address, the
  partners' shared item key and ``partner.yaml``.

Each side also gets its own ``model.key``: the AES-256 key its checkpoints and models are
encrypted with at rest (``fedpath.privacy.crypto``); it never leaves that side. Each partner gets
its own ``pseudonym.key``: the HMAC key its user and session ids are pseudonymized with as its
log is loaded (``fedpath.privacy.pseudonymize``); no one else holds it, the coordinator included.
Each partner also gets its own ``serving.token``: the bearer token its ``/predict`` server requires
of callers whenever it listens beyond loopback (``fedpath.clients.serving_server``).

File names live here only, so the writer (``build``) and the readers (coordinator, daemon)
cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fedpath.errors import ConfigError
from fedpath.federation.contract import FederationContract
from fedpath.yamlconf import read_yaml

COORDINATOR_CONFIG = "coordinator.yaml"
PARTNER_CONFIG = "partner.yaml"
AUTHORIZED_KEYS = "authorized-partners.txt"
PARTNER_KEYS = "partner-keys"
TLS = "tls"
CA_CERT = "ca.crt"
CA_KEY = "ca.key"
COORDINATOR_CERT = "coordinator.crt"
COORDINATOR_KEY = "coordinator.key"
PARTNER_KEY = "partner.key"
PARTNER_PUBLIC_KEY = "partner.pub"
ITEM_KEY = "item.key"
MODEL_KEY = "model.key"  # AES-256 key of this side's checkpoints and models at rest
PSEUDONYM_KEY = "pseudonym.key"  # HMAC key of one partner's user and session pseudonyms
SERVING_TOKEN = "serving.token"  # bearer token of one partner's /predict, as URL-safe text


@dataclass(frozen=True)
class AuthorizedPartner:
    name: str
    index: int
    public_key: Path


@dataclass(frozen=True)
class Workspace:
    """The coordinator's provisioned folder."""

    root: Path
    project: str
    port: int
    address: str  # what partners dial
    federation: FederationContract
    partners: tuple[AuthorizedPartner, ...]

    @property
    def ca_cert(self) -> Path:
        return self.root / TLS / CA_CERT

    @property
    def certificate(self) -> Path:
        return self.root / TLS / COORDINATOR_CERT

    @property
    def private_key(self) -> Path:
        return self.root / TLS / COORDINATOR_KEY

    @property
    def model_key(self) -> Path:
        return self.root / MODEL_KEY


@dataclass(frozen=True)
class Bundle:
    """A partner's provisioned folder: everything it needs to join, nothing about others."""

    root: Path
    project: str
    name: str
    index: int
    n_partners: int
    coordinator: str  # host:port of the coordinator's SuperLink
    federation: FederationContract

    @property
    def private_key(self) -> Path:
        return self.root / PARTNER_KEY

    @property
    def public_key(self) -> Path:
        return self.root / PARTNER_PUBLIC_KEY

    @property
    def ca_cert(self) -> Path:
        return self.root / CA_CERT

    @property
    def item_key(self) -> Path:
        return self.root / ITEM_KEY

    @property
    def model_key(self) -> Path:
        return self.root / MODEL_KEY

    @property
    def pseudonym_key(self) -> Path:
        """Absent from bundles provisioned before partners pseudonymized (not required here)."""
        return self.root / PSEUDONYM_KEY

    @property
    def serving_token(self) -> Path:
        """Absent from bundles provisioned before /predict took a token (needed off loopback)."""
        return self.root / SERVING_TOKEN


def write_yaml(path: Path, header: str, data: Mapping[str, Any]) -> Path:
    path.write_text(f"# {header}\n" + yaml.safe_dump(dict(data), sort_keys=False))
    return path


def load_workspace(root: Path) -> Workspace:
    """Read a coordinator workspace written by ``fedpath provision``."""
    root = Path(root).resolve()
    data, source = _read(root / COORDINATOR_CONFIG)
    try:
        partners = tuple(
            AuthorizedPartner(p["name"], int(p["index"]), root / p["public_key"])
            for p in data["partners"]
        )
        workspace = Workspace(
            root=root,
            project=str(data["project"]),
            port=int(data["port"]),
            address=str(data["address"]),
            federation=FederationContract.from_dict(data["federation"], source=source),
            partners=partners,
        )
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(
            f"{source}: must hold project, port, address, federation and partners "
            f"as written by fedpath provision, got an error at {error!r}"
        ) from None
    _require_files(
        source, workspace.ca_cert, workspace.certificate, workspace.private_key, workspace.model_key
    )
    _require_files(source, *(p.public_key for p in workspace.partners))
    return workspace


def load_bundle(root: Path) -> Bundle:
    """Read a partner bundle written by ``fedpath provision``."""
    root = Path(root).resolve()
    data, source = _read(root / PARTNER_CONFIG)
    try:
        bundle = Bundle(
            root=root,
            project=str(data["project"]),
            name=str(data["partner"]["name"]),
            index=int(data["partner"]["index"]),
            n_partners=int(data["partner"]["of"]),
            coordinator=str(data["coordinator"]),
            federation=FederationContract.from_dict(data["federation"], source=source),
        )
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(
            f"{source}: must hold project, partner (name, index, of), coordinator and "
            f"federation as written by fedpath provision, got an error at {error!r}"
        ) from None
    _require_files(source, bundle.private_key, bundle.ca_cert, bundle.item_key, bundle.model_key)
    return bundle


def _read(path: Path) -> tuple[dict[str, Any], str]:
    source = str(path)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: must be a YAML mapping, got {data!r}")
    return data, source


def _require_files(source: str, *paths: Path) -> None:
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ConfigError(f"{source}: the files it names must exist, got none at {missing}")
