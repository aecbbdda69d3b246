"""0-latency KV store on compacted Kafka topics (DESIGN.md, "KV store").

- `KVWriter` puts and deletes (tombstones) keys on a compacted topic, each returning its version;
- `KVStore` loads the topic into a local store (`stores.MemoryStore`, or a disk store) and follows
  it: reads are local lookups;
- `stores`: the port every backend implements, one module per backend.
"""

from outbox.event import TOMBSTONE
from outboxkit.kv.reader import KVStore
from outboxkit.kv.stores import Checkpoint, MemoryStore, Store, Versioned
from outboxkit.kv.topic import CompactionSettings
from outboxkit.kv.writer import KVWriter

__all__ = [
    "TOMBSTONE",
    "Checkpoint",
    "CompactionSettings",
    "KVStore",
    "KVWriter",
    "MemoryStore",
    "Store",
    "Versioned",
]
