"""Counter-based random numbers: every draw is a pure function of (seed, stream, session, step).

A sequential generator would tie each session's draws to how many sessions came before it in the
same chunk, so the log would change with the chunk size. Hashing the draw's coordinates instead
(splitmix64's finaliser, applied twice) makes a session identical whether it is generated alone,
in a chunk of a thousand, or in one pass over ten million.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Stream(IntEnum):
    """One independent stream of draws per decision (the values are part of the seed contract:
    changing one changes every log generated under every seed)."""

    LENGTH = 1
    PLATFORM = 2
    CHANNEL = 3
    START = 4
    ACTION = 10
    MOVE = 11
    PICK = 12
    STAY = 13
    CATEGORY = 14
    ITEM = 15
    GAP = 16
    SUCCESSOR_STAY = 20
    SUCCESSOR_CATEGORY = 21
    SUCCESSOR_ITEM = 22


_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_STEP = 0xD1B54A32D192ED03
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix_int(x: int) -> int:
    """splitmix64's finaliser on a Python int (for keys, where numpy scalars would warn)."""
    x &= _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on a uint64 array (wraps modulo 2**64, as the hash requires)."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def stream_key(seed: int, stream: int) -> int:
    """The key of one named stream of draws under one seed."""
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    return _mix_int(_mix_int(seed * _GOLDEN + 1) ^ (stream * _STEP))


def uniforms(key: int, index: np.ndarray, step: np.ndarray | int = 0) -> np.ndarray:
    """Uniform draws in [0, 1), one per ``(index, step)``; equal coordinates give equal draws."""
    index = np.asarray(index, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = _mix(index * np.uint64(_GOLDEN) ^ np.uint64(key))
        h = _mix(h + np.asarray(step, dtype=np.uint64) * np.uint64(_STEP))
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


def normals(key: int, index: np.ndarray, step: np.ndarray | int = 0) -> np.ndarray:
    """Standard normal draws (Box–Muller on two counter draws of the same coordinates)."""
    u1 = 1.0 - uniforms(key, index, step)  # (0, 1]: log stays finite
    u2 = uniforms(_mix_int(key ^ _STEP), index, step)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
