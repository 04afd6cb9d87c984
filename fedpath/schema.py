"""The canonical event schema of a shopping path.

Every loader turns its source format into this one table so that sessionization, models and
federation never care where a log came from. A session ends with an implicit exit: the exit is
not an event row, it is the label of the step after the last event.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import pandas as pd


class Action(IntEnum):
    """Next-step actions. EXIT never appears in a log; it labels the end of a session."""

    VIEW = 0
    CART = 1
    PURCHASE = 2
    EXIT = 3


N_ACTIONS = len(Action)
ACTION_NAMES = tuple(a.name.lower() for a in Action)

# Column -> dtype of the canonical events table. Optional columns hold None / NaN when unknown.
EVENT_DTYPES: dict[str, str] = {
    "session_id": "object",  # str; may be filled by sessionization when the log has none
    "user_id": "object",  # str | None
    "timestamp": "int64",  # milliseconds since the Unix epoch, UTC
    "item_id": "object",  # str
    "category": "object",  # str | None
    "action": "int8",  # Action.VIEW / CART / PURCHASE
    "channel": "object",  # str | None: pc, app, mini-program, social, ...
    "price": "float64",  # NaN when unknown
    "source": "object",  # str | None: source platform / partner name
}
EVENT_COLUMNS: tuple[str, ...] = tuple(EVENT_DTYPES)

# A pre-split log (a published benchmark split) also carries each event's split: its file's split
# is then the protocol. Only such logs have the column, so every other table keeps its shape.
SPLIT_COLUMN = "split"
SPLITS = ("train", "valid", "test")


def empty_events() -> pd.DataFrame:
    """An events table with no rows and the canonical columns and dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in EVENT_DTYPES.items()})


def conform(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with the canonical columns (missing optional ones added), and its
    ``split`` column when it has one."""
    out = frame.copy()
    for column, dtype in EVENT_DTYPES.items():
        if column not in out:
            out[column] = np.nan if dtype == "float64" else None
    split = [SPLIT_COLUMN] if SPLIT_COLUMN in out else []
    return out[[*EVENT_COLUMNS, *split]].astype(EVENT_DTYPES)
