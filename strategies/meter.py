"""Bytes each round puts on the wire, counted on the server's side of every message.

Counted at the ``Grid`` rather than from the weights: under SecAgg+ what partners upload is not
their weights but masked integer vectors, public keys and key shares, and only the messages
themselves say how large those are. A message belongs to the round in its ``group_id`` (Flower's
legacy workflows, SecAgg+ included, set it to the round number; a reply copies it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from flwr.common import Message
from flwr.server import Grid


def payload_bytes(message: Message) -> int:
    """The arrays' bytes plus every bytes value of its configs (masked vectors, keys, shares).

    Scalars (metrics, round numbers) are left out: a few bytes each, and nothing to optimise.
    """
    if not message.has_content():
        return 0
    content = message.content
    total = sum(
        len(array.data) for record in content.array_records.values() for array in record.values()
    )
    for record in content.config_records.values():
        for value in record.values():
            values = value if isinstance(value, list) else [value]
            total += sum(len(v) for v in values if isinstance(v, bytes))
    return total


class ByteMeter:
    """Bytes the server sent (``down``) and received (``up``) per round number."""

    def __init__(self) -> None:
        self.up: Counter[int] = Counter()
        self.down: Counter[int] = Counter()

    def count(self, messages: Iterable[Message], direction: Counter[int]) -> None:
        for message in messages:
            group = message.metadata.group_id
            if group.isdigit():
                direction[int(group)] += payload_bytes(message)

    def wrap(self, grid: Grid) -> Grid:
        """``grid`` with every ``send_and_receive`` counted."""
        return _MeteredGrid(grid, self)  # type: ignore[return-value]


class _MeteredGrid:
    """Forwards everything to the real ``Grid``; counts what ``send_and_receive`` carries."""

    def __init__(self, grid: Grid, meter: ByteMeter) -> None:
        self._grid = grid
        self._meter = meter

    def __getattr__(self, name: str) -> object:
        return getattr(self._grid, name)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        sent = list(messages)
        self._meter.count(sent, self._meter.down)
        replies = list(self._grid.send_and_receive(sent, timeout=timeout))
        self._meter.count(replies, self._meter.up)
        return replies
