"""Flower and Ray messages a fedpath user can do nothing about, kept off their screen.

Each is understood and documented (docs/federation.md, "What the log leaves out"); everything
else Flower and Ray say still reaches the log, partners' errors included. Filtering by message
on Flower's own logger rather than raising its level keeps its real warnings visible.
"""

from __future__ import annotations

import logging
import os

# (what the message says, why a fedpath user need not act on it)
KNOWN_NOISE = (
    (
        "DEPRECATED FEATURE: The `run_simulation` function is deprecated",
        "SecAgg+ runs only on Flower's legacy workflow, which `flwr run` cannot host in-process",
    ),
    ("Manually terminating", "Ray's actors say it at every normal shutdown"),
)
# Ray's FutureWarning about a default that changes in a later Ray: fedpath never asks for a GPU,
# so taking the future behaviour now changes nothing.
RAY_GPU_ENV_DEFAULT = ("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")


class _KnownNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(start in message for start, _ in KNOWN_NOISE)


_FILTER = _KnownNoise()


def quiet_known_noise() -> None:
    """Filter ``KNOWN_NOISE`` from Flower's logger in this process (idempotent).

    Called by the simulation driver and by each partner's ``client_fn``, which runs inside the
    Ray actor process whose shutdown message it filters.
    """
    flower = logging.getLogger("flwr")
    if _FILTER not in flower.filters:
        flower.addFilter(_FILTER)
    os.environ.setdefault(*RAY_GPU_ENV_DEFAULT)
