"""What the console reads of each component, against the real stack: a rebuild in progress, dead
letters, a component that cannot answer; and the chart's history."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from outboxkit.console.sources import ConsoleSources, Thresholds
from outboxkit.console.state import History, Sample, sample_of
from outboxkit.examples.sites.events import SitesHistory, emit
from outboxkit.examples.sites.projection import build_projector
from outboxkit.kafka.settings import KafkaSettings
from projectors import ProjectorConfig
from projectors.rebuild import rebuild as rebuild_read_model
from relay.status import CdcStatusSource, RelayStatusSource
from tests.isolated import free_port
from tests.outboxkit.gateway.conftest import Gateway
from tests.processors.target import build
from tests.projectors.conftest import running, stored_total, wait_until


def sources(
    url: str,
    engine: Engine,
    bootstrap: str,
    projectors: list[Any],
    cdc: CdcStatusSource | None = None,
    processors: tuple[Any, ...] = (),
    kv_topics: tuple[str, ...] = (),
    gateways: tuple[str, ...] = (),
) -> ConsoleSources:
    return ConsoleSources(
        url,
        KafkaSettings(bootstrap_servers=bootstrap),
        engine,
        relay=RelayStatusSource(url, None, 1),
        cdc=cdc,
        projectors=projectors,
        processors=processors,
        kv_topics=kv_topics,
        gateways=gateways,
        thresholds=Thresholds(stuck_after=5, lag=50),
    )


def test_a_rebuild_in_progress_and_dead_letters_are_shown(
    database: tuple[str, Engine],
    bootstrap_servers: str,
    new_topic: Callable[..., str],
    unique: Callable[[str], str],
) -> None:
    url, engine = database
    topic = new_topic("console-rebuild")
    records = SitesHistory(seed=5).generate(200, sites=5)
    poison = (b"site-0", b"not an outboxkit event", [])  # no envelope headers: dead-lettered
    emit(bootstrap_servers, topic, [*records[:100], poison, *records[100:]])
    projector = build_projector(topic, name=unique("console"), config=ProjectorConfig(batch_size=20))
    with running(projector, engine, bootstrap_servers):
        wait_until(lambda: stored_total(engine, projector.name) == 201, what="201 records applied")
    console = sources(url, engine, bootstrap_servers, [projector])
    [part] = console.read()["projectors"]  # type: ignore[misc]
    assert part["total_lag"] == 0 and part["dead_letters"] == 1 and part["rebuild"] is None, part
    assert part["state"] == "warn" and part["summary"] == "0 behind, 1 dead-lettered"

    seen: list[Any] = []
    rebuild_read_model(
        projector, engine, bootstrap_servers, progress=lambda done, total: seen.append(console.read())
    )
    during = [s["projectors"][0]["rebuild"] for s in seen if s["projectors"][0]["rebuild"]]
    assert during, "no read showed the rebuild"
    percents = [r["percent"] for r in during]
    assert percents == sorted(percents) and 0 < percents[0] < 100 and during[-1]["total"] == 201, during
    [after] = console.read()["projectors"]  # type: ignore[misc]
    assert after["rebuild"] is None


def test_a_component_that_cannot_answer_shows_its_error_and_the_others_still_show(
    database: tuple[str, Engine], bootstrap_servers: str
) -> None:
    url, engine = database
    unreachable = CdcStatusSource(f"http://127.0.0.1:{free_port()}", url, "c", "s")
    snapshot = sources(url, engine, bootstrap_servers, [], cdc=unreachable).read()
    cdc = snapshot["cdc"]
    assert isinstance(cdc, dict) and cdc["state"] == "bad" and "127.0.0.1" in str(cdc["error"]), cdc
    relay = snapshot["relay"]
    assert isinstance(relay, dict) and relay["backlog"] == 0 and relay["state"] == "warn", relay
    assert relay["summary"] == "no relay running (nothing waits)"


def test_the_history_keeps_its_window_and_samples_read_what_the_chart_draws() -> None:
    history = History(window=10)
    for at in range(0, 30, 5):
        history.add(Sample(float(at), at, {"p": at * 2}))
    assert [s["at"] for s in history.to_json()] == [15.0, 20.0, 25.0]  # type: ignore[index]
    snapshot = {
        "at": 3.0,
        "relay": {"error": "cannot read"},
        "projectors": [{"projector": "a", "total_lag": 7}, {"state": "bad", "error": "x"}],
        "processors": [{"processor": "b", "total_lag": 2}],
    }
    assert sample_of(snapshot) == Sample(3.0, None, {"a": 7, "b": 2})  # type: ignore[arg-type]


def test_a_processor_behind_its_input_is_shown_lagging(
    database: tuple[str, Engine],
    bootstrap_servers: str,
    new_topic: Callable[..., str],
    unique: Callable[[str], str],
) -> None:
    url, engine = database
    topic = new_topic("console-processor", partitions=2)
    emit(bootstrap_servers, topic, SitesHistory(seed=8).generate(60, sites=6))
    processor = build(unique("console"), topic, unique("out"), unique("dlq"))
    [part] = sources(url, engine, bootstrap_servers, [], processors=(processor,)).read()["processors"]  # type: ignore[misc]
    assert part["processor"] == processor.name and part["total_lag"] == 60, part
    assert part["state"] == "bad" and part["summary"] == "60 behind" and part["hanging_transactions"] == 0


def test_kv_topics_show_whether_they_are_compacted_and_gateways_their_health(
    database: tuple[str, Engine], bootstrap_servers: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    url, engine = database
    compacted = new_topic("console-kv", partitions=2, config={"cleanup.policy": "compact"})
    plain = new_topic("console-not-kv")
    status = new_topic("console-gateway-status", partitions=1)
    gateway = Gateway(bootstrap_servers, status, tmp_path / "gateway.log").start()
    address = f"http://127.0.0.1:{gateway.metrics_port}"
    try:
        console = sources(
            url, engine, bootstrap_servers, [], kv_topics=(compacted, plain), gateways=(address,)
        )
        snapshot = console.read()
    finally:
        gateway.stop()
    good, bad = snapshot["kv"]  # type: ignore[misc]
    assert good["state"] == "ok" and good["summary"] == "0 records on 2 partition(s)", good
    assert bad["state"] == "bad" and "not compacted" in bad["summary"], bad
    [served] = snapshot["gateways"]  # type: ignore[misc]
    assert served["state"] == "ok" and served["connections"] == 0 and served["health"]["status"] == "ok", (
        served
    )
    [gone] = console.read()["gateways"]  # type: ignore[index]
    assert gone["state"] == "bad" and gone["summary"].endswith("cannot read"), gone
