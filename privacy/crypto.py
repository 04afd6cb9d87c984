"""Models and checkpoints at rest, encrypted and authenticated with AES-256-GCM.

File layout (version 1)::

    magic "FPENC" | version (1 byte) | kind length (1 byte) | kind (ASCII) | nonce (12 bytes)
    | ciphertext | GCM tag (16 bytes)

The associated data is the header plus the file's name, so the tag covers more than the bytes:
a file renamed, or a checkpoint put where a model is expected, fails to authenticate exactly like
a tampered or wrongly keyed one, and nothing is ever parsed from a file that did not
authenticate. An encrypted model also binds the name of the folder it is written in (a run
folder: Hydra names each by command, config and second), so a model copied from another run
under the same file name is refused too; a run folder moved whole keeps its models readable.
The nonce is random per write (96 bits; the GCM limit of 2^32 writes per key is far beyond a
federation's checkpoints). The plain safetensors bytes live only in memory.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fedpath.durable import atomic_write
from fedpath.errors import ConfigError
from fedpath.models.base import NextStepModel
from fedpath.models.weights_io import (
    ENCRYPTED_SUFFIX,
    load_model,
    model_from_bytes,
    model_to_bytes,
    save_weights,
)
from fedpath.privacy.errors import DecryptionError
from fedpath.privacy.keys import AES_KEY_BYTES, model_key

MAGIC = b"FPENC"
VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16
MODEL_KIND = "model"
CHECKPOINT_KIND = "checkpoint"
RUN_MODEL_FILE = "model.safetensors"  # a run folder's model; + ENCRYPTED_SUFFIX when encrypted


def encrypt_bytes(plaintext: bytes, key: bytes, *, kind: str, name: str) -> bytes:
    """The encrypted file for ``plaintext``, bound to ``kind`` and to the file ``name``."""
    _check_key(key)
    header = _header(kind, os.urandom(NONCE_BYTES))
    nonce = header[-NONCE_BYTES:]
    return header + AESGCM(key).encrypt(nonce, plaintext, _associated(header, name))


def decrypt_bytes(blob: bytes, key: bytes, *, kind: str, name: str, source: str) -> bytes:
    """The plaintext of an encrypted file, or :class:`DecryptionError`; ``source`` names it."""
    _check_key(key)
    header, found_kind = _parse_header(blob, source)
    if found_kind != kind:
        raise DecryptionError(f"{source}: must hold a {kind!r}, got a {found_kind!r}")
    nonce = header[-NONCE_BYTES:]
    try:
        return AESGCM(key).decrypt(nonce, blob[len(header) :], _associated(header, name))
    except InvalidTag:
        raise DecryptionError(
            f"{source}: refused, it does not authenticate: it was modified, renamed, copied "
            f"from another folder, or encrypted under another key"
        ) from None


def encrypt_file(
    path: Path | str, plaintext: bytes, key: bytes, *, kind: str, bind_folder: bool = False
) -> Path:
    """Write ``plaintext`` encrypted to ``path`` (atomically: a crash leaves no partial file);
    with ``bind_folder`` the tag also covers the name of the folder it is in."""
    path = Path(path)
    name = _bound_name(path, bind_folder)
    return atomic_write(path, encrypt_bytes(plaintext, key, kind=kind, name=name))


def decrypt_file(path: Path | str, key: bytes, *, kind: str, bind_folder: bool = False) -> bytes:
    """The plaintext of the encrypted file at ``path``, authenticated before it is returned."""
    path = Path(path)
    name = _bound_name(path, bind_folder)
    return decrypt_bytes(path.read_bytes(), key, kind=kind, name=name, source=str(path))


def save_encrypted_model(path: Path | str, model: NextStepModel, key: bytes) -> Path:
    """``save_weights`` for a model that must only ever be on disk encrypted, bound to its file
    and folder names (module doc)."""
    return encrypt_file(path, model_to_bytes(model), key, kind=MODEL_KIND, bind_folder=True)


def load_encrypted_model(path: Path | str, key: bytes) -> NextStepModel:
    """``load_model`` for an encrypted model: refused unless it authenticates under ``key`` in
    the folder, and under the name, it was written with."""
    blob = decrypt_file(path, key, kind=MODEL_KIND, bind_folder=True)
    return model_from_bytes(blob, source=str(path))


def save_run_model(run_dir: Path, model: NextStepModel, key: bytes | None) -> Path:
    """The model of a `fedpath train` / `simulate` run folder: ``model.safetensors`` without a
    key, else only ``model.safetensors.enc``, so the name alone tells a reader which it holds."""
    if key is None:
        return save_weights(run_dir / RUN_MODEL_FILE, model)
    return save_encrypted_model(run_dir / f"{RUN_MODEL_FILE}{ENCRYPTED_SUFFIX}", model, key)


def load_model_file(path: Path | str, key: bytes | None = None) -> NextStepModel:
    """The model at ``path``, plain or encrypted as its name says (``*.enc``).

    An encrypted one is decrypted under ``key``, else under ``$FEDPATH_MODEL_KEY``, and refused
    with :class:`DecryptionError` unless it authenticates; without either key it is refused
    with a :class:`ConfigError` naming the file.
    """
    path = Path(path)
    if not path.name.endswith(ENCRYPTED_SUFFIX):
        return load_model(path)
    if key is None:
        try:
            key = model_key()
        except ConfigError as error:
            raise ConfigError(f"{path}: is an encrypted model, so {error}") from None
    return load_encrypted_model(path, key)


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != AES_KEY_BYTES:
        got = len(key) if isinstance(key, bytes) else type(key).__name__
        raise ValueError(f"key must be {AES_KEY_BYTES} bytes (AES-256), got {got}")


def _header(kind: str, nonce: bytes) -> bytes:
    encoded = kind.encode("ascii")
    if not 0 < len(encoded) < 256:
        raise ValueError(f"kind must be 1 to 255 ASCII characters, got {kind!r}")
    return MAGIC + struct.pack("BB", VERSION, len(encoded)) + encoded + nonce


def _parse_header(blob: bytes, source: str) -> tuple[bytes, str]:
    if not blob.startswith(MAGIC):
        raise DecryptionError(f"{source}: must start with {MAGIC!r} (a fedpath encrypted file)")
    fixed = len(MAGIC) + 2
    if len(blob) < fixed:
        raise DecryptionError(f"{source}: header must be complete, got {len(blob)} bytes")
    version, kind_length = struct.unpack("BB", blob[len(MAGIC) : fixed])
    if version != VERSION:
        raise DecryptionError(f"{source}: format version must be {VERSION}, got {version}")
    end = fixed + kind_length + NONCE_BYTES
    if len(blob) < end + TAG_BYTES:
        raise DecryptionError(f"{source}: must hold a header and a tag, got {len(blob)} bytes")
    try:
        kind = blob[fixed : fixed + kind_length].decode("ascii")
    except UnicodeDecodeError:
        raise DecryptionError(f"{source}: kind must be ASCII, got bytes") from None
    return blob[:end], kind


def _bound_name(path: Path, bind_folder: bool) -> str:
    """The identity the tag covers: ``<folder>/<file>`` when bound to its folder, else the file."""
    return f"{path.resolve().parent.name}/{path.name}" if bind_folder else path.name


def _associated(header: bytes, name: str) -> bytes:
    return header + b"\x00" + name.encode("utf-8")
