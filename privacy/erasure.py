"""Right to erasure on a partner's premises: a user's events leave its local store for good.

The store is the partner's canonical events file (CSV or Parquet in fedpath's own format), the
one its runs load. Erasing a user removes every event carrying the user's id and every event of a
session the user took part in (events logged before a login share the session, and would still
describe the person). The store is replaced atomically, so a crash leaves either the old store or
the new one, and the erasure is then recorded in the partner's privacy ledger under the user's
pseudonym (never the raw id). What this does not do to models already trained is in
docs/privacy.md: there is no unlearning; the next run trains without the user.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fedpath.data.loader import load_events
from fedpath.data.records import is_parquet
from fedpath.durable import atomic_write, file_sha256
from fedpath.errors import DataFormatError
from fedpath.privacy.dp.ledger import ERASURE, LedgerEntry, LedgerLog
from fedpath.privacy.pseudonymize import pseudonym
from fedpath.schema import conform

STORE_FORMAT = "fedpath"


@dataclass(frozen=True)
class Erasure:
    user: str  # the user's pseudonym: what the ledger records
    events_removed: int
    sessions_removed: int
    events_kept: int
    entry: LedgerEntry  # the ledger's record of this erasure


def forget_user(store: Path | str, user_id: str, *, ledger: Path | str, key: bytes) -> Erasure:
    """Remove ``user_id`` from ``store`` and record it in ``ledger`` (module doc).

    The user is matched by raw id and by pseudonym under ``key``, so a store already holding
    pseudonyms is erased too. A user with no events is still recorded: the request was served.
    """
    store = Path(store)
    if not isinstance(user_id, str) or not user_id:
        raise ValueError(f"user_id must be a non-empty string, got {user_id!r}")
    alias = pseudonym(user_id, key, "user_id")
    events = _read_store(store)
    by_user = events["user_id"].isin([user_id, alias]).to_numpy()
    sessions = events.loc[by_user, "session_id"].dropna().unique()
    remove = by_user | events["session_id"].isin(sessions).to_numpy()
    kept = events.loc[~remove]
    if remove.any():
        atomic_write(store, _store_bytes(kept, parquet=is_parquet(store)))
    record = {
        "user": alias,
        "events_removed": int(remove.sum()),
        "sessions_removed": len(sessions),
        "store": str(store),
        "store_sha256": file_sha256(store),
    }
    entry = LedgerLog(ledger).append(ERASURE, record)
    return Erasure(alias, int(remove.sum()), len(sessions), len(kept), entry)


def _read_store(store: Path) -> pd.DataFrame:
    """The store's events; a store with malformed rows is refused: rewriting would drop them."""
    loaded = load_events(store, fmt=STORE_FORMAT)
    quarantine = loaded.quarantine_path
    if quarantine is not None:
        first = json.loads(quarantine.read_text(encoding="utf-8").splitlines()[0])
        quarantine.unlink()  # it holds raw records: do not leave them in a temporary folder
        raise DataFormatError(
            f"{store}: line {first['line']}, field {first['field']}: {first['reason']}; the store "
            f"must hold only valid canonical events before a user is erased from it, got "
            f"{loaded.n_quarantined} malformed row(s)"
        )
    return loaded.events


def _store_bytes(events: pd.DataFrame, *, parquet: bool) -> bytes:
    events = conform(events)
    if parquet:
        buffer = io.BytesIO()
        events.to_parquet(buffer, index=False)
        return buffer.getvalue()
    return events.to_csv(index=False, lineterminator="\n").encode("utf-8")
