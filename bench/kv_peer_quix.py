"""The peer of bench/kv_store.py: Quix Streams reading the same compacted topic into its state
(RocksDB, one entry per message key), timed until it has applied `--records` records. Its state
serializes values as JSON, so the bytes are stored as latin-1 text (one cheap decode each).

Runs in the benchmark's own virtualenv, never with the toolkit's dependencies:

    python -m venv .venv-peers && .venv-peers/bin/pip install quixstreams
    .venv-peers/bin/python bench/kv_peer_quix.py --topic T --records N --bootstrap-servers HOST:PORT

Prints one JSON line: {"peer", "records", "seconds", "records_per_second"}, timed from the first
record to the last (its consumer group join and start are left out, which favours the peer: the
toolkit's figures include its start). bench/kv_store.py
runs it on its own topic with --peer-python.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid

from quixstreams import Application, State


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--topic", required=True)
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--bootstrap-servers", required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state_dir:
        app = Application(
            broker_address=args.bootstrap_servers,
            consumer_group=f"bench-peer-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            state_dir=state_dir,
            use_changelog_topics=False,
            auto_create_topics=False,
        )
        topic = app.topic(args.topic, key_deserializer="str", value_deserializer="bytes")
        applied = 0
        started = finished = 0.0

        def keep(value: bytes, state: State) -> None:
            nonlocal applied, started, finished
            if not applied:
                started = time.perf_counter()  # from the first record: its group join is left out
            state.set("value", value.decode("latin-1"))  # its state stores JSON: bytes as text
            applied += 1
            if applied == args.records:
                finished = time.perf_counter()
                app.stop()

        app.dataframe(topic).update(keep, stateful=True)
        app.run()
        seconds = (finished or time.perf_counter()) - started
    print(
        json.dumps(
            {
                "peer": "quixstreams",
                "records": applied,
                "seconds": round(seconds, 2),
                "records_per_second": round(applied / seconds),
            }
        )
    )


if __name__ == "__main__":
    main()
