"""Pseudonymization at the door: who the shoppers are never leaves the partner's loader.

User and session ids are replaced by keyed HMAC-SHA256 pseudonyms as soon as a partner's log is
loaded, before sessionization, so every later table, session key, update, metric, log line and
file only ever holds pseudonyms. The key stays with the partner: without it a pseudonym cannot be
inverted nor tested against a guessed id (an unkeyed hash of a loyalty-card number can be). The
same key gives the same pseudonym on every run, so a partner can still join its own runs; a new
key unlinks them. The column name is part of the MAC input, so a user id that happens to equal a
session id does not get the same pseudonym.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fedpath.data.hashing import check_key, keyed_digest

PSEUDONYM_COLUMNS = ("user_id", "session_id")
PREFIXES = {"user_id": "u-", "session_id": "s-"}
DIGEST_BYTES = 16  # 128 bits: no two of a partner's ids plausibly share a pseudonym


def pseudonym(value: str, key: bytes, column: str) -> str:
    """The pseudonym of one id of ``column`` (``user_id`` or ``session_id``)."""
    if column not in PREFIXES:
        raise ValueError(f"column must be one of {PSEUDONYM_COLUMNS}, got {column!r}")
    digest = keyed_digest(key, f"{column}\x1f{value}")[:DIGEST_BYTES]
    return PREFIXES[column] + digest.hex()


def pseudonymize(events: pd.DataFrame, key: bytes) -> pd.DataFrame:
    """A copy of a canonical events table whose user and session ids are pseudonyms.

    Missing ids stay missing (sessionization still needs to know which events lack a session).
    Each distinct id is hashed once.
    """
    check_key(key)
    out = events.copy()
    for column in PSEUDONYM_COLUMNS:
        codes, uniques = pd.factorize(events[column])
        # a missing id has code -1, which picks the trailing None
        table = np.array([*(pseudonym(str(v), key, column) for v in uniques), None], dtype=object)
        out[column] = pd.Series(table[codes], index=events.index, dtype=object)
    return out
