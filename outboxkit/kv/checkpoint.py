"""Whether a disk store's checkpoint can be trusted, and where a reader starts.

A checkpoint names a topic (by Kafka's topic id), the next offset of every partition, and when the
store was last in step with the topic (`saved_at`: the last moment the reader had read everything
there was). Reading on from it is only right if every record past those offsets is still in the
log. Three things break that, and each makes the reader rebuild from the topic's start:

- the topic was deleted and made again (another topic id), or lost partitions;
- an offset lies outside the log: above its end (recreated or truncated) or below its start
  (records deleted by retention or DeleteRecords);
- the checkpoint is older than the topic's `delete.retention.ms`: a tombstone written after it may
  have been compacted away already, and its key would come back from the store.

Why `saved_at` is "last in step", not "last written": a record past the checkpoint was written
after the moment the reader had read everything, so its tombstone lives at least
delete.retention.ms from then. A store written while catching up keeps the older moment; the
reader takes a margin off each moment (follow.IN_STEP_MARGIN) for records in flight.
"""

from __future__ import annotations

from collections.abc import Mapping

from outboxkit.kv.stores.base import Checkpoint

DEFAULT_DELETE_RETENTION_MS = 86_400_000
"""Kafka's default delete.retention.ms (one day), used when the topic's setting cannot be read."""


def distrust(
    checkpoint: Checkpoint,
    *,
    topic_id: str | None,
    bounds: Mapping[int, tuple[int, int]],
    delete_retention_ms: int,
    now: float,
) -> str | None:
    """Why `checkpoint` cannot be read on from (one sentence for the log), or None if it can.

    `bounds`: partition -> (log start offset, end offset) as read now."""
    if checkpoint.topic_id is not None and topic_id is not None and checkpoint.topic_id != topic_id:
        return (
            f"the topic was deleted and made again (its id is {topic_id}, the checkpoint's"
            f" {checkpoint.topic_id})"
        )
    for partition, position in sorted(checkpoint.positions.items()):
        if partition not in bounds:
            return f"partition {partition} of the checkpoint no longer exists (the topic has {len(bounds)})"
        low, high = bounds[partition]
        if position > high:
            return (
                f"partition {partition}: the checkpoint is at offset {position}, beyond the log's end"
                f" {high} (the topic was made again or truncated)"
            )
        if position < low:
            return (
                f"partition {partition}: the checkpoint is at offset {position}, below the log's start"
                f" {low} (records it never read were deleted)"
            )
    age = now - checkpoint.saved_at
    if age * 1000 > delete_retention_ms:
        return (
            f"the checkpoint is {age:.0f} s old, older than the topic's delete.retention.ms"
            f" ({delete_retention_ms / 1000:g} s): tombstones since then may be gone, and deleted keys"
            " would come back"
        )
    return None


def retention_of(config: Mapping[str, str]) -> int:
    """The topic's delete.retention.ms."""
    try:
        return int(config.get("delete.retention.ms", DEFAULT_DELETE_RETENTION_MS))
    except ValueError:
        return DEFAULT_DELETE_RETENTION_MS
