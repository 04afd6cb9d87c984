"""The ServerApp's view of the federation: the provisioned partners' nodes, and no one else.

Flower's legacy workflows (SecAgg+ included) sample from a client manager fed by
``grid.get_node_ids()``: every node connected to the SuperLink. A node whose key was registered
without being provisioned (by hand, or by an outsider before the Control API was closed to
other machines) would be sampled like a partner: it would receive the global model, and under
SecAgg+ its silence halts every round. The coordinator knows which node id each provisioned
partner was registered under (``node-ids.json``), so the grid the campaign runs on lists only
those; any other connected node is ignored, remembered, and logged once.

It also waits for replies itself. Flower's ``Grid.send_and_receive`` (``HttpGrid``) sleeps a
fixed 3 s between its pulls of the replies, and every stage of a SecAgg+ round and every
evaluation goes through it, so a round waited at least 3 s a stage for replies that had come
in a fraction of that. :meth:`PartnerGrid.send_and_receive` is the same loop on Flower's public
``push_messages`` / ``pull_messages``, pulling every ``REPLY_POLL_S``: one small request to
the SuperLink on the same machine, loopback in every deployment (the ServerApp runs beside it).
A reply listed before its arrays are uploaded is retried within tenths of a second
(``quicken_object_pulls``), not after Flower's 1-3 s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from flwr.common import Message
from flwr.server import Grid
from flwr.superlink.grid import http_grid

from fedpath.errors import FedpathError
from fedpath.federation.flower_env import quicken_object_pulls

log = logging.getLogger(__name__)

REPLY_POLL_S = 0.1  # seconds between pulls of the replies (Flower's own grid waits 3 s)


class PartnerGrid:
    """Forwards everything to the real ``Grid``, restricted to the ``partners`` node ids."""

    def __init__(self, grid: Grid, partners: Iterable[int]) -> None:
        quicken_object_pulls(http_grid)
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
        """Push ``messages``; pull their replies every ``REPLY_POLL_S`` until all are in or
        ``timeout`` seconds have passed (None: no limit), as Flower's grid does (module doc)."""
        waiting = set(self._grid.push_messages(self._only_partners(messages)))
        deadline = None if timeout is None else time.monotonic() + timeout
        replies: list[Message] = []
        while waiting:
            pulled = list(self._grid.pull_messages(waiting))
            replies.extend(pulled)
            waiting -= {reply.metadata.reply_to_message_id for reply in pulled}
            if not waiting or (deadline is not None and time.monotonic() >= deadline):
                break
            time.sleep(REPLY_POLL_S)
        return replies

    def _only_partners(self, messages: Iterable[Message]) -> list[Message]:
        sent = list(messages)
        for message in sent:
            if message.metadata.dst_node_id not in self.partners:
                raise FedpathError(
                    f"a message must go to a provisioned partner's node "
                    f"{sorted(self.partners)}, got one for node {message.metadata.dst_node_id}"
                )
        return sent
