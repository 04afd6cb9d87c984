"""Partitioning a log into partners: coverage, determinism, the three schemes, and refusals."""

from __future__ import annotations

import numpy as np
import pytest

from fedpath.data.containers import Session, SplitDataset
from fedpath.data.loader import load_events
from fedpath.data.protocol import ProtocolConfig, apply_protocol
from fedpath.errors import ConfigError
from fedpath.simulations.partition import SPLITS, PartitionConfig, partition


def _session(key: str, category: str | None = None, channel: str | None = None) -> Session:
    return Session(
        key=key,
        items=np.array([0, 1], dtype=np.int64),
        actions=np.zeros(2, dtype=np.int8),
        start=0,
        channel=channel,
        category=category,
    )


def _split(sizes: dict[str, dict[str | None, int]], field: str = "category") -> SplitDataset:
    """``sizes[split][group]`` sessions of each group, grouped on ``field``."""
    parts = {
        name: [
            _session(f"{name}-{group}-{i}", **{field: group})
            for group, count in sizes.get(name, {}).items()
            for i in range(count)
        ]
        for name in SPLITS
    }
    return SplitDataset(**parts, vocab=["a", "b"])


def _keys(sessions: list[Session]) -> list[str]:
    return [s.key for s in sessions]


FOUR_CATEGORIES = {
    "train": {"shoes": 30, "phones": 30, "books": 30, "toys": 30},
    "valid": {"shoes": 5, "phones": 5, "books": 5, "toys": 5},
    "test": {"shoes": 8, "phones": 8, "books": 8, "toys": 8},
}


@pytest.mark.parametrize(
    "config",
    [
        PartitionConfig(scheme="iid", n_partners=7, seed=3),
        PartitionConfig(scheme="dirichlet", n_partners=7, alpha=0.3, seed=3),
        PartitionConfig(scheme="natural", n_partners=3, by="category"),
    ],
    ids=["iid", "dirichlet", "natural"],
)
def test_every_session_goes_to_exactly_one_partner_in_every_split(config: PartitionConfig):
    # Prepare
    split = _split(FOUR_CATEGORIES)
    # Execute
    partners = partition(split, config)
    # Assert
    for name in SPLITS:
        shares = [key for p in partners for key in _keys(getattr(p.data, name))]
        assert sorted(shares) == sorted(_keys(getattr(split, name)))
    assert all(p.data.vocab == split.vocab for p in partners)
    assert [p.index for p in partners] == list(range(len(partners)))


def test_same_seed_gives_same_partners_and_another_seed_does_not():
    # Prepare
    split = _split(FOUR_CATEGORIES)
    config = PartitionConfig(scheme="dirichlet", n_partners=5, alpha=0.5, seed=11)
    # Execute
    first, again = partition(split, config), partition(split, config)
    other = partition(split, PartitionConfig(scheme="dirichlet", n_partners=5, alpha=0.5, seed=12))
    # Assert
    assert [_keys(p.data.train) for p in first] == [_keys(p.data.train) for p in again]
    assert [_keys(p.data.train) for p in first] != [_keys(p.data.train) for p in other]


def test_iid_partner_sizes_differ_by_at_most_one_session():
    # Prepare: 120 train / 20 valid / 32 test sessions over 7 partners
    split = _split(FOUR_CATEGORIES)
    # Execute
    partners = partition(split, PartitionConfig(scheme="iid", n_partners=7))
    # Assert: 120 = 7*17 + 1, 20 = 7*2 + 6, 32 = 7*4 + 4
    assert sorted(len(p.data.train) for p in partners) == [17] * 6 + [18]
    assert sorted(len(p.data.valid) for p in partners) == [2] + [3] * 6
    assert sorted(len(p.data.test) for p in partners) == [4] * 3 + [5] * 4


def test_natural_keeps_each_group_whole_and_names_partners_after_their_groups():
    # Prepare: groups by channel; "kiosk" only appears in test
    sizes = {
        "train": {"app": 50, "web": 30, "social": 10},
        "valid": {"app": 5, "web": 3},
        "test": {"app": 6, "web": 4, "social": 2, "kiosk": 1},
    }
    split = _split(sizes, field="channel")
    # Execute
    per_group = partition(split, PartitionConfig(scheme="natural", n_partners=None, by="channel"))
    merged = partition(split, PartitionConfig(scheme="natural", n_partners=2, by="channel"))
    # Assert: one partner per group that has train sessions; kiosk joins the lightest one
    assert sorted(p.name for p in per_group) == ["app", "kiosk+social", "web"]
    # Largest-first onto the lightest: app -> 0, web -> 1, social -> 1 (30 < 50), kiosk -> 1
    assert [p.name for p in merged] == ["app", "kiosk+social+web"]
    assert [len(p.data.train) for p in merged] == [50, 40]
    assert [len(p.data.test) for p in merged] == [6, 7]
    for partner in merged:
        for name in SPLITS:
            groups = {s.channel for s in getattr(partner.data, name)}
            assert groups <= set(partner.groups)


