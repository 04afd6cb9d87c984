"""Sparse item-pair counts as a fixed-size linear sketch that a secure sum adds and decodes exactly.

A federation of count models must sum every partner's (a, b) -> count table, but SecAgg+ only
sums fixed-length dense vectors, and a dense items x items vector is 7.4 GB at Diginetica's
43k items. This is an invertible Bloom lookup table (Goodrich & Mitzenmacher 2011) over the
field of integers modulo a prime ``PRIME``: every pair is added into one cell of each of ``K``
subtables (cells chosen by a public hash), and each cell holds four sums

    count,  Σ count·a,  Σ count·b,  Σ count·check(a, b)       (all mod PRIME)

Every field is a linear function of the counts, so the sum of the partners' sketches *is* the
sketch of the summed counts: a federated sketch equals the centralized one array for array.
Decoding peels: a cell holding one pair gives a = (Σ count·a)/count, b likewise, and is
recognised by its check field and by (a, b) hashing back to that cell; that pair is removed from
its other cells, which may leave them pure, and so on. Decoding either ends with every cell
empty, and then it returned exactly the summed counts, or it raises ``SketchTooSmall``; it never
returns a wrong table silently (a mixed cell passes the tests with probability about
``(V/PRIME)² / (m · PRIME)``, and a false pair leaves cells that do not empty).

Peeling succeeds with high probability while the distinct pairs of the union stay below about
``cells / 1.23`` (K = 3, the 2-core threshold); the payload is ``FIELDS · cells`` integers,
sized by the partners' data (the union's distinct pairs), not by items². ``cells_for`` turns a
bound on those pairs into a size with headroom (``pair_cells: auto``).
"""

from __future__ import annotations

import numpy as np

from fedpath.errors import FedpathError

K = 3  # subtables: each pair lands in one cell of each
FIELDS = 4  # count, Σ count·a, Σ count·b, Σ count·check
PEEL_THRESHOLD = 1.23  # cells per distinct pair below which K = 3 peeling starts to fail
HEADROOM = 1.5  # sized cells per pair, over the threshold: margin for the small sizes' spread
MIN_WIDTH = 1024  # cells per subtable at least, so a tiny log still gets a sketch that peels
PRIME = 2_097_143  # 2**21 - 9: every secure-sum scale up to 1,000 partners (2**21) holds a residue
_SALTS = np.array(
    [0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0xD6E8FEB86659FD93],
    dtype=np.uint64,
)  # public: partners and coordinator must hash alike; the last one keys the check field


class SketchTooSmall(FedpathError):
    """The sketch holds more distinct pairs than it can peel: more cells are needed."""


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a cheap, well-spread 64-bit hash (wrapping uint64 arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _keys(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a.astype(np.uint64) << np.uint64(32)) | b.astype(np.uint64)


def _cells(keys: np.ndarray, width: int) -> np.ndarray:
    """[K, n] the cell of each pair in each subtable."""
    return np.stack([_mix(keys ^ _SALTS[j]) % np.uint64(width) for j in range(K)]).astype(np.int64)


def _check(keys: np.ndarray) -> np.ndarray:
    return (_mix(keys ^ _SALTS[K]) % np.uint64(PRIME)).astype(np.int64)


def _contributions(a: np.ndarray, b: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """[FIELDS, n] what each pair adds to each of its cells, mod PRIME."""
    c = np.asarray(counts, dtype=np.int64) % PRIME
    return np.stack([c, c * a % PRIME, c * b % PRIME, c * _check(_keys(a, b)) % PRIME])


def _add(table: np.ndarray, a: np.ndarray, b: np.ndarray, counts: np.ndarray, sign: int) -> None:
    cells = _cells(_keys(a, b), table.shape[2])
    values = sign * _contributions(a, b, counts)
    for j in range(K):
        for field in range(FIELDS):
            np.add.at(table[field, j], cells[j], values[field])
    np.remainder(table, PRIME, out=table)


def sketch_shape(cells: int) -> tuple[int, int, int]:
    """[FIELDS, K, cells // K]: the wire shape of a sketch of ``cells`` cells."""
    if cells < K:
        raise ValueError(f"cells must be >= {K}, got {cells}")
    return (FIELDS, K, cells // K)


def cells_for(pairs: int) -> int:
    """The cells of a sketch for at most ``pairs`` distinct pairs: ``K`` subtables of a power of
    two cells each, at least ``HEADROOM · PEEL_THRESHOLD`` cells a pair and ``K · MIN_WIDTH`` in
    all (so 1.85 to 3.7 cells a pair above the floor)."""
    if pairs < 0:
        raise ValueError(f"pairs must be >= 0, got {pairs}")
    needed = -(-int(HEADROOM * PEEL_THRESHOLD * pairs) // K)  # cells per subtable, rounded up
    return K * max(MIN_WIDTH, 1 << max(needed - 1, 0).bit_length())


def encode(a: np.ndarray, b: np.ndarray, counts: np.ndarray, cells: int) -> np.ndarray:
    """The sketch of the pairs (a[i], b[i]) with counts[i] (distinct pairs, counts >= 0)."""
    if len(counts) and (np.asarray(counts).max() >= PRIME or max(a.max(), b.max()) >= PRIME):
        raise ValueError(f"pair counts and item indices must be < {PRIME} to sketch them")
    table = np.zeros(sketch_shape(cells), dtype=np.int64)
    _add(table, np.asarray(a, np.int64), np.asarray(b, np.int64), np.asarray(counts), +1)
    return table


def _inverse(values: np.ndarray) -> np.ndarray:
    """values^(PRIME-2) mod PRIME: the modular inverse (Fermat), by square and multiply."""
    result, base, power = np.ones_like(values), values % PRIME, PRIME - 2
    while power:
        if power & 1:
            result = result * base % PRIME
        base, power = base * base % PRIME, power >> 1
    return result


def decode(sketch: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, counts) of every pair in ``sketch`` (a sum of sketches), or ``SketchTooSmall``."""
    table = np.remainder(np.asarray(sketch, dtype=np.int64), PRIME)
    width = table.shape[2]
    found_a, found_b, found_c = [], [], []
    while True:
        subtable, cell = np.nonzero(table[0])
        count = table[0, subtable, cell]
        inverse = _inverse(count)
        a = table[1, subtable, cell] * inverse % PRIME
        b = table[2, subtable, cell] * inverse % PRIME
        inside = (a < n_items) & (b < n_items)
        subtable, cell, count, a, b = (x[inside] for x in (subtable, cell, count, a, b))
        keys = _keys(a, b)
        pure = (_cells(keys, width)[subtable, np.arange(len(keys))] == cell) & (
            table[3, subtable, cell] == count * _check(keys) % PRIME
        )
        if not pure.any():
            break
        _, first = np.unique(keys[pure], return_index=True)  # a pair pure in two subtables
        a, b, count = (x[pure][first] for x in (a, b, count))
        _add(table, a, b, count, -1)
        found_a.append(a), found_b.append(b), found_c.append(count)
        if sum(len(x) for x in found_c) > K * width:  # more pairs than cells: garbage
            break
    if table.any():
        raise SketchTooSmall(
            f"pair sketch of {K * width} cells must peel to empty, got "
            f"{int(np.count_nonzero(table[0]))} cells left after {sum(map(len, found_c))} pairs: "
            f"the partners hold more distinct pairs than about cells / 1.23; raise pair_cells"
        )
    empty = np.empty(0, dtype=np.int64)
    return tuple(np.concatenate(x) if x else empty for x in (found_a, found_b, found_c))
