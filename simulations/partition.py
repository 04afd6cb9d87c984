"""Split one log's sessions into simulated partners, each with its own train/valid/test.

Every scheme assigns train, valid and test sessions by the same rule, so a partner's test set is
its share of the global test set: partner metrics and the global metric come from one split and
can be compared. Partners keep the global vocabulary so their weights can be aggregated.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from fedpath.data.containers import Partner, Session, SplitDataset
from fedpath.errors import ConfigError

SCHEMES = ("natural", "dirichlet", "iid")
NATURAL_KEYS = ("channel", "source", "category")
SPLITS = ("train", "valid", "test")
MIN_PARTNERS, MAX_PARTNERS = 2, 1000
UNKNOWN_GROUP = "(none)"

MAX_JOINED_GROUPS = 3  # a partner merging more groups is named by its largest one and a count


@dataclass(frozen=True)
class PartitionConfig:
    """How to cut a log into partners (the keys of ``conf/partition/<scheme>.yaml``).

    ``n_partners=None`` is only meaningful for ``natural``: one partner per group.
    """

    scheme: str = "dirichlet"
    n_partners: int | None = 10
    alpha: float = 0.5
    by: str = "category"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ConfigError(f"partition.scheme must be one of {SCHEMES}, got {self.scheme!r}")
        if self.n_partners is None and self.scheme != "natural":
            raise ConfigError(f"partition.n_partners must be set for {self.scheme!r}, got None")
        if self.n_partners is not None and not MIN_PARTNERS <= self.n_partners <= MAX_PARTNERS:
            raise ConfigError(
                f"partition.n_partners must be in [{MIN_PARTNERS}, {MAX_PARTNERS}], "
                f"got {self.n_partners}"
            )
        if not self.alpha > 0:
            raise ConfigError(f"partition.alpha must be > 0, got {self.alpha}")
        if self.by not in NATURAL_KEYS:
            raise ConfigError(f"partition.by must be one of {NATURAL_KEYS}, got {self.by!r}")


def partition(split: SplitDataset, config: PartitionConfig) -> list[Partner]:
    """Assign every session of ``split`` to exactly one partner; deterministic given the seed.

    No partner ends up with an empty train set: ``natural`` refuses more partners than groups with
    train sessions, ``iid`` deals sessions round-robin, ``dirichlet`` moves one session from the
    largest partner to each empty one. Valid/test shares may be empty on small logs.
    """
    n_train = len(split.train)
    if config.n_partners is not None and config.n_partners > n_train:
        raise ConfigError(
            f"partition.n_partners must be <= the number of train sessions ({n_train}), "
            f"got {config.n_partners}"
        )
    if config.scheme == "natural":
        assignment, groups = _natural(split, config)
        names = [_group_label(members) for members in groups]
    elif config.scheme == "iid":
        assignment, names = _iid(split, config), _numbered(config.n_partners)
        groups = [[] for _ in names]
    else:
        assignment, names = _dirichlet(split, config), _numbered(config.n_partners)
        groups = [[] for _ in names]
    return _partners(split, assignment, names, groups)


def _group_label(groups: list[str]) -> str:
    """A partner's readable name: its groups joined while they are few (``kiosk+social``), else
    its largest group and how many more it merged.

    A category partner of Taobao merges hundreds of category ids; joining them all made a log line
    per partner hundreds of ids long. The full list is the partner's ``groups``, written to the
    run folder's ``partners.json``.
    """
    if len(groups) <= MAX_JOINED_GROUPS:
        return "+".join(sorted(groups))
    return f"{groups[0]} +{len(groups) - 1} more"


def _numbered(n: int | None) -> list[str]:
    return [f"partner-{i:03d}" for i in range(n or 0)]


def _partners(
    split: SplitDataset,
    assignment: dict[str, np.ndarray],
    names: list[str],
    groups: list[list[str]],
) -> list[Partner]:
    shares: dict[str, list[list[Session]]] = {name: [[] for _ in names] for name in SPLITS}
    for name in SPLITS:
        for session, owner in zip(getattr(split, name), assignment[name], strict=True):
            shares[name][owner].append(session)
    partners = []
    for i, partner_name in enumerate(names):
        parts = {name: shares[name][i] for name in SPLITS}
        stats = {f"{name}_sessions": len(sessions) for name, sessions in parts.items()}
        data = SplitDataset(**parts, vocab=split.vocab, stats=stats)
        partners.append(Partner(index=i, name=partner_name, data=data, groups=tuple(groups[i])))
    return partners


def _label(session: Session, key: str) -> str:
    value = getattr(session, key)
    return str(value) if value not in (None, "") else UNKNOWN_GROUP


def _natural(
    split: SplitDataset, config: PartitionConfig
) -> tuple[dict[str, np.ndarray], list[list[str]]]:
    """Groups (platforms) merged into partners by largest-first onto the least-loaded partner."""
    train_sizes = Counter(_label(s, config.by) for s in split.train)
    n = config.n_partners or len(train_sizes)
    if n > len(train_sizes):
        raise ConfigError(
            f"partition.n_partners must be <= the number of {config.by} groups with train "
            f"sessions ({len(train_sizes)}), got {n}"
        )
    every_group = {_label(s, config.by) for name in SPLITS for s in getattr(split, name)}
    # Groups absent from train weigh 0, so they join whichever partner is lightest at that point.
    order = sorted(every_group, key=lambda g: (-train_sizes.get(g, 0), g))
    loads = [0] * n
    members: list[list[str]] = [[] for _ in range(n)]
    owner: dict[str, int] = {}
    for group in order:
        target = loads.index(min(loads))
        owner[group] = target
        loads[target] += train_sizes.get(group, 0)
        members[target].append(group)
    assignment = {
        name: np.array([owner[_label(s, config.by)] for s in getattr(split, name)], dtype=np.int64)
        for name in SPLITS
    }
    return assignment, members  # each partner's groups, largest first


def _iid(split: SplitDataset, config: PartitionConfig) -> dict[str, np.ndarray]:
    """Shuffled round-robin: partner sizes differ by at most one session per split."""
    rng = np.random.default_rng(config.seed)
    n = config.n_partners or 0
    assignment = {}
    for name in SPLITS:
        size = len(getattr(split, name))
        owners = np.empty(size, dtype=np.int64)
        owners[rng.permutation(size)] = np.arange(size) % n
        assignment[name] = owners
    return assignment


def _dirichlet(split: SplitDataset, config: PartitionConfig) -> dict[str, np.ndarray]:
    """Per category, partner proportions ~ Dir(alpha); one draw shared by train, valid and test."""
    rng = np.random.default_rng(config.seed)
    n = config.n_partners or 0
    categories = sorted({_label(s, "category") for name in SPLITS for s in getattr(split, name)})
    proportions = rng.dirichlet(np.full(n, config.alpha), size=len(categories))  # [C, n]
    assignment = {}
    for name in SPLITS:
        labels = np.array([_label(s, "category") for s in getattr(split, name)], dtype=object)
        owners = np.empty(len(labels), dtype=np.int64)
        for row, category in enumerate(categories):
            members = np.flatnonzero(labels == category)
            rng.shuffle(members)
            cuts = (np.cumsum(proportions[row])[:-1] * len(members)).astype(np.int64)
            for partner, chunk in enumerate(np.split(members, cuts)):
                owners[chunk] = partner
        assignment[name] = owners
    _fill_empty_partners(assignment["train"], n)
    return assignment


def _fill_empty_partners(owners: np.ndarray, n: int) -> None:
    """Give each partner without train sessions the last session of the currently largest one."""
    counts = np.bincount(owners, minlength=n)
    for partner in np.flatnonzero(counts == 0):
        donor = int(np.argmax(counts))
        moved = np.flatnonzero(owners == donor)[-1]
        owners[moved] = partner
        counts[donor] -= 1
        counts[partner] += 1
