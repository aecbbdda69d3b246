"""The port every KV store backend implements (memory, disk), and what it holds.

Contract of a `Store`:
- One thread writes: the reader's follow thread calls `apply`, `reset` and `close`.
- Any thread reads (`get`, `len`, `items`, `size_bytes`) concurrently with that writer, and sees
  every `apply` whole or not at all; `items()` is one consistent snapshot.
- `apply(changes, checkpoint)` makes the changes and the checkpoint (the positions they bring the
  store to) take effect in one atomic step; a durable store writes them in one transaction, so
  after a crash its `checkpoint()` names exactly the records its data reflects.
- `checkpoint()` is None for a store that keeps nothing across restarts (it is loaded from the
  start of the topic every time).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class Versioned(NamedTuple):
    """A value with its version: the record that set it (what readers get)."""

    value: Any
    partition: int
    offset: int
    timestamp: int
    """The record's Kafka timestamp, milliseconds since the epoch."""
    size: int = 0
    """Bytes of key and value as they came from Kafka (for the store's byte count)."""

    @property
    def version(self) -> tuple[int, int]:
        return (self.partition, self.offset)


@dataclass(frozen=True)
class Checkpoint:
    """How far a store's data reaches in its topic."""

    topic_id: str | None
    """Kafka's id of the topic the data came from (a topic made again under its name has another)."""
    positions: Mapping[int, int] = field(default_factory=dict)
    """partition -> next offset to read (every record below it is applied)."""
    saved_at: float = 0.0
    """When the store was last known to be in step with the topic (seconds since the epoch)."""


Entry = bytes
"""What stores are given and keep per key: a packed entry (header and value bytes, `entry.py`)."""

Change = tuple[str, Entry | None]
"""A key and its new entry; None deletes it."""


@dataclass
class Changes:
    """A batch's changes in record order, as two lists of the same length: `entries[i]` is the new
    entry of `keys[i]` (None deletes it). Not a list of pairs: a load makes a million of them, and
    each pair would be one more object to allocate and for the garbage collector to count."""

    keys: list[str] = field(default_factory=list)
    entries: list[Entry | None] = field(default_factory=list)

    @classmethod
    def of(cls, pairs: Iterable[Change]) -> Changes:
        changes = cls()
        for key, entry in pairs:
            changes.keys.append(key)
            changes.entries.append(entry)
        return changes

    def __iter__(self) -> Iterator[Change]:
        return zip(self.keys, self.entries, strict=True)

    def __len__(self) -> int:
        return len(self.keys)


class Store(ABC):
    """A KV reader's keys and values (see the module's contract)."""

    batch_size = 5000
    """Records per `apply` the reader aims at (the most one consume hands over), unless told."""

    @abstractmethod
    def get(self, key: str) -> Versioned | None: ...

    def value(self, key: str, default: Any = None) -> Any:
        """The key's value, or `default` (a backend may answer faster than through `get`)."""
        found = self.get(key)
        return default if found is None else found.value

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def items(self) -> list[tuple[str, Versioned]]:
        """A consistent snapshot of every key, in no particular order."""

    @abstractmethod
    def apply(self, changes: Changes, checkpoint: Checkpoint) -> None:
        """Apply `changes` in order and move the checkpoint, in one atomic step."""

    @abstractmethod
    def checkpoint(self) -> Checkpoint | None:
        """Where the kept data reaches; None when the store keeps nothing across restarts."""

    @abstractmethod
    def reset(self) -> None:
        """Forget every key and the checkpoint (the store is rebuilt from the topic's start)."""

    @abstractmethod
    def size_bytes(self) -> int:
        """Bytes of keys and values held (as they came from Kafka)."""

    def close(self) -> None:  # noqa: B027 - optional: most backends hold nothing to release
        """Release files and handles (nothing for the memory store)."""

    def describe(self) -> Mapping[str, Any]:
        """The backend's name and settings, for status pages."""
        return {"backend": type(self).__name__}
