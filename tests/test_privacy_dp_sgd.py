"""Session-level DP-SGD (privacy/dp/session.py): each session's gradient is clipped, the noise
has the calibrated scale, sessions are Poisson-sampled, and the neural models train with it.

The clipping and noise tests drive ``SessionDPSGD.epoch`` with plain SGD (lr 1), so a step's
weight change is exactly minus the private gradient: ``-(sum of clipped session gradients +
N(0, (σC)²)) / (q n)``. With sample rate 1 every session is in every step.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from federation_paths import TINY_GRU, walk_split  # pytest puts tests/ on sys.path
from torch import nn

from fedpath.data.cases import expand_prefixes
from fedpath.models.registry import build_model
from fedpath.privacy.dp.config import SessionDP
from fedpath.privacy.dp.session import SessionDPSGD

NO_NOISE = 1e-9  # the settings require noise > 0; this much is invisible at these scales


pytestmark = pytest.mark.usefixtures("one_thread")


def _setup(n_sessions: int, rows_per_session: int, width: int, seed: int = 0):
    """A linear network, targets far above its output (large, aligned gradients), and a loss."""
    torch.manual_seed(seed)
    network = nn.Linear(width, 40)
    inputs = torch.randn(n_sessions * rows_per_session, width)
    targets = 100 + torch.randn(n_sessions * rows_per_session, 40)
    sessions = torch.arange(n_sessions).repeat_interleave(rows_per_session)

    def loss_of(rows: torch.Tensor) -> torch.Tensor:
        return ((network(inputs[rows]) - targets[rows]) ** 2).mean()

    return network, sessions, loss_of


def _flat(network: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in network.parameters()])


def _one_epoch(settings: SessionDP, network, sessions, loss_of) -> torch.Tensor:
    """The weight change of one private epoch of SGD with learning rate 1."""
    before = _flat(network)
    SessionDPSGD(settings).epoch(
        network, sessions, loss_of, torch.optim.SGD(network.parameters(), lr=1.0)
    )
    return _flat(network) - before


def test_a_single_sessions_update_is_clipped_to_exactly_the_clip_norm():
    # Prepare: one session of 6 rows whose raw gradient norm is far above the clip norm
    network, sessions, loss_of = _setup(n_sessions=1, rows_per_session=6, width=8)
    raw = torch.autograd.grad(loss_of(torch.arange(6)), list(network.parameters()))
    settings = SessionDP(noise_multiplier=NO_NOISE, clip_norm=1e-3, sample_rate=1.0)
    # Execute
    change = _one_epoch(settings, network, sessions, loss_of)
    # Assert
    assert torch.sqrt(sum((g**2).sum() for g in raw)) > 10
    assert torch.linalg.vector_norm(change).item() == pytest.approx(1e-3, rel=1e-4)


def test_many_sessions_move_the_weights_by_at_most_the_clip_norm():
    # Prepare: 30 sessions, each clipped to C; their mean cannot exceed C
    network, sessions, loss_of = _setup(n_sessions=30, rows_per_session=3, width=8)
    settings = SessionDP(noise_multiplier=NO_NOISE, clip_norm=0.05, sample_rate=1.0)
    # Execute
    change = _one_epoch(settings, network, sessions, loss_of)
    # Assert: bounded, and not trivially zero (the sessions' gradients largely agree)
    norm = torch.linalg.vector_norm(change).item()
    assert 0.01 < norm <= 0.05 + 1e-7


def test_the_noise_has_std_sigma_times_clip_over_the_expected_batch():
    # Prepare: two identical networks; one epoch with noise and one without from the same start
    sigma, clip, n = 2.0, 0.5, 50
    noisy_net, sessions, noisy_loss = _setup(n_sessions=n, rows_per_session=2, width=250)
    clean_net, _, clean_loss = _setup(n_sessions=n, rows_per_session=2, width=250)
    # Execute
    noisy = _one_epoch(
        SessionDP(noise_multiplier=sigma, clip_norm=clip, sample_rate=1.0),
        noisy_net,
        sessions,
        noisy_loss,
    )
    clean = _one_epoch(
        SessionDP(noise_multiplier=NO_NOISE, clip_norm=clip, sample_rate=1.0),
        clean_net,
        sessions,
        clean_loss,
    )
    # Assert: over 10,040 weights the difference is N(0, (σC/n)²) = N(0, 0.02²)
    difference = noisy - clean
    assert difference.numel() == 250 * 40 + 40
    assert abs(difference.std().item() / (sigma * clip / n) - 1) < 0.05
    assert abs(difference.mean().item()) < 4 * sigma * clip / n / difference.numel() ** 0.5


def test_the_clipped_sum_clips_each_sessions_mean_gradient_worked_by_hand():
    # Prepare: loss = mean of w . x over a session's rows, so a session's gradient is its rows'
    # mean x. Session 0: (3, 4), norm 5 -> clipped to (0.6, 0.8). Session 1: (0.3, 0.4), norm 0.5,
    # kept. Session 2: rows (6, 0) and (0, 8), mean (3, 4) -> (0.6, 0.8) (clipping each row
    # instead would give (0.5, 0.5)). Sum (1.5, 2.0). A parameter no loss reaches sums to zero.
    network = nn.Linear(2, 1, bias=False)
    unreached = nn.Parameter(torch.ones(3))
    x = torch.tensor([[3.0, 4.0], [0.3, 0.4], [6.0, 0.0], [0.0, 8.0]])
    sessions = torch.tensor([0, 1, 2, 2])

    def loss_of(rows: torch.Tensor) -> torch.Tensor:
        return network(x[rows]).mean()

    settings = SessionDP(noise_multiplier=NO_NOISE, clip_norm=1.0, sample_rate=1.0)
    batch = [torch.tensor([0]), torch.tensor([1]), torch.tensor([2, 3])]
    # Execute
    total, losses = SessionDPSGD(settings).clipped_sum([network.weight, unreached], batch, loss_of)
    change = _one_epoch(settings, network, sessions, loss_of)
    # Assert: the sum, and a step of SGD with lr 1 moves by minus the sum over q n = 3 sessions
    assert total[0].flatten().tolist() == pytest.approx([1.5, 2.0], rel=1e-5)
    assert total[1].tolist() == [0.0, 0.0, 0.0]
    assert len(losses) == 3
    assert change.tolist() == pytest.approx([-0.5, -2.0 / 3], rel=1e-5)


def test_a_sparse_embedding_gradient_is_clipped_and_summed_as_its_dense_twin():
    # Prepare: the same table read with sparse and with dense gradients; session 1 reads row 2
    # twice (its duplicate rows must be summed before the norm), both sessions share row 2, and
    # a weight beside the table counts in each session's norm. Clip 0.5 binds every session.
    torch.manual_seed(0)
    weight, scale = torch.randn(6, 3), torch.randn(3)
    reads = [torch.tensor([[1, 2], [4, 1]]), torch.tensor([[2, 2], [5, 3]])]
    settings = SessionDP(noise_multiplier=NO_NOISE, clip_norm=0.5, sample_rate=1.0)

    def clipped(sparse: bool) -> list[torch.Tensor]:
        table = nn.Embedding(6, 3, sparse=sparse)
        beside = nn.Parameter(scale.clone())
        with torch.no_grad():
            table.weight.copy_(weight)

        def loss_of(rows: torch.Tensor) -> torch.Tensor:
            return (table(reads[int(rows[0])]) * beside).sum() ** 2

        total, _ = SessionDPSGD(settings).clipped_sum(
            [table.weight, beside], [torch.tensor([0]), torch.tensor([1])], loss_of
        )
        return total

    # Execute
    sparse, dense = clipped(sparse=True), clipped(sparse=False)
    # Assert: equal sums, and clipping happened (each session adds at most 0.5 in norm)
    assert all(torch.allclose(s, d, atol=1e-6) for s, d in zip(sparse, dense, strict=True))
    assert 0.5 < float(torch.cat([t.flatten() for t in dense]).norm()) <= 1.0 + 1e-6
    assert sparse[0][0].abs().sum() == 0  # a row no session read gets nothing


# Peak RSS of a fresh process after a step of 10 sessions, then after a step of 200, on a
# 500 x 500 linear network (1 MB a gradient): stacking per-session gradients, as Opacus's
# DPOptimizer needs, adds ~360 MB at 200 sessions; a running sum adds nothing.
_PEAK_RSS_SCRIPT = """
import resource, torch
from torch import nn
from fedpath.privacy.dp.config import SessionDP
from fedpath.privacy.dp.session import SessionDPSGD
torch.set_num_threads(1)
network, inputs = nn.Linear(500, 500), torch.randn(200, 500)
def peak_mib_after(n):
    SessionDPSGD(SessionDP(noise_multiplier=1.0, clip_norm=1.0, sample_rate=1.0)).epoch(
        network, torch.arange(n), lambda rows: network(inputs[rows]).square().mean(),
        torch.optim.SGD(network.parameters(), lr=0.1))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(peak_mib_after(10), peak_mib_after(200))
