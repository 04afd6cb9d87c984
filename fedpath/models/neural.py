"""The torch machinery every neural next-step model shares; a model file only adds its encoder.

A subclass (GRU4Rec, SASRec, NARM) turns an embedded prefix ``[batch, seq_len, embedding]`` into
one vector ``[batch, embedding]``. Everything around that — input embeddings, the three heads,
the joint loss, training with early stopping, FedProx, prediction and the weights contract — lives
here once, so the models cannot drift apart in how they are trained or shipped.

The torch module is built in ``__init__`` (not lazily in ``fit``): ``n_items`` is known up front,
and a federated server must be able to read the initial weights of a model nobody has fitted yet.
Two models built with the same arguments and seed hold identical weights.

Nothing here calls ``torch.set_num_threads``: the caller (CLI, simulation, benchmark) owns the
thread budget of its process.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterator
from typing import ClassVar, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fedpath.data.containers import Cases
from fedpath.errors import require
from fedpath.evaluate import item_ranks
from fedpath.metrics.ranking import mrr_at_k, recall_at_k
from fedpath.models.base import EpochCallback, NextStepModel, Predictions
from fedpath.models.session_features import N_SESSION_FEATURES, session_features
from fedpath.schema import N_ACTIONS
from fedpath.targets import CONVERSION_TARGETS, conversion_label

VALID_K = 20  # cut-off of the validation metrics that drive early stopping
PREDICT_BATCH = 1024  # prefixes scored per forward pass in predict()
OPTIMIZERS = ("adam", "sgd")  # adam: torch Adam; sgd: torch SGD with ``momentum``
BUCKET_POOL = 16  # training batches whose rows are grouped by prefix length (see _length_buckets)
ACTION_CLASS_WEIGHTS = ("balanced", "none")  # see NeuralNextStepModel._class_weights


def last_step(outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The output at each row's last real position of a left-aligned, end-padded sequence.

    ``outputs`` is ``[batch, seq_len, hidden]``; the result is ``[batch, hidden]``.
    """
    index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, outputs.size(-1))  # [batch, 1, hidden]
    return outputs.gather(1, index).squeeze(1)


def padding_mask(lengths: torch.Tensor, seq_len: int) -> torch.Tensor:
    """``[batch, seq_len]`` bool, true on real positions of left-aligned prefixes."""
    return torch.arange(seq_len, device=lengths.device)[None, :] < lengths[:, None]


class PrivateTraining(Protocol):
    """An epoch of differentially private training in place of the plain mini-batch epoch.

    The unit of privacy is a session, not a prefix: a session yields many prefix cases, so
    ``sessions`` (``[cases]``, each case's session) says which rows belong together, and
    ``loss_of(rows)`` is the model's joint loss over those rows. ``fedpath.privacy.dp.session``
    implements it with DP-SGD; the model never needs to know how.
    """

    def epoch(
        self,
        network: nn.Module,
        sessions: torch.Tensor,
        loss_of: Callable[[torch.Tensor], torch.Tensor],
        optimizer: torch.optim.Optimizer,
    ) -> float:
        """Train ``network`` one epoch; return the mean loss of the sessions it looked at."""
        ...


