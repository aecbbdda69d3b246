"""The KV store example (the talk's case): a configuration owner writes site configuration, through
its outbox, to a compacted topic (`owner`); a pages service reads it with `get()` on every request
from a local KVStore, never calling the owner (`pages`). `demo` runs both for `outbox demo`."""
