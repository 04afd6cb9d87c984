"""A deployed partner's own log, made ready for its ClientApp and its prediction server.

The log is read by the core loaders (quarantining malformed rows) and its user and session ids
are replaced at once by keyed pseudonyms under the partner's own key
(``fedpath.privacy.pseudonymize``), so nothing written from then on (cases, catalogue, log lines)
can hold a raw shopper id; only the quarantine keeps malformed rows verbatim, as the partner's
local diagnostics. The events are then run through the benchmark protocol in the federation's
hashed item space (the partners' key, ``item_buckets`` buckets), and cut into cases. Item indices
are the bucket numbers themselves, so every partner's index ``b`` is the same embedding row
without any vocabulary being exchanged. The cases go to the partner's work folder in the store
the simulation uses (``fedpath.clients.store``), and a catalogue maps each bucket back to the
partner's own most frequent item in it, so its recommendations name its own products. Nothing
here leaves the partner.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from fedpath.clients.store import save_partner, save_paths
from fedpath.data.cases import expand_prefixes
from fedpath.data.hashing import BUCKET_PREFIX, ItemHasher
from fedpath.data.loader import load_events
from fedpath.data.protocol import apply_protocol
from fedpath.errors import ConfigError, DataFormatError
from fedpath.federation.layout import Bundle
from fedpath.privacy.keys import PSEUDONYM_KEY_ENV, pseudonym_key
from fedpath.privacy.pseudonymize import pseudonymize

log = logging.getLogger(__name__)

CASES = "cases"
CATALOG = "catalog.json"
QUARANTINE = "quarantine.jsonl"


@dataclass(frozen=True)
class LocalData:
    """Sizes of what was prepared (counts only: safe to log and to show)."""

    cases_dir: Path
    catalog: Path
    n_events: int
    n_quarantined: int
    sessions: dict[str, int]
    cases: dict[str, int]


def prepare_local_data(
    bundle: Bundle,
    log_path: Path,
    work: Path,
    *,
    fmt: str | None = None,
    complete_sessions: bool = False,
) -> LocalData:
    """Load ``log_path``, pseudonymize it, and write the partner's cases and catalogue under
    ``work``; a partner without a pseudonym key is refused before anything is written."""
    key = _partner_pseudonym_key(bundle)
    work.mkdir(parents=True, exist_ok=True)
    cases_dir = work / CASES
    cases_dir.mkdir(exist_ok=True)
    loaded = load_events(log_path, fmt=fmt, quarantine_path=work / QUARANTINE)
    loaded = replace(loaded, events=pseudonymize(loaded.events, key))
    if loaded.n_quarantined:
        log.warning(
            "%s: %d malformed rows quarantined in %s",
            log_path,
            loaded.n_quarantined,
            loaded.quarantine_path,
            extra={"event": "quarantine", "rows": loaded.n_quarantined},
        )
    contract = bundle.federation
    protocol = contract.protocol_config(item_key_path=bundle.item_key)
    if complete_sessions or loaded.clockless:  # no time cut can have ended a session
        protocol = replace(protocol, censor_window_minutes=None)
    split = apply_protocol(loaded.events, protocol)
    bucket_of = _bucket_numbers(split.vocab, str(log_path))
    splits = {
        name: [replace(s, items=bucket_of[s.items]) for s in getattr(split, name)]
        for name in ("train", "valid", "test")
    }
    if not splits["train"]:
        raise DataFormatError(f"{log_path}: must keep at least one train session, got none")
    cases = {name: expand_prefixes(s, max_len=contract.max_len) for name, s in splits.items()}
    save_partner(cases_dir, bundle.index, cases)
    save_paths(cases_dir, bundle.index, [s for part in splits.values() for s in part])
    hasher = ItemHasher(bundle.item_key.read_bytes(), contract.item_buckets)
    catalog = write_catalog(work / CATALOG, loaded.events["item_id"], hasher)
    return LocalData(
        cases_dir=cases_dir,
        catalog=catalog,
        n_events=len(loaded.events),
        n_quarantined=loaded.n_quarantined,
        sessions={name: len(s) for name, s in splits.items()},
        cases={name: len(c) for name, c in cases.items()},
    )


def _partner_pseudonym_key(bundle: Bundle) -> bytes:
    """The bundle's ``pseudonym.key``, else ``$FEDPATH_PSEUDONYM_KEY`` (hex).

    Bundles provisioned before partners pseudonymized their logs hold no key file: such a partner
    sets the variable to a key it alone keeps, or is refused rather than run on raw ids.
    """
    path = bundle.pseudonym_key
    if not path.is_file() and not os.environ.get(PSEUDONYM_KEY_ENV):
        raise ConfigError(
            f"{bundle.root}: must hold {path.name} (bundles from fedpath provision do), or "
            f"${PSEUDONYM_KEY_ENV} must hold this partner's own pseudonymization key as hex "
            "(at least 16 bytes), got neither; user and session ids are never prepared raw"
        )
    return pseudonym_key(path if path.is_file() else None)


def _bucket_numbers(vocab: list[str], source: str) -> np.ndarray:
    """Vocabulary index -> bucket number (the hashed protocol names items ``h<bucket>``)."""
    bad = [v for v in vocab if not (v.startswith(BUCKET_PREFIX) and v[1:].isdigit())]
    if bad:
        raise DataFormatError(f"{source}: hashed item ids must be h<bucket>, got {bad[:3]}")
    return np.array([int(v[1:]) for v in vocab], dtype=np.int64)


def write_catalog(path: Path, item_ids: pd.Series, hasher: ItemHasher) -> Path:
    """Bucket -> the partner's most frequent raw item in it (ties: the first in the log)."""
    codes, items = pd.factorize(item_ids.astype(str))  # items in order of first appearance
    order = np.argsort(-np.bincount(codes), kind="stable")  # most frequent first
    ranked = [str(items[i]) for i in order]
    catalog: dict[str, str] = {}
    for item, bucket in zip(ranked, hasher.buckets(ranked).tolist(), strict=True):
        catalog.setdefault(str(bucket), item)
    path.write_text(json.dumps(catalog))
    return path


def load_catalog(path: Path, n_buckets: int) -> list[str | None]:
    """``catalog[b]``: the partner's item for bucket ``b``, None where it has none."""
    try:
        data = json.loads(path.read_text())
        items: list[str | None] = [None] * n_buckets
        for bucket, item in data.items():
            items[int(bucket)] = str(item)
    except (OSError, json.JSONDecodeError, ValueError, IndexError, AttributeError) as error:
        raise DataFormatError(
            f"{path}: must map bucket numbers below {n_buckets} to item ids, got {error!r}"
        ) from None
    return items
