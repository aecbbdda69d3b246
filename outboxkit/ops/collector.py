"""Python's cycle collector and a long-running consumer loop.

A full (oldest-generation) collection scans every tracked object of the process: after the imports
of a daemon (SQLAlchemy, confluent-kafka, the toolkit) that is ~100k objects and ~50 ms on this
project's 2-core machine, during which no thread runs Python, the consuming loop included. The
loop's own garbage dies young, yet a full collection still came every ~10 s at 1,000 events/s
(it runs once the objects that survived younger collections reach a quarter of the long-lived
ones), so it was a fixed part of a processor's p99 latency.

`gc.freeze()` moves every object alive at the loop's start into a permanent generation that no
collection scans; those objects are still freed by reference counting when they are dropped. The
cost: a reference cycle among them that becomes garbage later is never collected (a leak of what
the start-up made, not of what the loop makes). Freezing is process-wide, so, as the relay's
`tune_gc()`, it is done by the daemon's command (`outbox processor run`), not by the library: a
service that embeds a runner keeps its own collector, and may call this itself before the loop.
"""

from __future__ import annotations

import gc


def freeze_alive_objects() -> int:
    """Collect what is garbage now, then keep every object alive from the collector's scans (see
    the module's docstring); returns how many objects are frozen in all."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