"""


def test_a_steps_memory_does_not_grow_with_the_sessions_it_samples():
    # Execute: in a fresh process, so no earlier test's peak hides this one's
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS_SCRIPT], capture_output=True, text=True, check=True
    )
    # Assert: 20 times the sessions, the same peak within 20 MB (200 gradients would be 200 MB)
    small, large = map(float, out.stdout.split())
    assert large - small < 20


def test_sessions_are_poisson_sampled_once_per_epoch_in_expectation():
    # Prepare: 400 sessions at rate 1/4: four steps of Binomial(400, 1/4) sessions each
    network, sessions, loss_of = _setup(n_sessions=400, rows_per_session=1, width=4)
    seen: list[int] = []

    def counting_loss(rows: torch.Tensor) -> torch.Tensor:
        seen.append(int(sessions[rows[0]]))
        return loss_of(rows)

    settings = SessionDP(noise_multiplier=1.0, clip_norm=1.0, sample_rate=0.25)
    # Execute
    _one_epoch(settings, network, sessions, counting_loss)
    # Assert: 400 sessions looked at in expectation (sd 17), some twice, some never
    assert settings.steps_per_epoch == 4
    assert abs(len(seen) - 400) < 4 * (400 * 0.75) ** 0.5
    assert len(set(seen)) < len(seen)
    assert len(set(seen)) < 400


def test_each_session_is_one_unit_however_many_prefixes_it_has():
    # Prepare: session 0 has 1 row, session 1 has 9; each is one gradient, one loss
    network, _, loss_of = _setup(n_sessions=10, rows_per_session=1, width=4)
    sessions = torch.tensor([0] + [1] * 9)
    units: list[int] = []

    def recording_loss(rows: torch.Tensor) -> torch.Tensor:
        units.append(len(rows))
        return loss_of(rows)

    settings = SessionDP(noise_multiplier=1.0, clip_norm=1.0, sample_rate=1.0)
    # Execute
    _one_epoch(settings, network, sessions, recording_loss)
    # Assert
    assert sorted(units) == [1, 9]


def test_a_neural_model_trains_privately_and_refuses_a_proximal_term():
    # Prepare
    split = walk_split()
    train = expand_prefixes(split.train[:40])
    settings = SessionDP(noise_multiplier=1.0, clip_norm=1.0, sample_rate=0.2)
    model = build_model(
        "gru4rec", n_items=split.n_items, epochs=2, private=SessionDPSGD(settings), **TINY_GRU
    )
    before = model.get_weights()
    losses: list[float] = []
    # Execute
    model.fit(train, on_epoch=lambda _, metrics: losses.append(metrics["loss"]))
    # Assert
    after = model.get_weights()
    assert len(losses) == 2 and all(loss > 0 for loss in losses)
    assert any((after[k] != before[k]).any() for k in before)
    with pytest.raises(ValueError, match="proximal_mu must be 0 with private training"):
        build_model("gru4rec", n_items=5, private=SessionDPSGD(settings), proximal_mu=0.1)
