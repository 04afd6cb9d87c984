"""fedpath provision: the kit a federation is deployed from, and what Flower accepts of it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_ssh_private_key
from flwr.cli.supernode.register import try_load_public_key
from flwr.supercore.primitives.asymmetric import public_key_to_bytes

from fedpath.errors import ConfigError
from fedpath.server.provision import (
    load_bundle,
    load_project,
    load_workspace,
    pki,
    provision,
)

PROJECT = {
    "name": "shopfed",
    "validity_days": 30,
    "coordinator": {"host": "coord.example.org", "port": 9443, "sans": ["10.1.2.3"]},
    "partners": [{"name": "alpha"}, {"name": "beta"}, {"name": "gamma"}],
    "federation": {"model": "markov", "item_buckets": 256},
}


def write_project(folder: Path, data: dict) -> Path:
    path = folder / "project.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("provision")
    return provision(load_project(write_project(folder, PROJECT)), folder / "kit")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_private_key_is_owner_only(kit) -> None:
    # Prepare
    coordinator = kit.coordinator
    secrets = [kit.authority / "ca.key", coordinator / "tls" / "coordinator.key"]
    secrets.append(coordinator / "model.key")
    for bundle in kit.partners.values():
        names = ("partner.key", "item.key", "model.key", "pseudonym.key")
        secrets += [bundle / name for name in names]

    # Execute
    modes = {str(p): mode(p) for p in secrets}

    # Assert
    assert modes == {str(p): 0o600 for p in secrets}


def test_coordinator_certificate_is_signed_by_the_ca_for_its_names(kit) -> None:
    # Prepare
    ca = x509.load_pem_x509_certificate((kit.authority / "ca.crt").read_bytes())
    cert_path = kit.coordinator / "tls" / "coordinator.crt"
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())

    # Execute
    cert.verify_directly_issued_by(ca)  # raises if not signed by the CA
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = {*sans.get_values_for_type(x509.DNSName)}
    names |= {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}

    # Assert
    assert names == {"coord.example.org", "10.1.2.3", "127.0.0.1", "localhost"}
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_partner_keys_are_openssh_ec_pairs_flower_reads(kit) -> None:
    for name, bundle in kit.partners.items():
        # Execute: what flower-supernode and `flwr supernode register` do with them
        private = load_ssh_private_key((bundle / "partner.key").read_bytes(), None)
        registered = try_load_public_key(kit.coordinator / "partner-keys" / f"{name}.pub")

        # Assert
        assert isinstance(private, ec.EllipticCurvePrivateKey), name
        assert registered == public_key_to_bytes(private.public_key()), name


def test_authorised_list_names_each_partner_key_once(kit) -> None:
    # Execute
    lines = (kit.coordinator / "authorized-partners.txt").read_text().splitlines()

    # Assert
    assert [line.split()[-1] for line in lines] == ["alpha", "beta", "gamma"]
    for line, bundle in zip(lines, kit.partners.values(), strict=True):
        assert line.rsplit(" ", 1)[0] == (bundle / "partner.pub").read_text().strip()


def test_bundles_hold_their_own_identity_and_keys_and_the_shared_item_key_only(kit) -> None:
    # Execute
    bundles = {name: load_bundle(path) for name, path in kit.partners.items()}
    workspace = load_workspace(kit.coordinator)

    # Assert
    assert [(b.name, b.index, b.n_partners) for b in bundles.values()] == [
        ("alpha", 0, 3),
        ("beta", 1, 3),
        ("gamma", 2, 3),
    ]
    assert {b.coordinator for b in bundles.values()} == {"coord.example.org:9443"}
    assert len({b.item_key.read_bytes() for b in bundles.values()}) == 1
    model_keys = {b.model_key.read_bytes() for b in bundles.values()}
    assert len(model_keys | {workspace.model_key.read_bytes()}) == 4  # one per side
    assert not list(kit.coordinator.rglob("item.key"))
    # Assert: each partner's pseudonym key is its own, 32 bytes, and in no coordinator file
    pseudonym_keys = [b.pseudonym_key.read_bytes() for b in bundles.values()]
    assert len(set(pseudonym_keys)) == 3 and {len(k) for k in pseudonym_keys} == {32}
    coordinator_files = [p.read_bytes() for p in kit.coordinator.rglob("*") if p.is_file()]
    assert not [k for k in pseudonym_keys for data in coordinator_files if k in data]
    assert not list(kit.coordinator.rglob("pseudonym.key"))
    assert {b.federation.digest for b in bundles.values()} == {workspace.federation.digest}
    assert sorted(p.name for p in bundles["alpha"].root.iterdir()) == [
        "ca.crt",
        "item.key",
        "model.key",
        "partner.key",
        "partner.pub",
        "partner.yaml",
        "pseudonym.key",
        "serving.token",
    ]


def test_existing_destination_is_refused(tmp_path: Path) -> None:
    # Prepare
    (tmp_path / "kit").mkdir()
    project = load_project(write_project(tmp_path, PROJECT))

    # Execute / Assert
    with pytest.raises(ConfigError, match="does not exist yet"):
        provision(project, tmp_path / "kit")


def test_failed_build_leaves_nothing_behind(tmp_path: Path, monkeypatch) -> None:
    # Prepare: the third partner's key generation fails half-way through the kit
    project = load_project(write_project(tmp_path, PROJECT))
    made = []
    real = pki.openssh_key_pair

    def failing_third() -> tuple[bytes, bytes]:
        made.append(1)
        if len(made) == 3:
            raise OSError("disk full")
        return real()

    monkeypatch.setattr(pki, "openssh_key_pair", failing_third)

    # Execute
    with pytest.raises(OSError, match="disk full"):
        provision(project, tmp_path / "kit")

    # Assert
    assert len(made) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project.yaml"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"partners": [{"name": "alpha"}]}, "partners must be a list of at least 2"),
        ({"partners": [{"name": "a"}, {"name": "a"}]}, r"unique, got \['a'\]"),
        ({"partners": [{"name": "Alpha!"}, {"name": "b"}]}, r"partners\[0\]\.name must be"),
        ({"coordinator": {"host": "h", "port": 70000}}, "coordinator.port must be in"),
        ({"federation": {"model": "nope"}}, "federation.model must be one of"),
        ({"federation": {"protocol": {"item_buckets": 9}}}, "must not set"),
        ({"extra": 1}, r"got \['extra'\]"),
    ],
)
def test_project_errors_name_the_file_and_field(tmp_path: Path, change: dict, message: str) -> None:
    # Prepare
    path = write_project(tmp_path, {**PROJECT, **change})

    # Execute / Assert
    with pytest.raises(ConfigError, match=message) as caught:
        load_project(path)
    assert str(path) in str(caught.value)
