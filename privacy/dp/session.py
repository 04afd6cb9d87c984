"""Session-level DP-SGD for the neural models: one session, not one prefix, is the unit.

Each step samples every session independently with probability ``q`` (Poisson sampling, what
the accountant assumes), computes each sampled session's gradient (its prefixes' mean loss),
and hands those per-session gradients to Opacus's ``DPOptimizer``, which clips each to
``clip_norm``, adds Gaussian noise of std ``noise_multiplier * clip_norm`` to their sum and
divides by the expected number of sessions ``q * n`` before the wrapped optimizer steps.

Why fedpath computes the per-session gradients itself rather than with Opacus's
``GradSampleModule``: Opacus derives one gradient per input *row* from layer hooks, and a
session is many rows (every prefix is a training case), so it would clip prefixes and protect a
prefix, not a session; its hooks also miss the tied item head (the item embedding reused as the
output layer outside any module). One backward pass per sampled session (the "microbatch of one"
of Abadi et al. 2016) is exact for any encoder, GRUs included, at the price of speed.

The sampling and the noise draw from a generator seeded from the operating system, never from
the run's seed: a coordinator that knows the seed must not be able to replay and subtract them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import torch
from opacus.optimizers import DPOptimizer
from torch import nn

from fedpath.privacy.dp.config import SessionDP


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
        rate = self.settings.sample_rate
        private = DPOptimizer(
            optimizer,
            noise_multiplier=self.settings.noise_multiplier,
            max_grad_norm=self.settings.clip_norm,
            expected_batch_size=rate * len(rows),
            generator=self._generator,
        )
        losses: list[float] = []
        for _ in range(self.settings.steps_per_epoch):
            chosen = torch.nonzero(torch.rand(len(rows), generator=self._generator) < rate)
            private.zero_grad()
            losses += self.per_session_gradients(
                private.params, [rows[s] for s in chosen.flatten()], loss_of
            )
            private.step()
        return sum(losses) / max(len(losses), 1)

    @staticmethod
    def per_session_gradients(
        params: list[nn.Parameter],
        batch: list[torch.Tensor],
        loss_of: Callable[[torch.Tensor], torch.Tensor],
    ) -> list[float]:
        """Set ``p.grad_sample`` ``[sessions, *p.shape]`` (what ``DPOptimizer`` clips) for every
        parameter, one backward pass per session; returns each session's loss."""
        grads: list[list[torch.Tensor]] = [[] for _ in params]
        losses = []
        for session_rows in batch:
            loss = loss_of(session_rows)
            session_grads = torch.autograd.grad(
                loss, params, allow_unused=True, materialize_grads=True
            )
            for store, grad in zip(grads, session_grads, strict=True):
                store.append(grad)
            losses.append(float(loss.detach()))
        for param, store in zip(params, grads, strict=True):
            param.grad_sample = torch.stack(store) if store else param.new_zeros((0, *param.shape))
        return losses
