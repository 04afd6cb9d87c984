"""The key material of a federation, made with ``cryptography``: a CA, a TLS certificate for the
coordinator, and one EC key pair per partner in the OpenSSH format Flower's node authentication
reads (``flower-supernode --auth-supernode-private-key``, ``flwr supernode register``).

Private keys are written owner-only (0600) from the moment the file exists: the file is created
with that mode, never created open and narrowed afterwards.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# P-384: Flower's node authentication accepts NIST curves, and its own docs generate P-384 keys.
CURVE = ec.SECP384R1
PRIVATE_MODE = 0o600
ALWAYS_SANS = ("127.0.0.1", "localhost")  # the coordinator's own tools dial it on loopback


def write_private(path: Path, data: bytes) -> Path:
    """Write a secret so that no other user can read it at any moment."""
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    with os.fdopen(handle, "wb") as stream:
        stream.write(data)
    return path


def pem_private_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def pem_certificate(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def openssh_key_pair() -> tuple[bytes, bytes]:
    """A fresh node-authentication key pair: (OpenSSH private key, OpenSSH public key line)."""
    key = ec.generate_private_key(CURVE())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, public + b"\n"


@dataclass(frozen=True)
class Authority:
    """The federation's certificate authority: it vouches for the coordinator's TLS identity."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def create(cls, name: str, *, days: int) -> Authority:
        key = ec.generate_private_key(CURVE())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} fedpath CA")])
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA384())
        )
        return cls(key, certificate)

    def issue_server(
        self, host: str, sans: tuple[str, ...], *, days: int
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A TLS server certificate for ``host``, valid for ``sans`` and the loopback names."""
        key = ec.generate_private_key(CURVE())
        names = list(dict.fromkeys((host, *sans, *ALWAYS_SANS)))
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA384())
        )
        return key, certificate


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)
