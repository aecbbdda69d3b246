"""Kafka Connect 4.x in distributed mode (exactly-once source support on) with the Debezium plugin."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from . import maven
from .kafka import java_command, write_log_config
from .processes import Daemon, port_open, require_free, wait_until
from .settings import Settings

POSTGRES_CONNECTOR = "io.debezium.connector.postgresql.PostgresConnector"
OUTBOXKIT_SMT = "io.outboxkit.connect.CloudEventsHeaders"


class Connect:
    name = "connect"

    def __init__(self, settings: Settings, kafka_libs: Callable[[], Path]) -> None:
        self.s = settings
        self.kafka_libs = kafka_libs
        self.daemon = Daemon(self.name, settings.state_dir, settings.instance_tag())
        self.home = settings.state_dir / "connect"

    def plugin_path(self) -> Path:
        # plugin.path names a dir whose *subdirs* hold one plugin each; Debezium's jars must never be
        # on the worker's own classpath as well.
        return maven.resolve(
            "debezium",
            self.s.cache_dir,
            self.s.logs_dir / "maven.log",
            subdir="debezium-connector-postgres",
        )

    def smt_path(self) -> Path:
        # outboxkit's own transform (stack/smt) is a plugin of its own: it needs only Connect's API.
        return maven.build_smt(self.s.cache_dir, self.s.logs_dir / "maven.log")

    def worker_properties(self) -> Path:
        s = self.s
        props = {
            "bootstrap.servers": s.bootstrap_servers,
            "group.id": "outboxkit-connect",
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
            "config.storage.topic": "outboxkit-connect-configs",
            "offset.storage.topic": "outboxkit-connect-offsets",
            "status.storage.topic": "outboxkit-connect-status",
            "config.storage.replication.factor": "1",
            "offset.storage.replication.factor": "1",
            "status.storage.replication.factor": "1",
            "offset.storage.partitions": "5",
            "status.storage.partitions": "1",
            "offset.flush.interval.ms": "1000",
            "listeners": f"http://127.0.0.1:{s.connect_port}",
            "rest.advertised.host.name": "127.0.0.1",
            "rest.advertised.port": str(s.connect_port),
            "plugin.path": f"{self.plugin_path()},{self.smt_path()}",
            # Debezium ships ServiceLoader manifests, so the slow reflective classpath scan is not needed.
            "plugin.discovery": "service_load",
            # KIP-618: source connectors may ask for exactly-once delivery (exactly.once.support=required).
            "exactly.once.source.support": "enabled",
            # Connector configs may name a secret instead of holding it (outbox cdc's
            # OUTBOX_CDC_DATABASE_PASSWORD=${env:...} or ${file:...}): resolved here, at the worker.
            "config.providers": "env,file",
            "config.providers.env.class": "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
            "config.providers.file.class": "org.apache.kafka.common.config.provider.FileConfigProvider",
        }
        path = self.home / "worker.properties"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def start(self) -> None:
        if self.daemon.pid() is not None:
            return
        maven.require_java()
        require_free(self.s.connect_port, "Kafka Connect's REST API", "OUTBOX_STACK_CONNECT_PORT")
        props = self.worker_properties()
        log_config = write_log_config(self.home / "log4j2.properties")
        cmd = java_command(
            self.s,
            self.kafka_libs(),
            "org.apache.kafka.connect.cli.ConnectDistributed",
            heap="768m",
            log_config=log_config,
        )
        self.daemon.start([*cmd, str(props)])

    def wait(self) -> None:
        wait_until(self.answer, what="Kafka Connect", daemon=self.daemon, timeout=self.s.start_timeout)

    def answer(self) -> str | None:
        if not port_open(self.s.connect_port):
            return f"port {self.s.connect_port} not open"
        url = f"{self.s.connect_url}/connector-plugins?connectorsOnly=false"
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                plugins = json.load(resp)
        except (urllib.error.URLError, OSError, ValueError) as err:
            return f"Connect REST not ready: {err}"
        classes = {p.get("class") for p in plugins}
        if POSTGRES_CONNECTOR not in classes:
            return f"Connect answers but does not list {POSTGRES_CONNECTOR} (plugin.path broken?)"
        if OUTBOXKIT_SMT not in classes:
            return (
                f"Connect answers but does not list {OUTBOXKIT_SMT}: a worker started before "
                "stack/smt existed, or plugin.path broken; restart Connect to load it"
            )
        return None

    def down(self) -> bool:
        return self.daemon.stop(timeout=60)
