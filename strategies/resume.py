"""Resuming a strategy: its round numbering and the state it carries from round to round.

A resumed campaign must number its rounds from where its checkpoint left off (partners derive
per-round seeds from it, FedAdam / FedYogi their bias corrections) and give the strategy back its
moments; Flower's ``DefaultWorkflow`` always counts from 1, so ``ResumedRounds`` shifts every
round number the strategy sees.
"""

from __future__ import annotations

import numpy as np
from flwr.server.strategy import Strategy

from fedpath.errors import DataFormatError
from fedpath.strategies.wrapper import StrategyWrapper


def strategy_state(strategy: Strategy) -> dict[str, list[np.ndarray]]:
    """The arrays a Flower strategy carries from round to round (optimizer moments, momentum).

    Read generically (every attribute holding a list of arrays) rather than per class, so a
    strategy whose state is in such attributes is covered without fedpath knowing its name.
    """
    return {
        name: [np.array(a) for a in value]
        for name, value in vars(strategy).items()
        if isinstance(value, list) and value and all(isinstance(a, np.ndarray) for a in value)
    }


def restore_strategy_state(strategy: Strategy, state: dict[str, list[np.ndarray]]) -> None:
    for name, arrays in state.items():
        if not hasattr(strategy, name):
            raise DataFormatError(
                f"checkpoint strategy state {name!r} must be an attribute of "
                f"{type(strategy).__name__}, got none (was the strategy changed?)"
            )
        setattr(strategy, name, [np.array(a) for a in arrays])


class ResumedRounds(StrategyWrapper):
    """``strategy`` as if its rounds were numbered from ``offset + 1`` on."""

    def __init__(self, strategy: Strategy, offset: int) -> None:
        super().__init__(strategy)
        self.offset = offset

    def __repr__(self) -> str:
        return f"ResumedRounds({self.strategy!r}, offset={self.offset})"

    def inner_round(self, server_round: int) -> int:
        return server_round + self.offset
