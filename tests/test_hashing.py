"""Keyed item hashing: deterministic, key-dependent buckets and their measured collision rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedpath.data.hashing import ItemHasher, collision_rate, hash_items
from fedpath.schema import conform

KEY = b"fedpath-test-key-0123456789abcdef"
OTHER_KEY = b"another-partners-secret-key-0000"


def _birthday(n_items: int, n_buckets: int) -> tuple[float, float]:
    """Expected share of m random items that meet another in one of B buckets, and a 4-sigma
    tolerance: items collide at least in pairs, so the variance is about twice the binomial's."""
    rate = 1 - (1 - 1 / n_buckets) ** (n_items - 1)
    return rate, 4 * (2 * rate * (1 - rate) / n_items) ** 0.5


def test_bucket_is_the_first_64_bits_of_hmac_sha256_modulo_the_buckets() -> None:
    # Prepare: RFC 4231 test case 1 (key 0x0b * 20, data "Hi There"), MAC b0344c61d8db3853...
    hasher = ItemHasher(b"\x0b" * 20, 1000)

    # Execute
    bucket = hasher.bucket("Hi There")

    # Assert
    assert bucket == 0xB0344C61D8DB3853 % 1000


def test_buckets_are_deterministic_and_in_range() -> None:
    # Prepare
    ids = [str(n) for n in range(5000)]

    # Execute
    first = ItemHasher(KEY, 97).buckets(ids)
    again = ItemHasher(KEY, 97).buckets(ids)

    # Assert
    np.testing.assert_array_equal(first, again)
    assert first.min() >= 0 and first.max() < 97
    assert len(np.unique(first)) == 97


def test_another_key_gives_an_unrelated_assignment() -> None:
    # Prepare
    ids = [str(n) for n in range(2000)]

    # Execute
    ours = ItemHasher(KEY, 2**16).buckets(ids)
    theirs = ItemHasher(OTHER_KEY, 2**16).buckets(ids)

    # Assert: independent keys agree on about 1 item in 65,536
    assert (ours == theirs).mean() < 0.01


@pytest.mark.parametrize(
    ("key", "buckets", "error", "message"),
    [
        (b"short-key-15byt", 8, ValueError, "key must be at least 16 bytes, got 15"),
        ("a-text-key-not-bytes", 8, TypeError, "key must be bytes"),
        (KEY, 0, ValueError, "n_buckets must be >= 1, got 0"),
        (KEY, 8.0, ValueError, "n_buckets must be an int"),
    ],
)
def test_keys_and_bucket_counts_are_checked(
    key: object, buckets: object, error: type[Exception], message: str
) -> None:
    # Execute / Assert
    with pytest.raises(error, match=message):
        ItemHasher(key, buckets)  # type: ignore[arg-type]


def test_a_key_of_exactly_16_bytes_is_enough() -> None:
    # Execute
    hasher = ItemHasher(b"exactly-16-bytes", 8)

    # Assert
    assert 0 <= hasher.bucket("item") < 8


def test_the_key_does_not_show_in_repr() -> None:
    # Execute
    text = repr(ItemHasher(KEY, 8))

    # Assert
    assert "fedpath-test-key" not in text and "n_buckets=8" in text


def test_hash_items_replaces_only_the_item_id() -> None:
    # Prepare
    events = conform(
        pd.DataFrame(
            {"session_id": ["s", "s", "t"], "item_id": ["a", "b", "a"], "timestamp": [1, 2, 3]}
        ).assign(action=0)
    )
    hasher = ItemHasher(KEY, 1024)

    # Execute
    out = hash_items(events, hasher)

    # Assert
    expected = [f"h{hasher.bucket(i)}" for i in ("a", "b", "a")]
    assert out["item_id"].tolist() == expected
    pd.testing.assert_frame_equal(out.drop(columns="item_id"), events.drop(columns="item_id"))
    assert events["item_id"].tolist() == ["a", "b", "a"]


@pytest.mark.parametrize(
    ("ids", "buckets", "rate"),
    [
        (["a", "b", "c"], 1, 1.0),
        (["a", "a", "a"], 1, 0.0),  # one distinct item shares with nobody
        ([], 8, 0.0),
    ],
)
def test_collision_rate_counts_distinct_items(ids: list[str], buckets: int, rate: float) -> None:
    # Execute / Assert
    assert collision_rate(ids, ItemHasher(KEY, buckets)) == rate


def test_collision_rate_of_random_ids_meets_the_birthday_bound() -> None:
    # Prepare: 2,000 random 12-digit ids; the bound is 0.386 at 4,096 buckets (± 0.06)
    rng = np.random.default_rng(7)
    ids = [str(n) for n in rng.integers(10**11, 10**12, 2000)]

    # Execute
    rate = collision_rate(ids, ItemHasher(KEY, 2**12))

    # Assert
    expected, tolerance = _birthday(len(set(ids)), 2**12)
    assert rate == pytest.approx(expected, abs=tolerance)


@pytest.mark.parametrize(
    ("sample", "column", "sep", "n_distinct"),
    [
        ("diginetica-sample/sample_train-item-views.csv", "item_id", ";", 7139),
        ("rees46-multicategory-sample/2019-Oct-head.csv", "product_id", ",", 2312),
    ],
)
@pytest.mark.parametrize("buckets", [2**12, 2**14, 2**16])
def test_collision_rate_on_the_real_catalogues_is_the_birthday_figure(
    shared_data: Path, sample: str, column: str, sep: str, n_distinct: int, buckets: int
) -> None:
    # Prepare: distinct counts from the samples' READMEs
    ids = pd.read_csv(shared_data / sample, sep=sep, usecols=[column], dtype=str)[column]
    assert ids.nunique() == n_distinct

    # Execute
    rate = collision_rate(ids, ItemHasher(KEY, buckets))

    # Assert: real ids hash like random ones
    expected, tolerance = _birthday(n_distinct, buckets)
    assert rate == pytest.approx(expected, abs=tolerance)


def test_a_request_sized_and_a_log_sized_call_give_the_same_buckets() -> None:
    # Prepare: repeated ids, under and over the size where pandas takes over
    hasher = ItemHasher(KEY, 97)
    ids = [f"item-{i % 37}" for i in range(1500)]

    # Execute
    small, large = hasher.buckets(ids[:20]), hasher.buckets(ids)

    # Assert
    expected = np.array([hasher.bucket(i) for i in ids], dtype=np.int64)
    assert small.dtype == large.dtype == np.int64
    np.testing.assert_array_equal(small, expected[:20])
    np.testing.assert_array_equal(large, expected)
    assert hasher.buckets([]).shape == (0,)
