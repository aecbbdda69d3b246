"""`outbox kv ...`: look into and change a KV store's compacted topic (operators' commands).

`get` and `dump` read a disk store when given `--disk PATH` (opened read-only, so a running reader
may keep writing it), else they load the topic into memory first (the whole topic: fine for the
small data sets KV stores hold, slow for a large one).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import orjson

from outbox.errors import OutboxError
from outboxkit.cli.progress import Progress
from outboxkit.cli.settings import CONFIG, CommandGroup, CommandSettings

DISK = click.option(
    "--disk",
    type=click.Path(file_okay=False, path_type=Path),
    help="Read this disk store (read-only) instead of loading the topic.",
)


def shown(value: Any) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return "0x" + value.hex()
    return orjson.dumps(value).decode()


@contextmanager
def opened(ctx: click.Context, topic: str, disk: Path | None) -> Iterator[Any]:
    """A store to read: the disk store at `disk`, or the topic loaded into memory."""
    from outboxkit.kv import KVStore
    from outboxkit.kv.stores.disk import DiskStore

    if disk is not None:
        store = DiskStore(disk, read_only=True, cache_size=0)
        try:
            yield store
        finally:
            store.close()
        return
    with Progress(f"loading {topic}", 0) as progress:  # on stderr: stdout is the answer
        reader = KVStore(topic, kafka=CommandSettings(ctx).kafka, on_progress=progress.update).start()
        try:
            reader.wait_ready(300)
        except BaseException:
            reader.stop()
            raise
    try:
        yield reader.store
    finally:
        reader.stop()


def writer_of(ctx: click.Context, topic: str) -> Any:
    from outboxkit.kv import KVWriter

    return KVWriter(topic, kafka=CommandSettings(ctx).kafka, create=False)


@click.group("kv", cls=CommandGroup)
@CONFIG
def kv() -> None:
    """Look into and change KV stores on compacted topics."""


@kv.command()
@click.argument("topic")
@DISK
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=5.0, help="Seconds per Kafka request (5).")
@click.pass_context
def status(ctx: click.Context, topic: str, disk: Path | None, as_json: bool, timeout: float) -> None:
    """The topic's partitions and compaction settings; with --disk, the disk store's keys, lag and
    whether a restart would read on from its checkpoint. Exit status 1 when Kafka is unreachable
    (what is known locally is printed, with the reason)."""
    from outboxkit.kv.status import KVStatusSource
    from outboxkit.kv.stores.disk import DiskStore

    store = DiskStore(disk, read_only=True, cache_size=0) if disk is not None else None
    try:
        now = KVStatusSource(topic, CommandSettings(ctx).kafka, store=store).read(timeout)
    finally:
        if store is not None:
            store.close()
    if as_json:
        click.echo(orjson.dumps(now.to_json()).decode())
    else:
        click.echo(now.line())
        click.echo(f"{'partition':>9} {'low':>12} {'high':>12} {'position':>12} {'lag':>10}")
        for row in now.partitions:
            low, position, lag = ("-" if n is None else str(n) for n in (row.low, row.position, row.lag))
            click.echo(f"{row.partition:>9} {low:>12} {row.high:>12} {position:>12} {lag:>10}")
    if now.kafka_problem is not None:
        ctx.exit(1)  # the status is printed; scripts see that Kafka could not be asked


@kv.command()
@click.argument("topic")
@click.argument("key")
@DISK
@click.pass_context
def get(ctx: click.Context, topic: str, key: str, disk: Path | None) -> None:
    """Print KEY's value and version; exit status 1 when it is absent."""
    with opened(ctx, topic, disk) as store:
        found = store.get(key)
    if found is None:
        raise click.ClickException(f"no key {key!r} in {topic}")
    click.echo(shown(found.value))
    click.echo(f"version {found.partition}@{found.offset}, timestamp {found.timestamp}", err=True)


@kv.command()
@click.argument("topic")
@click.argument("key")
@click.argument("value")
@click.option("--text", is_flag=True, help="Send VALUE as UTF-8 bytes, not as JSON.")
@click.pass_context
def put(ctx: click.Context, topic: str, key: str, value: str, text: bool) -> None:
    """Set KEY to VALUE (JSON, e.g. '{"theme": "dark"}' or '"a string"'); prints the version."""
    payload: Any
    if text:
        payload = value.encode()
    else:
        try:
            payload = orjson.loads(value)
        except orjson.JSONDecodeError as err:
            raise click.BadParameter(
                f"{value!r} is not JSON ({err}); quote a string as '\"text\"' or pass --text",
                param_hint="VALUE",
            ) from err
    try:
        partition, offset = writer_of(ctx, topic).put(key, payload)
    except OutboxError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"{partition}@{offset}")


@kv.command()
@click.argument("topic")
@click.argument("key")
@click.pass_context
def delete(ctx: click.Context, topic: str, key: str) -> None:
    """Delete KEY (a tombstone); prints the version."""
    try:
        partition, offset = writer_of(ctx, topic).delete(key)
    except OutboxError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"{partition}@{offset}")


@kv.command()
@click.argument("topic")
@DISK
@click.pass_context
def dump(ctx: click.Context, topic: str, disk: Path | None) -> None:
    """Every key as a JSON line {key, value, partition, offset, timestamp}, sorted by key (bytes
    values that are not UTF-8 are written as 0x-hex)."""
    with opened(ctx, topic, disk) as store:
        entries = sorted(store.items())
    for key, entry in entries:
        value = shown(entry.value) if isinstance(entry.value, bytes) else entry.value
        line = {"key": key, "value": value, "partition": entry.partition, "offset": entry.offset}
        click.echo(orjson.dumps({**line, "timestamp": entry.timestamp}).decode())
