"""A small REES46-format log whose user and session ids are distinctive enough to be searched for.

Shared by the privacy tests (not collected itself). Every id starts with ``RAWUSER-`` or
``RAWSESS-`` so that a byte scan finding one can only mean a raw id leaked. One malformed row
(an unreadable time) carries its own raw ids, because a quarantine file copies rows verbatim.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

HEADER = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
)
CATEGORIES = ("electronics.smartphone", "appliances.kitchen", "apparel.shoes")
START = datetime(2019, 10, 1, tzinfo=UTC)
BAD_USER, BAD_SESSION = "RAWUSER-quarantined-999", "RAWSESS-quarantined-999"


def write_rees46_log(
    path: Path, *, n_users: int = 40, seed: int = 5
) -> tuple[list[str], list[str]]:
    """Write the log; returns its raw user ids and raw session ids."""
    rng = np.random.default_rng(seed)
    users = [f"RAWUSER-{name}-{i:03d}" for i, name in enumerate(rng.permutation(n_users))]
    lines, sessions = [HEADER], []
    clock = START
    for user in users:
        for _ in range(int(rng.integers(1, 3))):
            session = f"RAWSESS-{len(sessions):03d}-{rng.integers(16**8):08x}"
            sessions.append(session)
            for step in range(int(rng.integers(3, 7))):
                item = 1_000_000 + int(rng.integers(25))
                action = rng.choice(["view", "view", "view", "cart", "purchase"])
                category = CATEGORIES[item % 3]
                time = (clock + timedelta(seconds=20 * step)).strftime("%Y-%m-%d %H:%M:%S UTC")
                lines.append(
                    f"{time},{action},{item},{2000 + item % 3},{category},brand{item % 4},"
                    f"{10 + item % 7}.99,{user},{session}"
                )
            clock += timedelta(minutes=2)
    lines.append(f"yesterday,view,1000001,2001,{CATEGORIES[0]},x,1.00,{BAD_USER},{BAD_SESSION}")
    path.write_text("\n".join(lines) + "\n")
    return [*users, BAD_USER], [*sessions, BAD_SESSION]
