"""Where a partner's secret keys come from: a file it controls, or an environment variable.

A key file holds the raw key bytes (``head -c 32 /dev/urandom > model.key``), the way the item
hashing key is read; an environment variable holds the key as hex, since a variable cannot carry
arbitrary bytes. The file wins when both are given, so an explicit configuration is never
overridden by a variable left in a shell.
"""

from __future__ import annotations

import os
from pathlib import Path

from fedpath.data.hashing import MIN_KEY_BYTES
from fedpath.errors import ConfigError

MODEL_KEY_ENV = "FEDPATH_MODEL_KEY"  # AES-256-GCM key of encrypted models and checkpoints
PSEUDONYM_KEY_ENV = "FEDPATH_PSEUDONYM_KEY"  # HMAC key of user and session pseudonyms
AES_KEY_BYTES = 32


def read_key(
    path: Path | str | None, *, env: str, n_bytes: int | None = None, min_bytes: int = MIN_KEY_BYTES
) -> bytes:
    """The key in ``path``, else in ``$env`` (hex); exactly ``n_bytes`` long when given."""
    if path is not None:
        path = Path(path)
        try:
            key = path.read_bytes()
        except OSError as error:
            raise ConfigError(f"key file {path} must be readable, got {error}") from None
        origin = f"key file {path}"
    elif os.environ.get(env):
        try:
            key = bytes.fromhex(os.environ[env].strip())
        except ValueError:
            raise ConfigError(f"${env} must hold the key as hex digits, got other text") from None
        origin = f"${env}"
    else:
        raise ConfigError(f"a key must be given as a key file or in ${env}, got neither")
    if n_bytes is not None and len(key) != n_bytes:
        raise ConfigError(f"{origin} must hold exactly {n_bytes} key bytes, got {len(key)}")
    if len(key) < min_bytes:
        raise ConfigError(f"{origin} must hold at least {min_bytes} key bytes, got {len(key)}")
    return key


def model_key(path: Path | str | None = None) -> bytes:
    """The 256-bit key of encrypted artifacts, from ``path`` or ``$FEDPATH_MODEL_KEY``."""
    return read_key(path, env=MODEL_KEY_ENV, n_bytes=AES_KEY_BYTES)


def pseudonym_key(path: Path | str | None = None) -> bytes:
    """The partner's pseudonymization key, from ``path`` or ``$FEDPATH_PSEUDONYM_KEY``."""
    return read_key(path, env=PSEUDONYM_KEY_ENV)
