"""The peer of bench/processor_throughput.py: Quix Streams running the same 1 KB JSON transform
(parse, add the total of `items`, produce to the output topic) in exactly-once mode, its
checkpoints (Kafka transactions) every `--commit-interval` seconds.

Runs in the benchmark's own virtualenv, never with the toolkit's dependencies:

    python -m venv .venv-peers && .venv-peers/bin/pip install quixstreams
    .venv-peers/bin/python bench/processor_peer_quix.py --input T --output U --group G \
        --bootstrap-servers HOST:PORT [--commit-interval 0.1]

Prints `started` once its application is made (imports done), just before it joins the group;
bench/processor_throughput.py starts its clock then and stops it when the group's committed
offsets reach the end of the input, as it does for the toolkit's processor. It stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from typing import Any

from quixstreams import Application


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--commit-interval", type=float, default=0.1)
    args = parser.parse_args()
    state = tempfile.TemporaryDirectory(prefix="quix-state-")  # not ./state in the caller's directory
    app = Application(
        state_dir=state.name,
        broker_address=args.bootstrap_servers,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        commit_interval=args.commit_interval,
        use_changelog_topics=False,
        auto_create_topics=False,
    )
    source = app.topic(args.input, key_deserializer="str", value_deserializer="json")
    output = app.topic(args.output, key_serializer="str", value_serializer="json")

    def transform(value: dict[str, Any]) -> dict[str, Any]:
        data = dict(value)
        data["total"] = sum(data["items"])
        return data

    app.dataframe(source).apply(transform).to_topic(output)
    signal.signal(signal.SIGTERM, lambda *_: app.stop())
    print("started", flush=True)
    app.run()
    sys.exit(0)


if __name__ == "__main__":
    main()
