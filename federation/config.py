"""The typed settings of a federated run; only the CLI builds them from Hydra config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fedpath.errors import ConfigError
from fedpath.models.base import DEFAULT_REVIEW_THRESHOLD
from fedpath.privacy.dp.config import PrivacySettings

EVAL_SPLITS = ("valid", "test")
ITEM_ROWS_CHOICES = ("all", "seen")
LOG_SHARES = "log"
ATTACKS = ("scale", "sign_flip")
# Metrics a gate may compare on, by direction; ranking metrics ("recall@20") are higher-better.
HIGHER_IS_BETTER = ("action_accuracy", "action_macro_f1", "conversion_auc")
LOWER_IS_BETTER = ("action_ece", "conversion_ece")
RANKING = ("recall", "mrr", "ndcg")


@dataclass(frozen=True)
class SecAggSettings:
    """Flower's SecAgg+ parameters; ``enabled=False`` is the explicit opt-out.

    For count models the quantization is derived (clipping 1, range 2S, max weight 1) so the sum
    is exact; ``clipping_range``, ``quantization_range`` and ``max_weight`` apply to neural ones.
    """

    enabled: bool = True
    # "log": 2⌈log₂ m⌉ + 1 of the m sampled partners (all of them up to m = 7), the O(log N)
    # neighbourhood SecAgg+ is designed for; int > 2: shares per partner; float: share of the m
    num_shares: int | float | str = LOG_SHARES
    reconstruction_threshold: int | float = 0.67  # int: shares; float: share of num_shares
    clipping_range: float = 8.0  # weights are clipped to [-c, c] before quantization
    quantization_range: int = 2**22  # integer steps over [-c, c]
    modulus_range: int = 2**32  # masks are drawn in [0, M); a power of two
    max_weight: float | None = None  # bound on a partner's weight; None = largest partner's
    timeout: float | None = 300.0  # seconds to wait for each stage's replies; None = forever


@dataclass(frozen=True)
class FunnelSettings:
    """The federated browse -> cart -> purchase funnel, summed under SecAgg+ after training.

    ``channels`` is the public list every partner counts against (a partner's channel outside it
    counts in the overall row only); None = every channel of the simulated log's sessions.
    """

    enabled: bool = False
    channels: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.channels is not None:
            object.__setattr__(self, "channels", tuple(self.channels))  # YAML gives a list
            if len(set(self.channels)) != len(self.channels):
                raise ConfigError(f"funnel.channels must be distinct, got {list(self.channels)}")


@dataclass(frozen=True)
class GateSettings:
    """Champion / challenger: promote the trained model only if it beats the champion.

    Both are scored by one federated evaluation on the partners' ``split``; the candidate is
    promoted when it is better on ``metric`` by MORE than ``margin`` (absolute, in the metric's
    units), so a tie keeps the champion. ``champion`` is a model file written by fedpath
    (``save_weights``); None = the weights the run started from.
    """

    enabled: bool = False
    metric: str = "recall@20"
    margin: float = 0.0
    split: str = "test"
    champion: str | None = None

    def __post_init__(self) -> None:
        if not self.margin >= 0:
            raise ConfigError(f"gate.margin must be >= 0, got {self.margin!r}")
        if self.split not in EVAL_SPLITS:
            raise ConfigError(f"gate.split must be one of {EVAL_SPLITS}, got {self.split!r}")
        name, _, k = self.metric.partition("@")
        ranking = name in RANKING and k.isdigit() and int(k) >= 1
        if not ranking and self.metric not in HIGHER_IS_BETTER + LOWER_IS_BETTER:
            raise ConfigError(
                f"gate.metric must be <{'|'.join(RANKING)}>@<k> or one of "
                f"{HIGHER_IS_BETTER + LOWER_IS_BETTER}, got {self.metric!r}"
            )

    @property
    def higher_is_better(self) -> bool:
        return self.metric not in LOWER_IS_BETTER


@dataclass(frozen=True)
class FaultSettings:
    """Simulated faults: partners that drop out mid-round, and hostile partners.

    Each round a seeded draw of ``round(dropout_fraction * partners)`` partners fail while
    training (under SecAgg+: after sharing their keys, before sending their masked update).
    ``hostile_partners`` send ``global + factor * delta`` (``scale``) or ``global - factor *
    delta`` (``sign_flip``) instead of their update ``global + delta``.
    """

    dropout_fraction: float = 0.0
    hostile_partners: tuple[int, ...] = ()
    attack: str = "scale"
    attack_factor: float = 10.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "hostile_partners", tuple(self.hostile_partners))  # YAML: list
        if not 0 <= self.dropout_fraction < 1:
            raise ConfigError(
                f"faults.dropout_fraction must be in [0, 1), got {self.dropout_fraction!r}"
            )
        if any(not isinstance(p, int) or p < 0 for p in self.hostile_partners):
            raise ConfigError(
                f"faults.hostile_partners must be partner indices >= 0, "
                f"got {list(self.hostile_partners)}"
            )
        if self.attack not in ATTACKS:
            raise ConfigError(f"faults.attack must be one of {ATTACKS}, got {self.attack!r}")
        if not self.attack_factor > 0:
            raise ConfigError(f"faults.attack_factor must be > 0, got {self.attack_factor!r}")


@dataclass(frozen=True)
class PersonalizationSettings:
    """FedPer-style local adaptation: each partner fine-tunes the output layers on its own data.

    ``epochs`` = 0 turns it off; the scores compare global and personalized on ``split``.
    """

    epochs: int = 0
    split: str = "test"

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise ConfigError(
                f"personalization.epochs must be an integer >= 0, got {self.epochs!r}"
            )
        if self.split not in EVAL_SPLITS:
            raise ConfigError(
                f"personalization.split must be one of {EVAL_SPLITS}, got {self.split!r}"
            )


@dataclass(frozen=True)
class FederationConfig:
    """One federated run: which model, which strategy, how many rounds, how partners are used."""

    model: str
    model_params: Mapping[str, Any] = field(default_factory=dict)
    strategy: str = "fedavg"
    strategy_params: Mapping[str, Any] = field(default_factory=dict)
    rounds: int = 5
    local_epochs: int = 1  # neural models: epochs over the partner's train cases per round
    fraction_fit: float = 1.0  # share of partners sampled to train each round (at least 2)
    fraction_evaluate: float = 1.0  # share of partners sampled to evaluate each round
    eval_split: str = "valid"  # the partners' split federated evaluation reads
    secagg: SecAggSettings = field(default_factory=SecAggSettings)
    seed: int = 0
    ks: tuple[int, ...] = (5, 10, 20)
    review_threshold: float = DEFAULT_REVIEW_THRESHOLD
    max_len: int = 50  # prefixes keep their last max_len items
    threads_per_partner: int = 1  # torch threads in each partner process
    cpus_per_partner: float = 1.0  # Ray CPUs reserved per partner: partners run side by side
    # After training, fit the model's temperatures and review cutoffs on the partners' valid
    # cases from secure sums (server/calibration_round.py); skipped under differential privacy.
    calibration: bool = True
    # Neural models: "seen" averages each item row over the partners whose train data hold the
    # item, not over all (strategies/seen_rows.py); "all" is plain FedAvg.
    item_rows: str = "all"
    funnel: FunnelSettings = field(default_factory=FunnelSettings)
    gate: GateSettings = field(default_factory=GateSettings)
    faults: FaultSettings = field(default_factory=FaultSettings)
    personalization: PersonalizationSettings = field(default_factory=PersonalizationSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)  # differential privacy

    def __post_init__(self) -> None:
        for key in ("rounds", "local_epochs", "max_len", "threads_per_partner"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{key} must be an integer >= 1, got {value!r}")
        for key in ("fraction_fit", "fraction_evaluate"):
            value = getattr(self, key)
            if not 0 < value <= 1:
                raise ConfigError(f"{key} must be in (0, 1], got {value!r}")
        if self.eval_split not in EVAL_SPLITS:
            raise ConfigError(f"eval_split must be one of {EVAL_SPLITS}, got {self.eval_split!r}")
        if self.item_rows not in ITEM_ROWS_CHOICES:
            raise ConfigError(
                f"item_rows must be one of {ITEM_ROWS_CHOICES}, got {self.item_rows!r}"
            )
        if not self.ks or min(self.ks) < 1:
            raise ConfigError(f"ks must be positive cut-offs, got {self.ks!r}")
        if not self.cpus_per_partner > 0:
            raise ConfigError(f"cpus_per_partner must be > 0, got {self.cpus_per_partner!r}")
        _, _, k = self.gate.metric.partition("@")
        if k and int(k) not in self.ks:
            raise ConfigError(
                f"gate.metric cut-off must be one of ks {self.ks}, got {self.gate.metric!r}"
            )