class _Network(nn.Module):
    """Input embeddings -> encoder -> three heads; the item head is tied to the item embedding.

    With ``n_wide`` > 0 the action and conversion logits add a linear read of the prefix's
    session features (``fedpath.models.session_features``) to the deep head's: wide & deep,
    the features' weights summed into the logits as in Cheng et al. 2016. The wide layers are
    separate modules, so a network without them holds exactly the arrays it always held.
    """

    def __init__(
        self, n_items: int, embedding_size: int, dropout: float, encoder: nn.Module, n_wide: int
    ):
        super().__init__()
        # Index 0 is padding: item j and action a enter as j + 1 and a + 1.
        self.item_embedding = nn.Embedding(n_items + 1, embedding_size, padding_idx=0)
        self.action_embedding = nn.Embedding(N_ACTIONS + 1, embedding_size, padding_idx=0)
        self.input_dropout = nn.Dropout(dropout)
        self.encoder = encoder
        self.action_head = nn.Linear(embedding_size, N_ACTIONS)
        self.convert_head = nn.Linear(embedding_size, 1)
        # Small initial embeddings keep the tied logits near uniform at the start of training.
        nn.init.normal_(self.item_embedding.weight, std=embedding_size**-0.5)
        nn.init.normal_(self.action_embedding.weight, std=embedding_size**-0.5)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()
            self.action_embedding.weight[0].zero_()
        # Built last and zeroed: the rest starts from the same draws with or without them, and
        # a fresh model's heads start where the deep part alone puts them.
        self.action_wide = nn.Linear(n_wide, N_ACTIONS, bias=False) if n_wide else None
        self.convert_wide = nn.Linear(n_wide, 1, bias=False) if n_wide else None
        for wide in (self.action_wide, self.convert_wide):
            if wide is not None:
                nn.init.zeros_(wide.weight)

    def encode(
        self, items: torch.Tensor, actions: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """The prefix as one query vector ``[batch, emb]``, before any head."""
        x = self.item_embedding(items) + self.action_embedding(actions)  # [batch, seq_len, emb]
        return self.encoder(self.input_dropout(x), lengths)

    def heads(self, h: torch.Tensor, wide: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Action logits ``[batch, 4]`` and conversion logit ``[batch]`` of encoded prefixes.

        ``wide`` is ``[batch, n_wide]`` (``[batch, 0]`` and unread without a wide part).
        """
        action_logits, convert_logit = self.action_head(h), self.convert_head(h)
        if self.action_wide is not None and self.convert_wide is not None:
            action_logits = action_logits + self.action_wide(wide)
            convert_logit = convert_logit + self.convert_wide(wide)
        return action_logits, convert_logit.squeeze(-1)

    def forward(
        self, items: torch.Tensor, actions: torch.Tensor, lengths: torch.Tensor, wide: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.encode(items, actions, lengths)
        item_logits = h @ self.item_embedding.weight[1:].T  # [batch, n_items]
        return item_logits, *self.heads(h, wide)


class NeuralNextStepModel(NextStepModel):
    """A next-step model trained end to end with a joint item / action / conversion loss.

    ``proximal_mu`` > 0 turns ``fit`` into a FedProx local update: it adds
    ``mu / 2 * ||w - w_start||²`` with ``w_start`` the weights ``fit`` started from (the global
    model a federated round handed out), so a partner's update cannot wander far from it.

    ``private`` replaces each training epoch by a differentially private one (session-level DP);
    ``grad_clip`` and the proximal term then do not apply.

    ``action_class_weight="balanced"`` weighs each next action in the loss by the inverse of its
    train frequency: unweighted, a log that is 70% views teaches the action head to say "view"
    every time (macro-F1 0.21 on Taobao, the majority class). ``convert_target`` is the question
    the conversion head learns (``fedpath.targets``): ``session`` (the session holds a purchase)
    or ``ahead`` (a purchase still follows this prefix, what a merchant can act on).

    ``session_features`` gives the action and conversion heads a wide part
    (``fedpath.models.session_features``): counts, shares and last steps of the prefix's
    actions, read linearly beside the encoder state, so "has this session already carted or
    paid" need not be learned through the item-trained encoder.

    ``item_negatives`` > 0 trains the item head with a sampled softmax: each batch scores its own
    targets and that many uniformly drawn items instead of the whole catalogue, with the logQ
    correction (Jean et al. 2015) so the targets' popularity does not bias the scores. At 43k
    items the full softmax is most of a training step; prediction always ranks every item.
    """

    # Constructor arguments that say how ``fit`` runs in this process, not what the model is: a
    # saved model leaves them out (a private trainer holds a live accountant, not a setting).
    unsaved_params: tuple[str, ...] = ("private",)
    # Constructor arguments added after model files were first written, with the value that
    # rebuilds such a file as it was saved (``fedpath.models.weights_io``).
    absent_in_old_files: ClassVar[dict[str, object]] = {"session_features": False}

    def __init__(
        self,
        *,
        n_items: int,
        seed: int = 0,
        embedding_size: int,
        dropout: float,
        optimizer: str,
        lr: float,
        momentum: float,
        weight_decay: float,
        batch_size: int,
        epochs: int,
        patience: int,
        max_len: int,
        grad_clip: float,
        item_loss_weight: float,
        action_loss_weight: float,
        convert_loss_weight: float,
        action_class_weight: str,
        convert_target: str,
        proximal_mu: float,
        item_negatives: int,
        session_features: bool,
        private: PrivateTraining | None = None,
    ) -> None:
        super().__init__(n_items=n_items, seed=seed)
        self.embedding_size = embedding_size
        self.dropout = dropout
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.max_len = max_len
        self.grad_clip = grad_clip
        self.item_loss_weight = item_loss_weight
        self.action_loss_weight = action_loss_weight
        self.convert_loss_weight = convert_loss_weight
        self.action_class_weight = action_class_weight
        self.convert_target = convert_target
        self.proximal_mu = proximal_mu
        self.item_negatives = item_negatives
        self.session_features = session_features
        self.private = private
        # Validated here, not in fit: the network is built now and its sizes must make sense.
        for key in ("n_items", "embedding_size", "batch_size", "max_len"):
            require(getattr(self, key) >= 1, key, ">= 1", getattr(self, key))
        for key in (
            "epochs",
            "patience",
            "weight_decay",
            "grad_clip",
            "proximal_mu",
            "item_negatives",
            "item_loss_weight",
            "action_loss_weight",
            "convert_loss_weight",
        ):
            require(getattr(self, key) >= 0, key, ">= 0", getattr(self, key))
        require(lr > 0, "lr", "> 0", lr)
        require(isinstance(session_features, bool), "session_features", "a bool", session_features)
        require(optimizer in OPTIMIZERS, "optimizer", f"one of {OPTIMIZERS}", optimizer)
        require(0 <= momentum < 1, "momentum", "in [0, 1)", momentum)
        require(
            optimizer == "sgd" or momentum == 0, "momentum", "0 unless optimizer is sgd", momentum
        )
        require(0 <= dropout < 1, "dropout", "in [0, 1)", dropout)
        require(
            action_class_weight in ACTION_CLASS_WEIGHTS,
            "action_class_weight",
            f"one of {ACTION_CLASS_WEIGHTS}",
            action_class_weight,
        )
        require(
            convert_target in CONVERSION_TARGETS,
            "convert_target",
            f"one of {CONVERSION_TARGETS}",
            convert_target,
        )
        require(
            private is None or proximal_mu == 0,
            "proximal_mu",
            "0 with private training",
            proximal_mu,
        )
        self.n_fits_ = 0
        self._action_weight: torch.Tensor | None = None  # set by each fit from its train labels
        self._log_q: torch.Tensor | None = None  # set by each fit for the sampled softmax
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            n_wide = N_SESSION_FEATURES if session_features else 0
            self.network_ = _Network(
                n_items, embedding_size, dropout, self._build_encoder(), n_wide
            )

    @abstractmethod
    def _build_encoder(self) -> nn.Module:
        """A module mapping ``(x [batch, seq_len, emb], lengths [batch]) -> [batch, emb]``.

        Called from ``NeuralNextStepModel.__init__``: a subclass stores its own
        hyper-parameters before calling ``super().__init__``.
        """

    # ----------------------------------------------------------------------------- training
    def fit(
        self, train: Cases, valid: Cases | None = None, *, on_epoch: EpochCallback | None = None
    ) -> NeuralNextStepModel:
        """The configured optimizer on mini-batches of prefixes; with ``valid``, keep the epoch
        best on valid R@20.

        Ties on valid Recall@20 (common on small valid sets) are broken by MRR@20. Each call
        draws its shuffles and dropout from ``(seed, number of earlier fits)``: a rerun of the
        same calls gives the same weights, and federated rounds do not replay one order.
        """
        data = self._tensors(train)
        self._action_weight = self._class_weights(data["next_action"])
        self._log_q = self._sampling_log_q(data["next_item"])
        if valid is not None and not (valid.next_item >= 0).any():
            valid = None  # nothing to rank: train the full epochs rather than stop blind
        network = self.network_
        params = [p for p in network.parameters() if p.requires_grad]
        start = [p.detach().clone() for p in params]
        optimizer = self._optimizer(params)
        best_score: tuple[float, float] | None = None
        best_state = None
        stale = 0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 1_000_003 + self.n_fits_)
            for epoch in range(1, self.epochs + 1):
                if self.private is None:
                    metrics = {"loss": self._train_epoch(data, optimizer, params, start)}
                else:
                    metrics = {"loss": self._private_epoch(data, optimizer)}
                if valid is not None:
                    metrics.update(self._valid_metrics(valid))
                if on_epoch is not None:
                    on_epoch(epoch, metrics)
                if valid is None:
                    continue
                score = (metrics[f"valid_recall@{VALID_K}"], metrics[f"valid_mrr@{VALID_K}"])
                if best_score is None or score > best_score:
                    best_score, stale = score, 0
                    best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
                else:
                    stale += 1
                    if stale >= self.patience:
                        break
        if best_state is not None:
            network.load_state_dict(best_state)
        self.n_fits_ += 1
        return self

    def _optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        """A fresh optimizer for one ``fit`` call: its state never outlives the call.

        Federated training calls ``fit`` once per round, so an adaptive optimizer restarts every
        round. Restarted Adam scales each coordinate's first steps to about ``lr`` whatever the
        gradient's size, and under a full softmax every item row has a (tiny) gradient: each
        round kicks every absent item's embedding by a full step. On the Diginetica sample that
        held federated GRU4Rec at R@20 0.13 against 0.55 centralized; SGD with momentum, whose
        steps scale with the gradient, trains centralized as well and federates to about 0.5
        (docs/federation.md).
        """
        if self.optimizer == "sgd":
            return torch.optim.SGD(
                params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
            )
        return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)

    def _class_weights(self, next_action: torch.Tensor) -> torch.Tensor | None:
        """Per-action loss weights ``n / (classes present × count)`` (scikit-learn's "balanced").

        A class absent from the labels weighs 0: it has no case to weigh. None (plain
        cross-entropy) for ``action_class_weight="none"``. Computed from the labels this fit
        sees, so a federated partner balances its own classes.
        """
        if self.action_class_weight == "none":
            return None
        counts = torch.bincount(next_action[next_action >= 0], minlength=N_ACTIONS).double()
        present = counts > 0
        if not present.any():
            return None
        weights = torch.zeros(N_ACTIONS, dtype=torch.float64)
        weights[present] = counts.sum() / (present.sum() * counts[present])
        return weights.float()

    def output_layer_names(self) -> list[str]:
        """The arrays (``get_weights`` names) of the output layers that personalization tunes.

        FedPer / FedRep split a network into a shared base and a personal head. The head here is
        what turns an encoded prefix into predictions: the action and conversion heads (with their
        wide parts), and the
        encoder's last layer with parameters (GRU4Rec's projection, NARM's bilinear decoder,
        SASRec's final norm), which shapes the query the tied item head scores. The item head
        itself is the item embedding the base reads too, so it stays shared.
        """
        layers = [
            name
            for name, module in self.network_.encoder.named_children()
            if any(True for _ in module.parameters())
        ]
        heads = ("action_head.", "convert_head.", "action_wide.", "convert_wide.")
        prefixes = (*heads, f"encoder.{layers[-1]}.")
        return [name for name, _ in self.network_.named_parameters() if name.startswith(prefixes)]

    def fine_tune_heads(
        self, train: Cases, valid: Cases | None = None, *, epochs: int
    ) -> NeuralNextStepModel:
        """``fit`` for ``epochs`` epochs with every layer frozen but ``output_layer_names()``.

        ``fit`` optimizes only parameters that require gradients, so freezing the base is all it
        takes; with ``valid`` it keeps the best epoch, as ``fit`` does.
        """
        require(isinstance(epochs, int) and epochs >= 1, "epochs", "an integer >= 1", epochs)
        heads = set(self.output_layer_names())
        frozen = [p for n, p in self.network_.named_parameters() if n not in heads]
        configured = self.epochs
        for parameter in frozen:
            parameter.requires_grad_(False)
        self.epochs = epochs
        try:
            self.fit(train, valid)
        finally:
            self.epochs = configured
            for parameter in frozen:
                parameter.requires_grad_(True)
        return self

    def _train_epoch(
        self,
        data: dict[str, torch.Tensor],
        optimizer: torch.optim.Optimizer,
        params: list[nn.Parameter],
        start: list[torch.Tensor],
    ) -> float:
        """One pass over ``data`` in random order; returns the mean loss per prefix."""
        self.network_.train()
        n = len(data["lengths"])
        total = 0.0
        for rows in _length_buckets(data["lengths"], self.batch_size):
            batch = _take(data, rows)
            loss = self._loss(batch)
            if self.proximal_mu > 0:
                drift = sum(((p - s) ** 2).sum() for p, s in zip(params, start, strict=True))
                loss = loss + self.proximal_mu / 2 * drift
            optimizer.zero_grad()
            loss.backward()
            if self.grad_clip > 0:
                nn.utils.clip_grad_norm_(params, self.grad_clip)
            optimizer.step()
            total += loss.item() * len(batch["lengths"])
        return total / max(n, 1)

    def _private_epoch(
        self, data: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer
    ) -> float:
        """One epoch of ``self.private``, its loss the same joint loss over a session's rows."""
        assert self.private is not None
        self.network_.train()
        # Row-sparse item-table gradients while each session's gradient is clipped alone: a
        # session reads a few thousand of the catalogue's rows, and a dense gradient would cost
        # the whole table per session (fedpath.privacy.dp.session). The optimizer still gets the
        # dense noised sum; non-private training keeps dense gradients, which Adam needs.
        item_table = self.network_.item_embedding
        item_table.sparse = True
        try:
            return self.private.epoch(
                self.network_,
                data["session"],
                lambda rows: self._loss(_take(data, rows)),
                optimizer,
            )
        finally:
            item_table.sparse = False

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Weighted sum of the three heads' losses, each over the cases that carry its label."""
        network = self.network_
        h = network.encode(batch["items"], batch["actions"], batch["lengths"])
        action_logits, convert_logit = network.heads(h, batch["wide"])
        loss = self.convert_loss_weight * F.binary_cross_entropy_with_logits(
            convert_logit, batch["converts"]
        )
        has_item = batch["next_item"] >= 0
        if has_item.any():
            item_loss = self._item_loss(h[has_item], batch["next_item"][has_item])
            loss = loss + self.item_loss_weight * item_loss
        has_action = batch["next_action"] >= 0
        if has_action.any():
            action_loss = F.cross_entropy(
                action_logits[has_action],
                batch["next_action"][has_action],
                weight=self._action_weight,
            )
            loss = loss + self.action_loss_weight * action_loss
        return loss

    def _sampling_log_q(self, next_item: torch.Tensor) -> torch.Tensor | None:
        """log of each item's expected count among a batch's sampled-softmax candidates.

        A batch's targets follow the train popularity p (so about ``batch_size * p_j`` copies
        of item j) and the ``item_negatives`` uniform draws add ``item_negatives / n_items``.
        None under the full softmax, which needs no correction.
        """
        if self.item_negatives == 0:
            return None
        targets = next_item[next_item >= 0]
        popularity = torch.bincount(targets, minlength=self.n_items).double() / max(len(targets), 1)
        expected = self.batch_size * popularity + self.item_negatives / self.n_items
        return torch.log(expected).float()

    def _item_loss(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the next item: over the catalogue, or over sampled candidates."""
        table = self.network_.item_embedding
        if self._log_q is None:  # item_negatives == 0: the full softmax
            return F.cross_entropy(h @ table.weight[1:].T, targets)
        negatives = torch.randint(self.n_items, (self.item_negatives,))
        candidates, where = torch.unique(torch.cat([targets, negatives]), return_inverse=True)
        # Read as an embedding lookup (item j is row j + 1), so a sparse table's gradient stays
        # row-sparse here too.
        rows = F.embedding(candidates + 1, table.weight, sparse=table.sparse)
        logits = h @ rows.T - self._log_q[candidates]  # [batch, candidates]
        return F.cross_entropy(logits, where[: len(targets)])

    def _valid_metrics(self, valid: Cases) -> dict[str, float]:
        """Recall@20 and MRR@20 over the item cases of ``valid``, as the evaluation counts them."""
        # Ranked PREDICT_BATCH cases at a time: a whole valid set's scores are cases x items
        # floats (12 GB for full Diginetica's 70k valid cases over 43k items).
        ranks = item_ranks(self, valid.item_cases, batch_size=PREDICT_BATCH)
        return {
            f"valid_recall@{VALID_K}": recall_at_k(ranks, VALID_K),
            f"valid_mrr@{VALID_K}": mrr_at_k(ranks, VALID_K),
        }

    # ---------------------------------------------------------------------------- inference
    def predict(self, cases: Cases) -> Predictions:
        """Scores over the whole vocabulary (no masking of items already seen) and two heads."""
        n = len(cases)
        item_scores = np.empty((n, self.n_items), np.float32)
        action_probs = np.empty((n, N_ACTIONS), np.float32)
        convert_prob = np.empty(n, np.float32)
        for rows, (item_logits, action_logits, convert_logit) in self._forward(cases):
            item_scores[rows] = item_logits.numpy()
            action_probs[rows] = torch.softmax(action_logits, dim=1).numpy()
            convert_prob[rows] = torch.sigmoid(convert_logit).numpy()
        return Predictions(item_scores, action_probs, convert_prob)

    def _forward(self, cases: Cases) -> Iterator[tuple[np.ndarray, tuple[torch.Tensor, ...]]]:
        """Eval-mode outputs ``PREDICT_BATCH`` rows at a time, with the rows they belong to.

        Rows go shortest prefix first: a batch pads to its longest prefix, and a log's prefixes
        are mostly a few items long, so batching them by length does several times less work.
        """
        data = self._tensors(cases)
        order = torch.argsort(data["lengths"], stable=True)
        self.network_.eval()
        with torch.inference_mode():
            for rows in order.split(PREDICT_BATCH):
                batch = _take(data, rows)
                yield (
                    rows.numpy(),
                    self.network_(
                        batch["items"], batch["actions"], batch["lengths"], batch["wide"]
                    ),
                )

    def _tensors(self, cases: Cases) -> dict[str, torch.Tensor]:
        """Cases as tensors: ids shifted by one (0 = padding), the last ``max_len`` steps kept.

        The session features (``wide``, ``[n, 0]`` without a wide part) count the whole prefix
        ``Cases`` holds, not only the ``max_len`` steps the encoder reads.
        """
        lengths = np.asarray(cases.lengths, dtype=np.int64)
        width = cases.prefixes.shape[1]
        if len(lengths) and (lengths.min() < 1 or lengths.max() > width):
            raise ValueError(
                f"case lengths must be in 1..{width}, got {lengths.min()}..{lengths.max()}"
            )
        kept = np.minimum(lengths, self.max_len)
        span = min(width, self.max_len)
        columns = (lengths - kept)[:, None] + np.arange(span)[None, :]  # [n, span]
        columns = np.minimum(columns, width - 1)
        real = np.arange(span)[None, :] < kept[:, None]
        items = np.take_along_axis(cases.prefixes.astype(np.int64), columns, axis=1)
        actions = np.take_along_axis(cases.prefix_actions.astype(np.int64), columns, axis=1)
        bad_items = real & ((items < 0) | (items >= self.n_items))
        if bad_items.any():
            raise ValueError(
                f"prefix items must be in 0..{self.n_items - 1}, got {items[bad_items][0]}"
            )
        bad_actions = real & ((actions < 0) | (actions >= N_ACTIONS))
        if bad_actions.any():
            raise ValueError(
                f"prefix actions must be in 0..{N_ACTIONS - 1}, got {actions[bad_actions][0]}"
            )
        if self.session_features:
            wide = session_features(cases.prefix_actions, lengths)
        else:
            wide = np.zeros((len(lengths), 0), np.float32)
        return {
            "items": torch.from_numpy(np.where(real, items + 1, 0)),
            "wide": torch.from_numpy(wide),
            "actions": torch.from_numpy(np.where(real, actions + 1, 0)),
            "lengths": torch.from_numpy(kept),
            "next_item": torch.from_numpy(np.asarray(cases.next_item, dtype=np.int64)),
            "next_action": torch.from_numpy(np.asarray(cases.next_action, dtype=np.int64)),
            "converts": torch.from_numpy(
                conversion_label(cases, self.convert_target).astype(np.float32)
            ),
            "session": torch.from_numpy(np.asarray(cases.session_index, dtype=np.int64)),
        }

    # ------------------------------------------------------------------------------ weights
    def get_weights(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy().copy() for k, v in self.network_.state_dict().items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load named arrays, all checked before any is written so a refusal changes nothing."""
        expected = self.network_.state_dict()
        missing = sorted(set(expected) - set(weights))
        unexpected = sorted(set(weights) - set(expected))
        if missing or unexpected:
            raise ValueError(
                f"weights must hold exactly the arrays of {type(self).__name__}, "
                f"got missing {missing} and unexpected {unexpected}"
            )
        tensors = {}
        for name, target in expected.items():
            array = np.asarray(weights[name])
            if array.shape != tuple(target.shape):
                raise ValueError(
                    f"weights[{name!r}] must have shape {tuple(target.shape)}, got {array.shape}"
                )
            if not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all():
                raise ValueError(f"weights[{name!r}] must be finite numbers, got {array.dtype}")
            tensors[name] = torch.as_tensor(array, dtype=target.dtype)
        self.network_.load_state_dict(tensors)


def _length_buckets(lengths: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Random batches of rows, each drawn from prefixes of similar length.

    A batch pads to its longest prefix, and session logs are mostly short prefixes with a long
    tail: shuffled, sorted by length within pools of ``BUCKET_POOL`` batches, cut, and the batches
    shuffled again, an epoch costs several times less and stays a random pass over the data.
    """
    order = torch.randperm(len(lengths))
    pool = batch_size * BUCKET_POOL
    batches = []
    for begin in range(0, len(order), pool):
        rows = order[begin : begin + pool]
        rows = rows[torch.sort(lengths[rows], stable=True).indices]
        batches.extend(rows.split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches))]


def _take(data: dict[str, torch.Tensor], rows: torch.Tensor | slice) -> dict[str, torch.Tensor]:
    """The ``rows`` of every tensor, sequences trimmed to the batch's longest prefix."""
    batch = {k: v[rows] for k, v in data.items()}
    width = int(batch["lengths"].max()) if len(batch["lengths"]) else 1
    batch["items"] = batch["items"][:, :width]
    batch["actions"] = batch["actions"][:, :width]
    return batch
