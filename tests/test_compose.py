"""docker-compose.yml cannot run here (no Docker engine), so check that it parses and agrees with stack/."""

from __future__ import annotations

import json
import posixpath
import re
import shlex
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "stack"))

from stacklib.connect import Connect  # noqa: E402
from stacklib.kafka import Kafka  # noqa: E402
from stacklib.settings import Settings  # noqa: E402


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings.from_environment({"OUTBOX_STACK_DIR": str(tmp_path_factory.mktemp("state"))})


def pom_version(name: str, prop: str) -> str:
    pom = (REPO / "stack" / "maven" / name / "pom.xml").read_text()
    match = re.search(rf"<{prop}>([^<]+)</{prop}>", pom)
    assert match, f"{prop} not in {name}/pom.xml"
    return match.group(1)


Instruction = tuple[str, str]


def dockerfile_stages() -> list[list[Instruction]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), one list per FROM."""
    stages: list[list[Instruction]] = []
    for line in (REPO / "Dockerfile").read_text().replace("\\\n", " ").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, args = line.strip().partition(" ")
            if keyword.upper() == "FROM":
                stages.append([])
            stages[-1].append((keyword.upper(), args.strip()))
    return stages


def copied_from_context(stage: list[Instruction]) -> dict[str, str]:
    """What a stage's COPY instructions put where: destination (relative to WORKDIR) -> source."""
    copied: dict[str, str] = {}
    for keyword, args in stage:
        parts = json.loads(args) if args.startswith("[") else shlex.split(args)
        if keyword != "COPY" or any(p.startswith("--from") for p in parts):
            continue
        *sources, dest = [p for p in parts if not p.startswith("--")]
        assert not dest.startswith("/"), f"COPY {args}: copy into WORKDIR, where `.` is built"
        for source in sources:
            into_dir = dest.endswith("/") or len(sources) > 1
            copied[posixpath.normpath(posixpath.join(dest, Path(source).name) if into_dir else dest)] = source
    return copied


def host_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(p).split(":")[0]) for p in service.get("ports", [])}


def test_services_and_ports_match_stack(compose: dict[str, Any], settings: Settings) -> None:
    services = compose["services"]
    assert set(services) >= {"postgres", "kafka", "connect"}
    assert host_ports(services["postgres"]) == {settings.pg_port}
    assert host_ports(services["kafka"]) == {settings.kafka_port}
    assert host_ports(services["connect"]) == {settings.connect_port}


def test_images_use_the_versions_stack_resolves(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["kafka"]["image"] == f"apache/kafka:{pom_version('kafka', 'kafka.version')}"
    debezium = pom_version("debezium", "debezium.version")
    assert services["connect"]["image"] == f"quay.io/debezium/connect:{debezium}"
    assert services["postgres"]["image"].split(":")[1].split(".")[0] == "15"


def test_postgres_is_ready_for_debezium(compose: dict[str, Any], settings: Settings) -> None:
    pg = compose["services"]["postgres"]
    command = " ".join(pg["command"])
    assert "wal_level=logical" in command
    env = pg["environment"]
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]) == (
        settings.db_user,
        settings.db_password,
        settings.db_name,
    )


def test_kafka_has_the_single_node_overrides_of_stack(compose: dict[str, Any], settings: Settings) -> None:
    env = compose["services"]["kafka"]["environment"]
    props = dict(line.split("=", 1) for line in Kafka(settings).server_properties().read_text().splitlines())
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "group.initial.rebalance.delay.ms",
        "log.cleaner.backoff.ms",
    ):
        env_key = "KAFKA_" + key.upper().replace(".", "_")
        assert str(env[env_key]) == props[key], key
    assert f"127.0.0.1:{settings.kafka_port}" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_connect_worker_matches_stack(compose: dict[str, Any], settings: Settings) -> None:
    env = compose["services"]["connect"]["environment"]
    connect = Connect(settings, kafka_libs=lambda: settings.cache_dir)
    connect.plugin_path = lambda: settings.cache_dir  # type: ignore[method-assign]
    connect.smt_path = lambda: settings.cache_dir  # type: ignore[method-assign]
    props = dict(line.split("=", 1) for line in connect.worker_properties().read_text().splitlines())
    assert env["GROUP_ID"] == props["group.id"]
    assert env["CONFIG_STORAGE_TOPIC"] == props["config.storage.topic"]
    assert env["OFFSET_STORAGE_TOPIC"] == props["offset.storage.topic"]
    assert env["STATUS_STORAGE_TOPIC"] == props["status.storage.topic"]
    assert env["KEY_CONVERTER"] == props["key.converter"]
    assert env["VALUE_CONVERTER"] == props["value.converter"]
    assert env["CONNECT_EXACTLY_ONCE_SOURCE_SUPPORT"] == props["exactly.once.source.support"]
    # The image turns CONNECT_A_B into a.b: the same config providers for secret references.
    providers = {k: v for k, v in props.items() if k.startswith("config.providers")}
    assert providers and all(env[f"CONNECT_{k.upper().replace('.', '_')}"] == v for k, v in providers.items())


