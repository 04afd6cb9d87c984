"""``provision``: a project file in, a finished federation kit out, or nothing at all.

The kit is built in a hidden folder beside the destination by small steps (authority,
coordinator, partners) and renamed into place only when every step succeeded, so a failure
never leaves a half-written kit that someone might deploy (as NVIDIA FLARE's provisioner does).
The destination must not exist: reprovisioning over a live federation's keys is refused rather
than silently replacing them.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from fedpath.errors import ConfigError
from fedpath.federation import layout
from fedpath.privacy.keys import AES_KEY_BYTES
from fedpath.server.provision import pki
from fedpath.server.provision.project import PartnerSpec, Project

ITEM_KEY_BYTES = 32
PSEUDONYM_KEY_BYTES = 32
SERVING_TOKEN_BYTES = 32
AUTHORITY = "ca"
COORDINATOR = "coordinator"
PARTNERS = "partners"


@dataclass(frozen=True)
class Kit:
    """Where provisioning put things."""

    root: Path
    authority: Path  # ca.crt + ca.key: keep offline; the CA key signs nothing after provisioning
    coordinator: Path  # the coordinator's workspace
    partners: dict[str, Path]  # partner name -> its bundle


def provision(project: Project, out: Path) -> Kit:
    """Write the CA, the coordinator's workspace and one bundle per partner under ``out``."""
    out = Path(out)
    if out.exists():
        raise ConfigError(f"out must be a folder that does not exist yet, got existing {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        staging.mkdir(mode=0o700)
        authority = pki.Authority.create(project.name, days=project.validity_days)
        ca_cert = pki.pem_certificate(authority.certificate)
        _authority(staging / AUTHORITY, authority, ca_cert)
        public_keys = {
            p.name: _partner(staging / PARTNERS / p.name, project, p, ca_cert)
            for p in project.partners
        }
        _item_key(staging, project)
        _coordinator(staging / COORDINATOR, project, authority, ca_cert, public_keys)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Kit(
        root=out,
        authority=out / AUTHORITY,
        coordinator=out / COORDINATOR,
        partners={p.name: out / PARTNERS / p.name for p in project.partners},
    )


def _authority(folder: Path, authority: pki.Authority, ca_cert: bytes) -> None:
    folder.mkdir(mode=0o700)
    (folder / layout.CA_CERT).write_bytes(ca_cert)
    pki.write_private(folder / layout.CA_KEY, pki.pem_private_key(authority.key))


def _partner(folder: Path, project: Project, partner: PartnerSpec, ca_cert: bytes) -> bytes:
    """The partner's bundle; returns its public key, the coordinator's half of the pair."""
    folder.mkdir(mode=0o700, parents=True)
    private, public = pki.openssh_key_pair()
    pki.write_private(folder / layout.PARTNER_KEY, private)
    pki.write_private(folder / layout.MODEL_KEY, os.urandom(AES_KEY_BYTES))
    # its own, drawn here and written nowhere else: pseudonyms no other side can recompute
    pki.write_private(folder / layout.PSEUDONYM_KEY, os.urandom(PSEUDONYM_KEY_BYTES))
    # text, so the partner's own applications can send it as `Authorization: Bearer <token>`
    token = secrets.token_urlsafe(SERVING_TOKEN_BYTES)
    pki.write_private(folder / layout.SERVING_TOKEN, token.encode())
    (folder / layout.PARTNER_PUBLIC_KEY).write_bytes(public)
    (folder / layout.CA_CERT).write_bytes(ca_cert)
    layout.write_yaml(
        folder / layout.PARTNER_CONFIG,
        f"fedpath partner bundle of {partner.name!r}, written by `fedpath provision`; "
        "keep this folder private",
        {
            "project": project.name,
            "partner": {"name": partner.name, "index": partner.index, "of": len(project.partners)},
            "coordinator": project.coordinator.address,
            "federation": project.federation.to_dict(),
        },
    )
    return public


def _item_key(staging: Path, project: Project) -> None:
    """One HMAC key for the partners' shared item space; it goes to no one but the partners."""
    key = os.urandom(ITEM_KEY_BYTES)
    for partner in project.partners:
        pki.write_private(staging / PARTNERS / partner.name / layout.ITEM_KEY, key)


def _coordinator(
    folder: Path,
    project: Project,
    authority: pki.Authority,
    ca_cert: bytes,
    public_keys: dict[str, bytes],
) -> None:
    tls, keys = folder / layout.TLS, folder / layout.PARTNER_KEYS
    for path in (folder, tls, keys):
        path.mkdir(mode=0o700)
    spec = project.coordinator
    key, certificate = authority.issue_server(spec.host, spec.sans, days=project.validity_days)
    (tls / layout.CA_CERT).write_bytes(ca_cert)
    (tls / layout.COORDINATOR_CERT).write_bytes(pki.pem_certificate(certificate))
    pki.write_private(tls / layout.COORDINATOR_KEY, pki.pem_private_key(key))
    pki.write_private(folder / layout.MODEL_KEY, os.urandom(AES_KEY_BYTES))
    listing = []
    for name, public in public_keys.items():
        (keys / f"{name}.pub").write_bytes(public)
        listing.append(f"{public.decode().strip()} {name}\n")
    (folder / layout.AUTHORIZED_KEYS).write_text("".join(listing))
    layout.write_yaml(
        folder / layout.COORDINATOR_CONFIG,
        "fedpath coordinator workspace, written by `fedpath provision`",
        {
            "project": project.name,
            "address": spec.address,
            "port": spec.port,
            "federation": project.federation.to_dict(),
            "partners": [
                {
                    "name": p.name,
                    "index": p.index,
                    "public_key": f"{layout.PARTNER_KEYS}/{p.name}.pub",
                }
                for p in project.partners
            ],
        },
    )
