"""The `outbox` command line and the demo: the layer on top of outbox, relay and projectors."""
