"""What the coordinator and every partner must agree on before a single round can run.

A deployed federation has no shared process to hold this: each side reads it from the files
provisioning wrote (the coordinator's workspace, each partner's bundle). If two sides disagreed on
the model, the item space or whether updates are masked, rounds would fail in ways that are hard
to trace, so it is one typed value, written once, and hashed so that either side can show which
one it runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from fedpath.data.protocol import ProtocolConfig
from fedpath.errors import ConfigError
from fedpath.federation.spec import ModelSpec
from fedpath.models.pairs import AUTO
from fedpath.models.registry import MODELS
from fedpath.privacy.dp.config import PrivacySettings, check_combination

# Protocol keys the contract sets itself: the item space is the contract's, never a partner's.
RESERVED_PROTOCOL_KEYS = ("item_buckets", "item_key_path", "max_prefix_length")
# Under session DP, ``pair_cells: auto`` sends the dense item_buckets² table (its noise must
# cover every pair); above this many entries (the fixed default's former payload, 4 · 2**22)
# the contract must name an integer pair_cells instead.
DENSE_AUTO_LIMIT = 4 * 2**22


def require_dense_pairs(privacy: PrivacySettings, spec: ModelSpec) -> None:
    """Session-level DP noises every cell of a count model's pair table, observed or not, so
    the table must travel dense, not as a sketch (``fedpath.federation.pair_wire``); under
    ``pair_cells: auto`` a private run sends it dense (``ModelSpec.with_dense_pairs``) up to
    ``DENSE_AUTO_LIMIT`` entries, the fixed default's former payload; a larger one is named."""
    if privacy.session is None or not spec.is_count:
        return
    wire = None if spec.sized_by_run else spec.pair_wire
    if wire is None:
        sketched, cells = spec.sized_by_run and spec.n_items**2 > DENSE_AUTO_LIMIT, AUTO
    else:
        sketched, cells = wire.sketched, str(wire.cells)
    if sketched:
        raise ConfigError(
            f"model.pair_cells must give a dense pair table under privacy.session (noise must "
            f"cover every pair, observed or not): {spec.n_items}² entries need pair_cells >= "
            f"{-(-(spec.n_items**2) // 4)}, got {cells}"
        )


@dataclass(frozen=True)
class FederationContract:
    """Model, item space, masking and protocol shared by the coordinator and all partners.

    Partners map raw item ids into ``item_buckets`` keyed buckets (the key is in their bundles
    only), so the model's item vocabulary is the bucket range and no raw id reaches the
    coordinator. ``max_weight`` bounds a partner's weight (train cases) under SecAgg+: a partner
    with more cases reports this bound, since Flower's masking overflows above it. It also sets
    the precision: SecAgg+ scales each update by ``weight / max_weight`` before quantizing, so a
    bound far above the partners' sizes wastes it; choose it near the largest partner's cases.

    ``privacy`` is the differential privacy of every campaign, in the simulation's terms
    (``conf/privacy/*.yaml``: ``delta``, ``session``, ``partner``; empty = off). It is part of
    the contract, not of the coordinator's settings, because the partners apply it: each one
    reads it from its own bundle, charges its own ledger and adds its own noise, whatever a
    coordinator asks, as with ``secagg``.
    """

    model: str = "gru4rec"
    model_params: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    item_buckets: int = 4096
    secagg: bool = True
    max_weight: float = 100_000.0
    max_len: int = 50
    protocol: Mapping[str, Any] = field(default_factory=dict)
    privacy: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("item_buckets", "max_len"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"federation.{key} must be an integer >= 1, got {value!r}")
        if not self.max_weight > 0:
            raise ConfigError(f"federation.max_weight must be > 0, got {self.max_weight!r}")
        reserved = sorted(set(self.protocol) & set(RESERVED_PROTOCOL_KEYS))
        if reserved:
            raise ConfigError(
                f"federation.protocol must not set {reserved}: the contract sets the item space "
                "(item_buckets, the partners' item key) and max_len itself"
            )
        if self.model not in MODELS:
            raise ConfigError(
                f"federation.model must be one of {sorted(MODELS)}, got {self.model!r}"
            )
        self.protocol_config(item_key_path=None)  # validates the protocol keys now
        privacy, spec = self.privacy_settings(), self._declared_spec()
        check_combination(
            privacy,
            secagg=self.secagg,
            count_model=spec.is_count,
            strategy="",  # the coordinator's choice: checked again with it (settings.py)
            funnel=False,  # a deployed campaign runs no funnel round
        )
        require_dense_pairs(privacy, spec)

    def privacy_settings(self) -> PrivacySettings:
        """The campaigns' differential privacy; ``enabled`` is False when the contract has none."""
        try:
            return PrivacySettings.from_dict(self.privacy)
        except ConfigError as error:
            raise ConfigError(f"federation.privacy: {error}") from None

    def model_spec(self) -> ModelSpec:
        """The model both sides build: one embedding row per item bucket. A pair table under
        ``pair_cells: auto`` is sized by each campaign's size round (``server/pair_size_round.py``),
        or travels dense under session DP, as in a simulation."""
        spec = self._declared_spec()
        private = self.privacy_settings().enabled
        return spec.with_dense_pairs() if spec.sized_by_run and private else spec

    def _declared_spec(self) -> ModelSpec:
        return ModelSpec(self.model, self.item_buckets, dict(self.model_params), self.seed)

    def protocol_config(self, *, item_key_path: Any) -> ProtocolConfig:
        """The benchmark protocol a partner runs on its log, in the shared hashed item space."""
        hashed = {} if item_key_path is None else {"item_buckets": self.item_buckets}
        try:
            return ProtocolConfig(
                **self.protocol,
                **hashed,
                item_key_path=item_key_path,
                max_prefix_length=self.max_len,
            )
        except TypeError as error:
            raise ConfigError(
                f"federation.protocol keys must be ProtocolConfig fields, got {error}"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["model_params"] = dict(self.model_params)
        data["protocol"] = dict(self.protocol)
        if not self.privacy:  # a contract without DP keeps the digest it had before DP existed
            del data["privacy"]
        else:
            data["privacy"] = json.loads(json.dumps(self.privacy))  # plain nested dicts
        return data

    @property
    def digest(self) -> str:
        """SHA-256 of the canonical contract: equal on both sides exactly when they agree."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str) -> FederationContract:
        """The contract in ``data`` (a YAML mapping); ``source`` names the file in errors."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: federation must be a mapping, got {data!r}")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(
                f"{source}: federation keys must be among {sorted(cls.__dataclass_fields__)}, "
                f"got {unknown}"
            )
        try:
            return cls(**data)
        except ConfigError as error:
            raise ConfigError(f"{source}: {error}") from None
