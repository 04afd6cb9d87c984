"""The membership-inference audit (privacy/membership.py): the per-session loss it thresholds,
the member / non-member split, and the attack's AUC with and without session-level DP."""

from __future__ import annotations

import math

import numpy as np
import pytest
from session_data import session

from fedpath.data.cases import expand_prefixes
from fedpath.models.registry import build_model
from fedpath.privacy import membership
from fedpath.privacy.dp.config import SessionDP
from fedpath.privacy.dp.session import SessionDPSGD
from fedpath.privacy.membership import loss_threshold_auc, session_losses, split_members


def test_a_sessions_loss_is_its_mean_next_item_cross_entropy_over_the_scores():
    # Prepare: popularity over 3 items counted [1, 2, 3]: every prefix scores ranks [0, 1, 2]
    model = build_model("popularity", n_items=3)
    model.fit(expand_prefixes([session("a", [0, 1]), session("b", [1, 2]), session("c", [2, 2])]))
    log_norm = math.log(1 + math.e + math.e**2)
    # Execute
    losses = session_losses(model, [session("x", [0, 2]), session("y", [2, 0, 1])])
    # Assert: x predicts item 2 once; y predicts 0 then 1
    assert losses[0] == pytest.approx(log_norm - 2)
    assert losses[1] == pytest.approx(((log_norm - 0) + (log_norm - 1)) / 2)


def test_losses_scored_a_chunk_at_a_time_equal_the_losses_scored_at_once(monkeypatch, one_thread):
    # Prepare: a neural model (its scores are logits), and sessions whose cases straddle chunks
    # of 2 (3 and 2 cases)
    model = build_model("gru4rec", n_items=4, seed=0, epochs=1, hidden_size=4, embedding_size=4)
    model.fit(expand_prefixes([session("a", [0, 1, 2, 3]), session("b", [1, 2, 0])]))
    sessions = [session("x", [0, 1, 2, 3]), session("y", [2, 0, 1])]
    at_once = session_losses(model, sessions)
    monkeypatch.setattr(membership, "CHUNK", 2)
    # Execute
    chunked = session_losses(model, sessions)
    # Assert
    assert chunked == pytest.approx(at_once)
    assert at_once[0] != pytest.approx(at_once[1])


def test_members_and_non_members_are_a_seeded_random_halving():
    # Prepare
    sessions = [session(str(k), [k, k + 1]) for k in range(11)]
    # Execute
    members, others = split_members(sessions, seed=3)
    again, _ = split_members(sessions, seed=3)
    # Assert
    assert len(members) == 5 and len(others) == 6
    assert {s.key for s in members} | {s.key for s in others} == {s.key for s in sessions}
    assert [s.key for s in members] == [s.key for s in again]
    assert [s.key for s in members] != [str(k) for k in range(5)]


def test_session_level_dp_lowers_the_attack_auc_of_a_memorizing_model(one_thread):
    # Prepare: 60 random paths (nothing to learn but the paths themselves), half trained on
    rng = np.random.default_rng(0)
    sessions = [session(str(k), list(rng.integers(0, 40, 5))) for k in range(60)]
    members, others = split_members(sessions, seed=0)
    params = {"embedding_size": 16, "hidden_size": 16, "dropout": 0.0, "lr": 0.03}
    params |= {"batch_size": 16, "epochs": 25}
    settings = SessionDP(noise_multiplier=3.0, clip_norm=1.0, sample_rate=0.25)
    # Execute
    plain = build_model("gru4rec", n_items=40, **params).fit(expand_prefixes(members))
    private = build_model("gru4rec", n_items=40, private=SessionDPSGD(settings), **params)
    private.fit(expand_prefixes(members))
    # Assert: the plain model gives its members away; the private one much less so
    plain_auc = loss_threshold_auc(plain, members, others)
    private_auc = loss_threshold_auc(private, members, others)
    assert plain_auc > 0.9
    assert private_auc < plain_auc - 0.15
