"""Checkpoint after every completed round, and resume a campaign from the last one.

What makes resuming exact: the checkpoint holds the global weights *and* the strategy's own
state (FedAdam / FedYogi moments, FedAvgM momentum), and a resumed campaign numbers its rounds
from where the checkpoint left off, so partners derive the same per-round seeds and the strategy
the same bias corrections as in an uninterrupted run. Flower's ``DefaultWorkflow`` always counts
from 1; ``ResumedRounds`` shifts every round number the strategy sees, and
``CheckpointEachRound`` runs after each round's federated evaluation, the point where Flower's
workflow considers the round done.

The checkpoint is one file replaced atomically (written beside, renamed over), so a coordinator
killed at any instant leaves the previous round's checkpoint or this one, never a torn one; a
round killed before its checkpoint is simply run again. With a key it is encrypted and
authenticated at rest (``fedpath.privacy.crypto``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from flwr.server import Grid, LegacyContext
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key

from fedpath.durable import atomic_write
from fedpath.errors import DataFormatError
from fedpath.privacy.crypto import CHECKPOINT_KIND, decrypt_file, encrypt_file

CHECKPOINT = "checkpoint.npz"
META = "meta"


@dataclass(frozen=True)
class Checkpoint:
    """A campaign after its round ``round`` (0: nothing trained yet)."""

    campaign: str
    round: int
    rounds: int  # the campaign's planned number of rounds
    weights: list[np.ndarray]
    strategy_state: dict[str, list[np.ndarray]] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)  # one per completed round
    config_hash: str = ""

    @property
    def remaining(self) -> int:
        return self.rounds - self.round


class CheckpointStore:
    """The one checkpoint of a coordinator's state folder."""

    def __init__(self, root: Path, *, key: bytes | None = None) -> None:
        self.root = Path(root)
        self.key = key
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def path(self) -> Path:
        return self.root / CHECKPOINT

    def save(self, checkpoint: Checkpoint) -> Path:
        meta = {
            "campaign": checkpoint.campaign,
            "round": checkpoint.round,
            "rounds": checkpoint.rounds,
            "records": checkpoint.records,
            "config_hash": checkpoint.config_hash,
            "n_weights": len(checkpoint.weights),
            "state": {name: len(arrays) for name, arrays in checkpoint.strategy_state.items()},
        }
        arrays = {f"weights/{i:04d}": a for i, a in enumerate(checkpoint.weights)}
        for name, values in checkpoint.strategy_state.items():
            arrays.update({f"state/{name}/{i:04d}": a for i, a in enumerate(values)})
        arrays[META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        if self.key is None:
            return atomic_write(self.path, buffer.getvalue())
        return encrypt_file(self.path, buffer.getvalue(), self.key, kind=CHECKPOINT_KIND)

    def load(self) -> Checkpoint | None:
        """The last checkpoint, or None when this state folder has none yet."""
        if not self.path.is_file():
            return None
        data = (
            self.path.read_bytes()
            if self.key is None
            else decrypt_file(self.path, self.key, kind=CHECKPOINT_KIND)
        )
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                meta = json.loads(archive[META].tobytes())
                weights = [archive[f"weights/{i:04d}"] for i in range(meta["n_weights"])]
                state = {
                    name: [archive[f"state/{name}/{i:04d}"] for i in range(count)]
                    for name, count in meta["state"].items()
                }
        except (OSError, ValueError, KeyError) as error:
            raise DataFormatError(
                f"{self.path}: must be a fedpath checkpoint, got {error!r}"
            ) from None
        return Checkpoint(
            campaign=meta["campaign"],
            round=meta["round"],
            rounds=meta["rounds"],
            weights=weights,
            strategy_state=state,
            records=meta["records"],
            config_hash=meta["config_hash"],
        )


# Called with (round number as the campaign counts it, the global arrays after that round).
RoundDone = Callable[[int, list[np.ndarray]], None]


class CheckpointEachRound:
    """A ``DefaultWorkflow`` evaluate step: the given one, then ``on_round_done``."""

    def __init__(
        self,
        evaluate: Callable[[Grid, LegacyContext], None],
        offset: int,
        on_round_done: RoundDone,
    ) -> None:
        self.evaluate = evaluate
        self.offset = offset
        self.on_round_done = on_round_done

    def __call__(self, grid: Grid, context: LegacyContext) -> None:
        self.evaluate(grid, context)
        local_round = int(context.state.config_records[MAIN_CONFIGS_RECORD][Key.CURRENT_ROUND])
        arrays = context.state.array_records[MAIN_PARAMS_RECORD].to_numpy_ndarrays()
        self.on_round_done(local_round + self.offset, arrays)
