"""Membership inference: can an attacker holding the model tell training sessions from others?

The loss-threshold attack (Yeom et al., "Privacy Risk in Machine Learning", CSF 2018): a model
fits the sessions it was trained on better than sessions it never saw, so an attacker scores each
session by its loss and calls the low-loss ones members. Sweeping the threshold gives a ROC curve;
its AUC is the audit's figure: 0.5 is a coin toss (nothing leaks), 1.0 names every member.
Session-level DP at (ε, δ) caps every attack's true-positive rate at ``e^ε · FPR + δ``.

The loss is the next-item cross-entropy of a session's prefixes, averaged over the session,
with the model's item scores taken as logits (what the neural models output). Members and
non-members must come from one distribution, or the attack would measure drift instead of
memorization: :func:`split_members` halves one set of sessions at random.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import roc_auc_score

from fedpath.data.cases import expand_prefixes
from fedpath.data.containers import Session
from fedpath.models.base import NextStepModel

CHUNK = 1024  # cases scored at a time


def split_members(sessions: Sequence[Session], seed: int) -> tuple[list[Session], list[Session]]:
    """A seeded random half of ``sessions`` to train on (members) and the other half (not)."""
    if len(sessions) < 2:
        raise ValueError(f"sessions must hold at least 2 sessions, got {len(sessions)}")
    order = np.random.default_rng(seed).permutation(len(sessions))
    half = len(sessions) // 2
    return [sessions[i] for i in order[:half]], [sessions[i] for i in order[half:]]


def session_losses(
    model: NextStepModel, sessions: Sequence[Session], *, max_len: int = 50
) -> np.ndarray:
    """``[sessions]`` each session's mean next-item cross-entropy under ``model``."""
    if any(len(s) < 2 for s in sessions):
        raise ValueError("sessions must each have at least 2 items (one next-item case)")
    cases = expand_prefixes(sessions, max_len=max_len).item_cases
    losses = np.empty(len(cases))
    # CHUNK cases at a time: all of them at once is [cases, items] floats (2 GB for 10k cases
    # over full Diginetica's 43k items).
    for start in range(0, len(cases), CHUNK):
        rows = np.arange(start, min(start + CHUNK, len(cases)))
        scores = model.predict(cases.subset(rows)).item_scores.astype(np.float64)
        top = scores.max(axis=1, keepdims=True)
        log_norm = top[:, 0] + np.log(np.exp(scores - top).sum(axis=1))
        losses[rows] = log_norm - scores[np.arange(len(rows)), cases.next_item[rows]]
    totals = np.bincount(cases.session_index, weights=losses, minlength=len(sessions))
    return totals / np.bincount(cases.session_index, minlength=len(sessions))


def loss_threshold_auc(
    model: NextStepModel,
    members: Sequence[Session],
    non_members: Sequence[Session],
    *,
    max_len: int = 50,
) -> float:
    """ROC-AUC of the loss-threshold attack: P(a member's loss < a non-member's)."""
    if not members or not non_members:
        raise ValueError(
            f"members and non_members must both be non-empty, got {len(members)} and "
            f"{len(non_members)}"
        )
    losses = np.concatenate(
        [
            session_losses(model, members, max_len=max_len),
            session_losses(model, non_members, max_len=max_len),
        ]
    )
    is_member = np.r_[np.ones(len(members)), np.zeros(len(non_members))]
    return float(roc_auc_score(is_member, -losses))
