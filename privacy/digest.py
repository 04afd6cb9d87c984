"""A partner's data digest: one hash that pins down exactly which sessions it trained on.

The partner computes it on its premises and only the hash travels, so an auditor can later ask
the partner to recompute it over the data it kept and check that a run used that data, without
the data ever leaving. Session keys are in it (pseudonyms when pseudonymization is on), as are the
item ids (through the vocabulary), actions, start times and censoring: change any and the digest
changes.
"""

from __future__ import annotations

import hashlib

import numpy as np

from fedpath.data.containers import SplitDataset

SPLITS = ("train", "valid", "test")


def data_digest(split: SplitDataset) -> str:
    """SHA-256 over the vocabulary and every session of every split, in order."""
    digest = hashlib.sha256()
    for item in split.vocab:
        digest.update(item.encode("utf-8") + b"\x1f")
    for name in SPLITS:
        sessions = getattr(split, name)
        digest.update(f"\x1e{name}:{len(sessions)}".encode())
        for session in sessions:
            digest.update(f"\x1d{session.key}\x1f{session.start}\x1f{session.censored:d}".encode())
            digest.update(np.asarray(session.items, dtype="<i8").tobytes())
            digest.update(np.asarray(session.actions, dtype="i1").tobytes())
    return digest.hexdigest()
