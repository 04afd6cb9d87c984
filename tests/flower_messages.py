"""Flower messages built by hand, for tests that feed one to a mod or a meter outside a run
(not collected itself): outside a run nothing fills the metadata, so it is given here."""

from __future__ import annotations

from flwr.app import Message, MessageType, Metadata, RecordDict


def message(
    message_type: str = MessageType.TRAIN, content: RecordDict | None = None, *, group: str = "1"
) -> Message:
    """A message from node 0 to node 1 in run 1; ``group`` is the round number as text."""
    metadata = Metadata(
        run_id=1,
        message_id="m",
        src_node_id=0,
        dst_node_id=1,
        reply_to_message_id="",
        group_id=group,
        created_at=0.0,
        ttl=60.0,
        message_type=message_type,
    )
    return Message(content=content or RecordDict(), metadata=metadata)
