"""A shared item space that does not show partners' raw item ids to the coordinator.

Federated partners must agree on which embedding row an item uses, yet a product id can reveal
a catalogue, a supplier or a price list. Each partner maps its ids through HMAC-SHA256 under a key
only the partners hold, into a fixed number of buckets: every partner lands the same item in the
same bucket, while the coordinator (who never has the key) sees bucket numbers it cannot invert
or test guesses against. The price is collisions: distinct items sharing a bucket become one
item to every model, which ``collision_rate`` measures so ``n_buckets`` can be chosen with eyes
open.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fedpath.errors import ConfigError

MIN_KEY_BYTES = 16
BUCKET_PREFIX = "h"
SMALL = 512  # at most this many ids are hashed through a dict, more through pandas


def check_key(key: bytes) -> None:
    """Refuse a key too short to keep its MACs unguessable (shared by every keyed mapping)."""
    if not isinstance(key, bytes):
        raise TypeError(f"key must be bytes, got {type(key).__name__}")
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"key must be at least {MIN_KEY_BYTES} bytes, got {len(key)}")


def read_item_key(path: Path) -> bytes:
    """The partners' item key from its file (raw bytes), refused with the file named: it is
    the file a user gets wrong (a path, a truncated copy), not the bytes."""
    try:
        key = Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(f"item key file {path} must be readable, got {error.strerror}") from None
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            f"item key file {path} must hold at least {MIN_KEY_BYTES} bytes, got {len(key)}: "
            "use the item.key that `fedpath provision` wrote (or `head -c 32 /dev/urandom`)"
        )
    return key


def keyed_digest(key: bytes, text: str) -> bytes:
    """HMAC-SHA256 of ``text`` under ``key``: the one keyed function behind every id mapping."""
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


@dataclass(frozen=True)
class ItemHasher:
    """Keyed mapping of raw item ids to ``0..n_buckets-1``; the key never shows in ``repr``."""

    key: bytes = field(repr=False)
    n_buckets: int

    def __post_init__(self) -> None:
        check_key(self.key)
        if isinstance(self.n_buckets, bool) or not isinstance(self.n_buckets, int):
            raise ValueError(f"n_buckets must be an int, got {self.n_buckets!r}")
        if self.n_buckets < 1:
            raise ValueError(f"n_buckets must be >= 1, got {self.n_buckets}")

    def bucket(self, item_id: str) -> int:
        """The bucket of one item; 64 bits of the MAC make the modulo bias negligible."""
        digest = keyed_digest(self.key, str(item_id))
        return int.from_bytes(digest[:8], "big") % self.n_buckets

    def buckets(self, item_ids: Iterable[str]) -> np.ndarray:
        """Buckets of many ids (``[n]`` int64), each distinct id hashed once.

        pandas' factorize pays off on a log; a prediction request's few ids (served per request,
        where pandas' fixed cost would be most of the work) go through a dict instead.
        """
        ids = list(item_ids)
        if len(ids) <= SMALL:
            seen: dict[str, int] = {}
            return np.array(
                [seen[i] if i in seen else seen.setdefault(i, self.bucket(i)) for i in ids],
                dtype=np.int64,
            ).reshape(len(ids))
        codes, uniques = pd.factorize(pd.Series(ids, dtype=object))
        table = np.fromiter((self.bucket(u) for u in uniques), dtype=np.int64, count=len(uniques))
        return table[codes]


def hash_items(events: pd.DataFrame, hasher: ItemHasher) -> pd.DataFrame:
    """A copy of ``events`` whose ``item_id`` is the bucket as text (``"h123"``)."""
    buckets = hasher.buckets(events["item_id"].to_numpy(dtype=object))
    hashed = np.char.add(BUCKET_PREFIX, buckets.astype(str)).astype(object)
    return events.assign(item_id=hashed)


def collision_rate(item_ids: Iterable[str], hasher: ItemHasher) -> float:
    """Fraction of the distinct items that share their bucket with another distinct item.

    This is the share of the catalogue a model can no longer tell apart. For m random items in
    B buckets it is about ``1 - (1 - 1/B) ** (m - 1)`` (the birthday bound). No items: 0.0.
    """
    distinct = pd.unique(pd.Series(list(item_ids), dtype=object))
    if len(distinct) == 0:
        return 0.0
    _, inverse, counts = np.unique(
        hasher.buckets(distinct), return_inverse=True, return_counts=True
    )
    return float((counts[inverse] > 1).mean())
