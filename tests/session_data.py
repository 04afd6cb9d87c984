"""Sessions from plain lists, for tests that build a handful by hand (not collected itself)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fedpath.data.containers import Session


def session(
    key: str, items: Sequence[int], actions: Sequence[int] | None = None, **fields: Any
) -> Session:
    """A session starting at 0; ``actions`` default to all views, ``fields`` set the rest."""
    return Session(
        key=key,
        items=np.array(items, dtype=np.int64),
        actions=np.array([0] * len(items) if actions is None else actions, dtype=np.int8),
        start=0,
        **fields,
    )
