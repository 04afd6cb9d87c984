"""The typed settings of a federated run; only the CLI builds them from Hydra config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fedpath.errors import ConfigError
from fedpath.models.base import DEFAULT_REVIEW_THRESHOLD

EVAL_SPLITS = ("valid", "test")


@dataclass(frozen=True)
class SecAggSettings:
    """Flower's SecAgg+ parameters; ``enabled=False`` is the explicit opt-out.

    For count models the quantization is derived (clipping 1, range 2S, max weight 1) so the sum
    is exact; ``clipping_range``, ``quantization_range`` and ``max_weight`` apply to neural ones.
    """

    enabled: bool = True
    num_shares: int | float = 1.0  # int > 2: shares per partner; float: share of the sampled
    reconstruction_threshold: int | float = 0.67  # int: shares; float: share of num_shares
    clipping_range: float = 8.0  # weights are clipped to [-c, c] before quantization
    quantization_range: int = 2**22  # integer steps over [-c, c]
    modulus_range: int = 2**32  # masks are drawn in [0, M); a power of two
    max_weight: float | None = None  # bound on a partner's weight; None = largest partner's
    timeout: float | None = 300.0  # seconds to wait for each stage's replies; None = forever


@dataclass(frozen=True)
class FederationConfig:
    """One federated run: which model, which strategy, how many rounds, how partners are used."""

    model: str
    model_params: Mapping[str, Any] = field(default_factory=dict)
    strategy: str = "fedavg"
    strategy_params: Mapping[str, Any] = field(default_factory=dict)
    rounds: int = 3
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
        if not self.ks or min(self.ks) < 1:
            raise ConfigError(f"ks must be positive cut-offs, got {self.ks!r}")
        if not self.cpus_per_partner > 0:
            raise ConfigError(f"cpus_per_partner must be > 0, got {self.cpus_per_partner!r}")