def test_natural_refuses_more_partners_than_groups_with_train_sessions():
    # Prepare
    split = _split({"train": {"app": 5, "web": 5}, "test": {"kiosk": 3}}, field="channel")
    config = PartitionConfig(scheme="natural", n_partners=3, by="channel")
    # Execute / Assert
    with pytest.raises(ConfigError, match="number of channel groups with train sessions"):
        partition(split, config)


def test_dirichlet_small_alpha_skews_categories_and_large_alpha_does_not():
    # Prepare: four equally large categories, so an even partner holds 1/4 of each
    split = _split(
        {"train": {"shoes": 250, "phones": 250, "books": 250, "toys": 250}, "test": {"toys": 4}}
    )

    def mean_top_share(alpha: float) -> float:
        partners = partition(
            split, PartitionConfig(scheme="dirichlet", n_partners=10, alpha=alpha, seed=0)
        )
        shares = []
        for p in partners:
            categories = [s.category for s in p.data.train]
            shares.append(max(categories.count(c) for c in set(categories)) / len(categories))
        return float(np.mean(shares))

    # Execute
    skewed, even = mean_top_share(0.05), mean_top_share(1000.0)
    # Assert
    assert skewed > 0.8
    assert even < 0.35


def test_dirichlet_with_a_thousand_partners_leaves_no_train_set_empty():
    # Prepare: 1,200 train sessions; alpha so small that most partners draw nothing at first
    split = _split({"train": {"shoes": 600, "toys": 600}, "test": {"toys": 10}})
    config = PartitionConfig(scheme="dirichlet", n_partners=1000, alpha=0.01, seed=5)
    # Execute
    partners = partition(split, config)
    # Assert
    assert len(partners) == 1000
    assert min(len(p.data.train) for p in partners) >= 1
    assert sum(len(p.data.train) for p in partners) == 1200


def test_partner_test_set_is_its_share_under_the_same_category_rule():
    # Prepare: with alpha tiny each category lands (almost) whole on one partner
    split = _split(FOUR_CATEGORIES)
    config = PartitionConfig(scheme="dirichlet", n_partners=4, alpha=0.001, seed=2)
    # Execute
    partners = partition(split, config)
    # Assert: wherever a partner holds most of a category's train sessions, it holds its test too
    for partner in partners:
        train = [s.category for s in partner.data.train]
        test = [s.category for s in partner.data.test]
        for category in set(train):
            if train.count(category) >= 25:
                assert test.count(category) >= 6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_partners": 1}, r"n_partners must be in \[2, 1000\], got 1"),
        ({"n_partners": 1001}, r"n_partners must be in \[2, 1000\], got 1001"),
        ({"alpha": 0.0}, "alpha must be > 0, got 0.0"),
        ({"scheme": "random"}, "scheme must be one of"),
        ({"scheme": "iid", "n_partners": None}, "n_partners must be set for 'iid'"),
        ({"by": "brand"}, "by must be one of"),
    ],
)
def test_config_refuses_values_outside_their_rule(kwargs: dict, message: str):
    # Execute / Assert
    with pytest.raises(ConfigError, match=message):
        PartitionConfig(**kwargs)


def test_refuses_more_partners_than_train_sessions():
    # Prepare
    split = _split({"train": {"shoes": 3}})
    # Execute / Assert
    with pytest.raises(ConfigError, match=r"number of train sessions \(3\), got 4"):
        partition(split, PartitionConfig(scheme="iid", n_partners=4))


def test_rees46_categories_become_three_platforms(shared_data):
    # Prepare: the benchmark protocol's split of the REES46 sample; its train sessions by
    # category: electronics 132, (none) 22, appliances 19, computers 11, auto 6, apparel 4,
    # construction 3, furniture 3, accessories 1
    path = shared_data / "rees46-multicategory-sample" / "2019-Oct-head.csv"
    split = apply_protocol(load_events(path).events, ProtocolConfig())
    config = PartitionConfig(scheme="natural", n_partners=3, by="category")
    # Execute
    partners = partition(split, config)
    # Assert: largest first onto the lightest partner, by hand:
    # 0 <- electronics; 1 <- (none), auto, apparel, furniture; 2 <- appliances, computers,
    # construction, accessories
    assert [len(p.data.train) for p in partners] == [132, 35, 34]
    assert partners[0].name == "electronics" and partners[0].groups == ("electronics",)
    assert {"(none)", "auto", "apparel", "furniture"} <= set(partners[1].groups)
    # a merged partner is named by its largest group and a count, not every id joined
    assert partners[1].name == f"{partners[1].groups[0]} +{len(partners[1].groups) - 1} more"
    assert sum(len(p.data.test) for p in partners) == len(split.test)
