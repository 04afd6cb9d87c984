"""Each simulated partner's cases in its own file, read by whichever process plays that partner.

Flower's Ray backend pickles the ClientApp's factory with every message; holding all partners'
data in that closure would ship the whole log thousands of times a round. A folder of one small
``.npz`` per partner is read once per process instead, which is also how a real partner would
read its local log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from functools import lru_cache
from pathlib import Path

import numpy as np

from fedpath.data.containers import Cases, Session
from fedpath.errors import DataFormatError

SPLITS = ("train", "valid", "test")
CASE_FIELDS = tuple(f.name for f in fields(Cases))


def partner_path(directory: Path, partner: int) -> Path:
    return directory / f"partner-{partner:04d}.npz"


def save_partner(directory: Path, partner: int, cases: dict[str, Cases]) -> Path:
    """Write one partner's train/valid/test cases; returns the file written."""
    missing = [name for name in SPLITS if name not in cases]
    if missing:
        raise ValueError(f"cases must hold the splits {SPLITS}, got no {missing}")
    arrays = {
        f"{split}.{name}": getattr(cases[split], name) for split in SPLITS for name in CASE_FIELDS
    }
    path = partner_path(directory, partner)
    np.savez(path, **arrays)
    return path


@lru_cache(maxsize=64)
def load_partner(directory: Path, partner: int) -> dict[str, Cases]:
    """One partner's cases (cached: a process playing the partner again reads nothing)."""
    path = partner_path(directory, partner)
    if not path.is_file():
        raise DataFormatError(f"{path}: no cases stored for partner {partner}")
    with np.load(path) as archive:
        missing = sorted({f"{s}.{n}" for s in SPLITS for n in CASE_FIELDS} - set(archive.files))
        if missing:
            raise DataFormatError(f"{path}: arrays {missing} missing from the partner's cases")
        return {
            split: Cases(**{name: archive[f"{split}.{name}"] for name in CASE_FIELDS})
            for split in SPLITS
        }


def paths_path(directory: Path, partner: int) -> Path:
    return directory / f"partner-{partner:04d}-paths.npz"


def save_paths(directory: Path, partner: int, sessions: Sequence[Session]) -> Path:
    """Each of the partner's sessions as its furthest action and channel: all its funnel needs.

    Kept apart from the cases, which lose the channel and cut long paths to their last steps.
    """
    channels = [s.channel for s in sessions]
    path = paths_path(directory, partner)
    np.savez(
        path,
        furthest=np.array([s.actions.max() for s in sessions], dtype=np.int8),
        channel=np.array([c or "" for c in channels], dtype=np.str_),
        known=np.array([c is not None for c in channels], dtype=bool),
    )
    return path


def load_paths(directory: Path, partner: int) -> tuple[np.ndarray, np.ndarray]:
    """``(furthest action, channel or None)`` per session of the partner's whole log."""
    path = paths_path(directory, partner)
    if not path.is_file():
        raise DataFormatError(f"{path}: no session paths stored for partner {partner}")
    with np.load(path) as archive:
        missing = sorted({"furthest", "channel", "known"} - set(archive.files))
        if missing:
            raise DataFormatError(f"{path}: arrays {missing} missing from the partner's paths")
        channel = np.where(archive["known"], archive["channel"].astype(object), None)
        return archive["furthest"], channel
