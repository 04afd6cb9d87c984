"""The ServerApp's view of the federation: the provisioned partners' nodes, and no one else.

Flower's legacy workflows (SecAgg+ included) sample from a client manager fed by
``grid.get_node_ids()``: every node connected to the SuperLink. A node whose key was registered
without being provisioned (by hand, or by an outsider before the Control API was closed to
other machines) would be sampled like a partner: it would receive the global model, and under
SecAgg+ its silence halts every round. The coordinator knows which node id each provisioned
partner was registered under (``node-ids.json``), so the grid the campaign runs on lists only
those; any other connected node is ignored, remembered, and logged once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from flwr.common import Message
from flwr.server import Grid

from fedpath.errors import FedpathError

log = logging.getLogger(__name__)


class PartnerGrid:
    """Forwards everything to the real ``Grid``, restricted to the ``partners`` node ids."""

    def __init__(self, grid: Grid, partners: Iterable[int]) -> None:
        self._grid = grid
        self.partners = frozenset(partners)
        self._unknown: set[int] = set()
        self._lock = threading.Lock()  # the workflows also call get_node_ids from a thread

    def __getattr__(self, name: str) -> object:
        return getattr(self._grid, name)

    @property
    def unknown(self) -> list[int]:
        """Connected nodes seen so far that are no provisioned partner's, sorted."""
        with self._lock:
            return sorted(self._unknown)

    def get_node_ids(self) -> list[int]:
        connected = set(self._grid.get_node_ids())
        with self._lock:
            new = connected - self.partners - self._unknown
            self._unknown |= new
        for node_id in sorted(new):
            log.warning(
                "node %d is connected but is no provisioned partner's: it is never sampled",
                node_id,
                extra={"event": "unknown_node", "node_id": node_id},
            )
        return sorted(connected & self.partners)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        sent = self._only_partners(messages)
        return self._grid.push_messages(sent)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        sent = self._only_partners(messages)
        return self._grid.send_and_receive(sent, timeout=timeout)

    def _only_partners(self, messages: Iterable[Message]) -> list[Message]:
        sent = list(messages)
        for message in sent:
            if message.metadata.dst_node_id not in self.partners:
                raise FedpathError(
                    f"a message must go to a provisioned partner's node "
                    f"{sorted(self.partners)}, got one for node {message.metadata.dst_node_id}"
                )
        return sent
