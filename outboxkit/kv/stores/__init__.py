"""Where a KV reader keeps its data: one port (`base.Store`), one module per backend."""

from outboxkit.kv.stores.base import Checkpoint, Store, Versioned
from outboxkit.kv.stores.memory import MemoryStore

__all__ = ["Checkpoint", "MemoryStore", "Store", "Versioned"]
