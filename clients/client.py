"""One partner as a Flower ``NumPyClient``: local training, local evaluation, and for the
secure sums after training its funnel counts and its calibration sums, nothing else.

A ``NumPyClient`` (Flower's legacy client) because ``secaggplus_mod`` reads the reply as a
legacy ``FitRes``; see docs/federation.md. What leaves the partner: weights or funnel counts
(masked under SecAgg+), its number of training cases (its weight in the mean; 1 for counts),
its partner index and its metrics. Simulated faults (``clients/faults.py``) strike in ``fit``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from flwr.client import NumPyClient
from flwr.common import NDArrays, Scalar

from fedpath.calibration_sums import gate_counts, nll_sums
from fedpath.clients.faults import FaultPlan, PartnerDropout, poison
from fedpath.clients.store import load_paths
from fedpath.data.containers import Cases
from fedpath.evaluate import evaluate, predict_heads
from fedpath.federation.keys import (
    COUNT_SCALE,
    EVAL_SPLIT,
    FUNNEL_CHANNELS,
    FUNNEL_FORECAST,
    FUNNEL_TASK,
    GATE_COUNTS_TASK,
    ITEM_ROWS,
    LOCAL_EPOCHS,
    N_ITEM_CASES,
    NLL_TASK,
    PAIR_CELLS,
    PAIRS_TASK,
    PARTNER,
    PROXIMAL_MU,
    REVIEW_THRESHOLD,
    SEEN_ROWS,
    SERVER_ROUND,
    TASK,
    TEMPERATURES,
    TRAIN_LOSS,
    TRAIN_TASK,
)
from fedpath.federation.spec import ModelSpec
from fedpath.metrics.funnel import conversion_sums, path_funnel_counts
from fedpath.models.base import DEFAULT_REVIEW_THRESHOLD, NextStepModel, Predictions
from fedpath.models.calibration import DEFAULT_ITEMS_K
from fedpath.models.pairs import PairCountModel
from fedpath.models.temperature import Temperatures
from fedpath.privacy.dp.budget import SESSION_EPSILON
from fedpath.privacy.dp.counts import encode_signed_counts
from fedpath.strategies.secure_sum import encode_counts, encode_fixed
from fedpath.strategies.seen_rows import ITEM_TABLE, mask_unseen_rows

if TYPE_CHECKING:
    from fedpath.privacy.dp.client import PartnerPrivacy

EVAL_SPLITS = ("valid", "test")
SUM_TASKS = (PAIRS_TASK, FUNNEL_TASK, NLL_TASK, GATE_COUNTS_TASK)  # secure sums around training


@dataclass(frozen=True)
class ClientSettings:
    """What every partner process needs besides its own data."""

    model: ModelSpec
    data_dir: Path
    ks: tuple[int, ...] = (5, 10, 20)
    review_threshold: float = DEFAULT_REVIEW_THRESHOLD
    threads: int = 1
    faults: FaultPlan = field(default_factory=FaultPlan)  # simulated faults; none by default
    privacy: PartnerPrivacy | None = None  # the run's differential privacy; None = off

    @property
    def loss_k(self) -> int:
        """The reported loss is ``1 - recall@loss_k``: one number every model, count or neural,
        has, and the quantity the project compares runs on."""
        return max(self.ks)


def held_rows(cases: Cases, n_items: int) -> np.ndarray:
    """``[n_items + 1]`` bool: the item-table rows of the items in ``cases``' prefixes and next
    items (item j is row j + 1; row 0, the padding row, is never held)."""
    inside = np.arange(cases.prefixes.shape[1])[None, :] < cases.lengths[:, None]
    rows = np.zeros(n_items + 1, dtype=bool)
    rows[cases.prefixes[inside] + 1] = True
    rows[cases.next_item[cases.next_item >= 0] + 1] = True
    return rows


def round_seed(seed: int, partner: int, server_round: int) -> int:
    """A seed per (run, partner, round): partners never share, and rounds never replay, an order."""
    return int(np.random.SeedSequence([seed, partner, server_round]).generate_state(1)[0])


class PartnerClient(NumPyClient):
    """Trains and evaluates one partner's model on that partner's cases only."""

    def __init__(self, partner: int, cases: dict[str, Cases], settings: ClientSettings) -> None:
        self.partner = partner
        self.cases = cases
        self.settings = settings
        self.spec = settings.model

    def get_parameters(self, config: dict[str, Scalar]) -> NDArrays:
        return self.spec.to_arrays(self.spec.initial_weights)

    def fit(
        self, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[NDArrays, int, dict[str, Scalar]]:
        """Train (the default task) or send this partner's share of a secure sum."""
        task = str(config.get(TASK, TRAIN_TASK))
        if task == FUNNEL_TASK:
            return self._funnel(parameters, config)
        if task in (NLL_TASK, GATE_COUNTS_TASK):
            return self._calibration(parameters, config)
        if task == PAIRS_TASK:
            return self._distinct_pairs(config)
        if task != TRAIN_TASK:
            raise ValueError(f"{TASK} must be one of {(TRAIN_TASK, *SUM_TASKS)}, got {task!r}")
        server_round = int(config[SERVER_ROUND])
        faults = self.settings.faults
        if faults.drops(server_round, self.partner):
            raise PartnerDropout(
                f"partner {self.partner} drops out of round {server_round} (simulated fault)"
            )
        arrays, weight, metrics = self._train(parameters, config)
        if self.partner in faults.hostile:
            arrays = poison(arrays, parameters, faults.attack, faults.factor)
        return arrays, weight, metrics

    def _train(
        self, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[NDArrays, int, dict[str, Scalar]]:
        """Count models count from zero; neural models start from the global weights.

        Session-level DP (``fedpath.privacy``) first charges the partner's ledger (a refusal
        raises, and the round goes on without this partner), then counts at most
        ``max_session_cases`` cases per session and noises the counts, or trains by DP-SGD.
        Under any DP the reply's weight is 1 and a private fit reports no training loss: the
        number of cases and the loss are functions of the data that no noise covers.
        """
        privacy = self.settings.privacy
        session = privacy if privacy is not None and privacy.settings.session else None
        metrics: dict[str, Scalar] = {PARTNER: self.partner}
        if session is not None:
            metrics[SESSION_EPSILON] = session.charge(
                self.partner,
                epochs_per_round=int(config[LOCAL_EPOCHS]),
                count_model=self.spec.is_count,
            )
        train = self.cases["train"]
        if self.spec.is_count:
            model = self.spec.build()
            model.fit(train if session is None else session.count_cases(train))
            counts = self.spec.to_arrays(model.get_weights(), pair_cells=self._pair_cells(config))
            scale = int(config[COUNT_SCALE])
            if session is None:
                return encode_counts(counts, scale), 1, metrics
            noisy = session.noise_counts(counts, self.spec.names)
            return encode_signed_counts(noisy, scale), 1, metrics
        private = {} if session is None else {"private": session.training()}
        model = self.spec.build(
            seed=round_seed(self.spec.seed, self.partner, int(config[SERVER_ROUND])),
            epochs=int(config[LOCAL_EPOCHS]),
            proximal_mu=float(config.get(PROXIMAL_MU, 0.0)),
            **private,
        )
        model.set_weights(self.spec.from_arrays(parameters))
        losses: list[float] = []
        model.fit(train, None, on_epoch=lambda _, metrics: losses.append(metrics["loss"]))
        if session is None:
            metrics[TRAIN_LOSS] = losses[-1]
        weight = len(train) if privacy is None else 1
        arrays = self.spec.to_arrays(model.get_weights())
        if config.get(ITEM_ROWS) == SEEN_ROWS:
            table = self.spec.names.index(ITEM_TABLE)
            arrays = mask_unseen_rows(arrays, table, held_rows(train, self.spec.n_items))
        return arrays, weight, metrics

    def _pair_cells(self, config: dict[str, Scalar]) -> int | None:
        """The sketch size the server agreed for this sum (``pair_cells: auto``), else None."""
        if not self.spec.sized_by_run:
            return None
        if PAIR_CELLS not in config:
            raise ValueError(
                f"a count round under pair_cells: auto must carry {PAIR_CELLS!r} (the size "
                f"the {PAIRS_TASK!r} round agreed), got config keys {sorted(config)}"
            )
        return int(config[PAIR_CELLS])

    def _distinct_pairs(self, config: dict[str, Scalar]) -> tuple[NDArrays, int, dict[str, Scalar]]:
        """This partner's number of distinct observed pairs, for the secure sum that sizes the
        pair sketch; the server learns only the partners' total."""
        model = self.spec.build()
        assert isinstance(model, PairCountModel)  # the server asks only under pair_cells: auto
        model.fit(self.cases["train"])
        pairs = model.pair_counts().nnz
        return encode_fixed(np.array([pairs]), int(config[COUNT_SCALE])), 1, {PARTNER: self.partner}

    def _funnel(
        self, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[NDArrays, int, dict[str, Scalar]]:
        """This partner's funnel counts, encoded so that only their secure sum is revealed; with
        ``FUNNEL_FORECAST``, also its test sessions' actual and predicted conversions."""
        scale = int(config[COUNT_SCALE])
        channels = json.loads(str(config[FUNNEL_CHANNELS]))
        furthest, session_channels = load_paths(self.settings.data_dir, self.partner)
        counts = path_funnel_counts(furthest, session_channels, channels)
        arrays = encode_counts([counts], scale)
        if config.get(FUNNEL_FORECAST):
            test = self.cases["test"]
            predictions = self._scored(parameters, config, test)
            arrays += encode_fixed(conversion_sums(predictions.convert_prob, test), scale)
        return arrays, 1, {PARTNER: self.partner}

    def _calibration(
        self, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[NDArrays, int, dict[str, Scalar]]:
        """The global model's NLL sums on the temperature grid, or (given the temperatures) the
        review gate's counts, over this partner's valid cases; only their secure sum is revealed.
        """
        valid = self.cases["valid"]
        if str(config[TASK]) == NLL_TASK:
            sums = nll_sums(self._scored(parameters, config, valid), valid)
        else:  # the gate counts judge the items decision's lists too
            predictions = self._scored(parameters, config, valid, items_k=DEFAULT_ITEMS_K)
            sums = gate_counts(predictions, valid, float(config[REVIEW_THRESHOLD])).ravel()
        return encode_fixed(sums, int(config[COUNT_SCALE])), 1, {PARTNER: self.partner}

    def _scored(
        self,
        parameters: NDArrays,
        config: dict[str, Scalar],
        cases: Cases,
        items_k: int | None = None,
    ) -> Predictions:
        """The global model's action and conversion outputs on ``cases`` (with ``items_k``, each
        case's top-``items_k`` list and its mass too), calibrated by the config's
        ``TEMPERATURES`` when it carries them."""
        predictions = predict_heads(self._global_model(parameters), cases, items_k=items_k)
        if TEMPERATURES not in config:
            return predictions
        return Temperatures(**json.loads(str(config[TEMPERATURES]))).apply(predictions)

    def _global_model(self, parameters: NDArrays) -> NextStepModel:
        model = self.spec.build()
        model.set_weights(self.spec.from_arrays(parameters))
        return model

    def evaluate(
        self, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[float, int, dict[str, Scalar]]:
        """Metrics of the global weights on the local valid (or test) cases.

        The reply's weight is the number of item cases, the denominator of the loss.
        """
        split = str(config.get(EVAL_SPLIT, "valid"))
        if split not in EVAL_SPLITS:
            raise ValueError(f"{EVAL_SPLIT} must be one of {EVAL_SPLITS}, got {split!r}")
        cases = self.cases[split]
        if len(cases) == 0:
            return 0.0, 0, {PARTNER: self.partner}
        metrics = evaluate(
            self._global_model(parameters),
            cases,
            ks=self.settings.ks,
            review_threshold=self.settings.review_threshold,
        )
        recall = metrics[f"recall@{self.settings.loss_k}"]
        loss = 0.0 if math.isnan(recall) else 1.0 - recall
        return loss, int(metrics[N_ITEM_CASES]), {**metrics, PARTNER: self.partner}