def test_toolkit_daemons_run_the_console_script(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["relay"]["command"] == ["relay", "run"]
    assert services["migrate"]["command"] == ["migrate", "upgrade"]
    assert services["relay"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert ("ENTRYPOINT", '["outbox"]') in dockerfile_stages()[-1]
    # Exactly one relay per profile: both at once would publish every event twice.
    assert services["relay"]["profiles"] == ["polling"]
    assert services["cdc-register"]["profiles"] == ["cdc"]


def test_connect_loads_the_transform_built_by_a_one_shot_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    build = services["smt-build"]
    assert build["image"].startswith("maven:") and "eclipse-temurin-17" in build["image"]
    assert "./stack/smt:/src:ro" in build["volumes"]
    assert "outboxkit-connect-smt.jar" in build["command"][-1]
    [volume] = [v for v in build["volumes"] if v.endswith(":/out")]
    assert f"{volume.split(':')[0]}:/kafka/connect/outboxkit-smt:ro" in services["connect"]["volumes"]
    assert volume.split(":")[0] in compose["volumes"]
    assert services["connect"]["depends_on"]["smt-build"]["condition"] == "service_completed_successfully"
    assert "CloudEventsHeaders" in " ".join(services["connect"]["healthcheck"]["test"])


def test_a_one_shot_service_registers_the_cdc_connector(compose: dict[str, Any]) -> None:
    from outbox.config import OutboxSettings
    from relay.cdc import CdcSettings, connector_config

    register = compose["services"]["cdc-register"]
    assert register["depends_on"]["connect"]["condition"] == "service_healthy"
    assert register["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert register.get("restart") == "no"
    assert register["command"] == ["cdc", "register"]
    env = register["environment"]
    # The connector reaches PostgreSQL and the worker by their compose service names.
    config = connector_config(
        OutboxSettings(database_url=env["OUTBOX_DATABASE_URL"], connect_url=env["OUTBOX_CONNECT_URL"]),
        CdcSettings(exactly_once=env["OUTBOX_CDC_EXACTLY_ONCE"] == "true"),
    )
    assert config["database.hostname"] in compose["services"]
    assert env["OUTBOX_CONNECT_URL"] == "http://connect:8083"
    assert config["exactly.once.support"] == "required"
    connect_env = compose["services"]["connect"]["environment"]
    assert connect_env["CONNECT_EXACTLY_ONCE_SOURCE_SUPPORT"] == "enabled"


def test_the_image_builds_the_wheel_from_everything_its_build_config_names() -> None:
    """A package (or data directory) added to pyproject's wheel target must be copied into the image
    too, or the image's `outbox` lacks it while the wheel has it."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    target = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert set(target) <= {"packages", "only-include", "force-include"}, "teach this test the new keys"
    needed = {"pyproject.toml", pyproject["project"]["readme"]}
    needed |= set(target.get("packages", [])) | set(target.get("only-include", []))
    needed |= set(target.get("force-include", {}))
    assert all((REPO / path).exists() for path in needed), needed
    builds = [s for s in dockerfile_stages() if any(k == "RUN" and "pip wheel" in a for k, a in s)]
    assert len(builds) == 1, "one stage of the Dockerfile builds the wheel (RUN pip wheel ... .)"
    [build] = builds
    copied = copied_from_context(build)
    missing = sorted(path for path in needed if copied.get(path) != path)
    assert not missing, f"the Dockerfile does not COPY {missing} to the same place in the build stage"
    keywords = [k for k, _ in build]
    assert keywords.index("RUN") > max(i for i, k in enumerate(keywords) if k == "COPY")
    assert next(a for k, a in build if k == "RUN").endswith(" .")
    # The image installs that wheel, and nothing from the build context (no source tree to import).
    final = dockerfile_stages()[-1]
    stage_name = build[0][1].split()[-1]
    assert ("COPY", f"--from={stage_name} /dist /dist") in final
    assert not copied_from_context(final)
    assert any(k == "RUN" and "pip install" in a and "/dist/*.whl" in a and " -e" not in a for k, a in final)


def test_the_image_can_run_the_demo_with_either_relay(compose: dict[str, Any]) -> None:
    """The README's `docker compose run --rm relay demo` (and `cdc-register demo --relay cdc`)."""
    services = compose["services"]
    needs = {"OUTBOX_DATABASE_URL", "OUTBOX_KAFKA_BOOTSTRAP_SERVERS"}
    assert needs <= set(services["relay"]["environment"])
    assert needs | {"OUTBOX_CONNECT_URL"} <= set(services["cdc-register"]["environment"])
    assert all(services[name]["build"] == "." for name in ("relay", "cdc-register"))
