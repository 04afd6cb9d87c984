"""Session-level DP-SGD for the neural models: one session, not one prefix, is the unit.

Each step samples every session independently with probability ``q`` (Poisson sampling, what
the accountant assumes), computes each sampled session's gradient (its prefixes' mean loss),
clips it to ``clip_norm`` and adds it to a running sum; then it adds Gaussian noise of std
``noise_multiplier * clip_norm`` to the sum, divides by the expected number of sessions
``q * n`` (as Opacus's ``DPOptimizer`` does) and lets the wrapped optimizer step on that.

Why a running sum, not Opacus's ``DPOptimizer``: that optimizer clips a stack of per-sample
gradients ``[samples, *p.shape]``, so a step holds every sampled session's whole gradient at
once. A partner of full Diginetica samples ~4,200 sessions a step at ``q = 0.25``, each with a
gradient over the 43k x 64 item table: about 48 GB. Clipping each session's gradient as soon as
it exists keeps a step's memory at a few copies of the parameters, whatever ``q * n`` is.

Why one backward pass per sampled session (the "microbatch of one" of Abadi et al. 2016) rather
than per-sample gradients from Opacus's ``GradSampleModule`` hooks or ``torch.func``: the hooks
derive one gradient per input *row*, and a session is many rows (every prefix is a training
case), so they would protect a prefix, not a session; they also miss the tied item head (the
item embedding reused as the output layer outside any module). ``torch.func.vmap`` over a chunk
of sessions fails on ``nn.GRU`` on CPU (torch 2.13: the GRU kernel writes into an unbatched
output), and the models' loss branches on its data (which heads have labels), which vmap cannot
trace. The loop is exact for any encoder; parameters a session does not reach get no gradient
tensor at all (no dense zeros). A parameter may hand in a sparse gradient (an embedding with
``sparse=True``): it is clipped by the norm of its rows and added row by row, so a session that
reads ~2k of 43k item rows costs ~2k rows, not the table (the models switch their item table to
sparse gradients while a private epoch runs: on full Diginetica a session's step went from
15.7 to 7.6 ms, profiled; ``benchmarks/dp_scale.py`` measures the epoch).

The sampling and the noise draw from a generator seeded from the operating system, never from
the run's seed: a coordinator that knows the seed must not be able to replay and subtract them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import torch
from torch import nn

from fedpath.privacy.dp.config import SessionDP

# Added to a gradient's norm before dividing by it, as Opacus does: a zero gradient stays zero.
NORM_EPSILON = 1e-6


class SessionDPSGD:
    """DP-SGD over sessions (module doc); implements ``fedpath.models.neural.PrivateTraining``."""

    def __init__(self, settings: SessionDP) -> None:
        self.settings = settings
        self._generator = torch.Generator().manual_seed(secrets.randbits(63))

    def epoch(
        self,
        network: nn.Module,
        sessions: torch.Tensor,
        loss_of: Callable[[torch.Tensor], torch.Tensor],
        optimizer: torch.optim.Optimizer,
    ) -> float:
        """One epoch of private steps; returns the mean loss of the sessions they sampled."""
        _, owner = torch.unique(sessions, return_inverse=True)  # [cases] 0..n_sessions-1
        rows = list(torch.argsort(owner, stable=True).split(torch.bincount(owner).tolist()))
        params = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
        rate, std = (
            self.settings.sample_rate,
            self.settings.noise_multiplier * self.settings.clip_norm,
        )
        expected_sessions = rate * len(rows)
        losses: list[float] = []
        for _ in range(self.settings.steps_per_epoch):
            chosen = torch.nonzero(torch.rand(len(rows), generator=self._generator) < rate)
            optimizer.zero_grad(set_to_none=True)  # the last step's gradient is not kept alive
            total, step_losses = self.clipped_sum(
                params, [rows[s] for s in chosen.flatten()], loss_of
            )
            for param, summed in zip(params, total, strict=True):
                summed.add_(torch.normal(0.0, std, summed.shape, generator=self._generator))
                param.grad = summed.div_(expected_sessions)
            optimizer.step()
            losses += step_losses
        return sum(losses) / max(len(losses), 1)

    def clipped_sum(
        self,
        params: list[nn.Parameter],
        batch: list[torch.Tensor],
        loss_of: Callable[[torch.Tensor], torch.Tensor],
    ) -> tuple[list[torch.Tensor], list[float]]:
        """The sum over ``batch`` (each session's rows) of each session's gradient clipped to
        ``clip_norm`` in L2 over all ``params``, one tensor per parameter, and each session's
        loss: the step's gradient before noise, one session's gradient alive at a time."""
        clip = self.settings.clip_norm
        total = [torch.zeros_like(p) for p in params]
        losses = []
        for session_rows in batch:
            loss = loss_of(session_rows)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            # Duplicate rows of a sparse gradient are summed first: its norm is the sum's.
            reached = [
                (t, g.coalesce() if g.is_sparse else g)
                for t, g in zip(total, grads, strict=True)
                if g is not None
            ]
            norm = float(
                nn.utils.get_total_norm([g.values() if g.is_sparse else g for _, g in reached])
            )
            scale = min(1.0, clip / (norm + NORM_EPSILON))
            dense = [(t, g) for t, g in reached if not g.is_sparse]
            if dense:
                torch._foreach_add_(*map(list, zip(*dense, strict=True)), alpha=scale)
            for t, g in reached:
                if g.is_sparse:
                    t.index_add_(0, g.indices()[0], g.values(), alpha=scale)
            losses.append(float(loss.detach()))
        return total, losses
