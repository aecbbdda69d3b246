"""Apache Kafka 4.x, one combined broker+controller in KRaft mode, transactions enabled."""

from __future__ import annotations

import base64
import os
import socket
import struct
import subprocess
from pathlib import Path

from . import maven
from .processes import Daemon, port_open, require_free, wait_until
from .settings import Settings, StackError

LOG4J2_TEMPLATE = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.target = {target}
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.out.ref = OUT
logger.kafka.name = kafka
logger.kafka.level = {level}
logger.apache.name = org.apache.kafka
logger.apache.level = {level}
"""


TOOLS = {
    "transactions": "org.apache.kafka.tools.TransactionsCommand",
    "consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "topics": "org.apache.kafka.tools.TopicCommand",
}
"""Kafka's command-line tools that `stack/stack kafka-tool` runs (bin/kafka-<name>.sh)."""


def java_command(
    settings: Settings, libs: Path, main: str, *, heap: str, log_config: Path, gc_log: str | None = None
) -> list[str]:
    """The `java ...` line of Kafka's bin/kafka-run-class.sh, with our instance tag in it;
    `gc_log`: a file name in the logs dir for the JVM's pauses (as kafka-server-start.sh keeps)."""
    gc = (
        [f"-Xlog:gc:file={settings.logs_dir / gc_log}:time,uptime:filecount=2,filesize=20M"] if gc_log else []
    )
    return [
        maven.require_java(),
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        *gc,
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log_config}",
        f"-Dkafka.logs.dir={settings.logs_dir}",
        f"-Doutboxkit.stack={settings.instance_tag()}",
        "-cp",
        f"{libs}/*",
        main,
    ]


def write_log_config(path: Path, *, target: str = "SYSTEM_OUT", level: str = "INFO") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(LOG4J2_TEMPLATE.format(target=target, level=level))
    return path


def metadata_probe(port: int, timeout: float = 2.0) -> str | None:
    """Send a Kafka Metadata v4 request; None if a broker and a controller answer, else why not.

    Speaking the protocol (not just opening the port) proves the broker finished starting: a KRaft
    broker accepts connections before it has caught up with the metadata log.
    """
    client = b"outboxkit-stack"
    body = struct.pack(">hhih", 3, 4, 1, len(client)) + client + struct.pack(">ib", -1, 0)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            size = struct.unpack(">i", _recv(sock, 4))[0]
            data = _recv(sock, size)
    except (OSError, struct.error) as err:
        return f"no Kafka answer on {port}: {err}"
    # correlation_id, throttle_time_ms, broker count, then per broker: node_id, host, port, rack
    _corr, _throttle, brokers = struct.unpack_from(">iii", data, 0)
    if brokers < 1:
        return "Kafka answers but lists no broker yet"
    pos = 12
    for _ in range(brokers):
        pos += 4
        (host_len,) = struct.unpack_from(">h", data, pos)
        pos += 2 + host_len + 4
        (rack_len,) = struct.unpack_from(">h", data, pos)
        pos += 2 + max(rack_len, 0)
    (cluster_len,) = struct.unpack_from(">h", data, pos)
    pos += 2 + max(cluster_len, 0)
    (controller,) = struct.unpack_from(">i", data, pos)
    return None if controller >= 0 else "Kafka answers but has no active controller yet"


def _recv(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


class Kafka:
    name = "kafka"

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.daemon = Daemon(self.name, settings.state_dir, settings.instance_tag())
        self.home = settings.state_dir / "kafka"

    def libs(self) -> Path:
        return maven.resolve("kafka", self.s.cache_dir, self.s.logs_dir / "maven.log")

    def server_properties(self) -> Path:
        s = self.s
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{s.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{s.kafka_port},CONTROLLER://127.0.0.1:{s.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{s.kafka_port},CONTROLLER://127.0.0.1:{s.controller_port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.home / "data"),
            "num.partitions": "1",
            # One broker: every internal topic must live with a single replica, or consumer groups
            # and transactions never become available.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Compaction tests must see results within seconds, not the default 15 s check interval.
            "log.cleaner.backoff.ms": "1000",
            "auto.create.topics.enable": "true",
        }
        if s.sasl_port is not None:
            # A listener that asks for a user and password, for testing clients of secured clusters.
            login = "org.apache.kafka.common.security.plain.PlainLoginModule required"
            users = f'user_{s.sasl_user}="{s.sasl_password}"'
            props["listeners"] += f",SASL_PLAINTEXT://127.0.0.1:{s.sasl_port}"
            props["advertised.listeners"] += f",SASL_PLAINTEXT://127.0.0.1:{s.sasl_port}"
            props["listener.security.protocol.map"] += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
            props["sasl.enabled.mechanisms"] = "PLAIN"
            props["listener.name.sasl_plaintext.plain.sasl.jaas.config"] = f"{login} {users};"
        path = self.home / "server.properties"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def start(self) -> None:
        if self.daemon.pid() is not None:
            return
        maven.require_java()  # before Maven, which needs Java too and would blur the reason
        require_free(self.s.kafka_port, "the Kafka broker", "OUTBOX_STACK_KAFKA_PORT")
        require_free(self.s.controller_port, "the KRaft controller", "OUTBOX_STACK_CONTROLLER_PORT")
        if self.s.sasl_port is not None:
            require_free(self.s.sasl_port, "the Kafka SASL listener", "OUTBOX_STACK_KAFKA_SASL_PORT")
        libs = self.libs()
        props = self.server_properties()
        log_config = write_log_config(self.home / "log4j2.properties")
        tools_log = write_log_config(self.home / "tools-log4j2.properties", target="SYSTEM_ERR", level="WARN")
        if not (self.home / "data" / "meta.properties").exists():
            # KRaft storage is formatted once, with a cluster id like `StorageTool random-uuid` makes.
            # `--cluster-id=` form: an id may start with '-', which argparse would take for a flag.
            cluster_id = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
            cmd = java_command(self.s, libs, "kafka.tools.StorageTool", heap="256m", log_config=tools_log)
            done = subprocess.run(
                [*cmd, "format", f"--cluster-id={cluster_id}", "-c", str(props), "--standalone"],
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
            )
            if done.returncode != 0:
                raise StackError(
                    f"formatting KRaft storage failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}"
                )
        self.daemon.start(
            [
                *java_command(
                    self.s, libs, "kafka.Kafka", heap="768m", log_config=log_config, gc_log="kafka-gc.log"
                ),
                str(props),
            ]
        )

    def wait(self) -> None:
        wait_until(self.answer, what="Kafka", daemon=self.daemon, timeout=self.s.start_timeout)

    def answer(self) -> str | None:
        if not port_open(self.s.kafka_port):
            return f"port {self.s.kafka_port} not open"
        return metadata_probe(self.s.kafka_port)

    def down(self) -> bool:
        return self.daemon.stop(timeout=60)

    def tool(self, name: str, args: list[str]) -> int:
        """Run one of Kafka's command-line tools (TOOLS) against this broker; its exit status."""
        if name not in TOOLS:
            raise StackError(f"unknown Kafka tool {name!r}; choose from {sorted(TOOLS)}")
        log_config = write_log_config(
            self.home / "tools-log4j2.properties", target="SYSTEM_ERR", level="WARN"
        )
        cmd = java_command(self.s, self.libs(), TOOLS[name], heap="256m", log_config=log_config)
        bootstrap = ["--bootstrap-server", f"127.0.0.1:{self.s.kafka_port}"]
        return subprocess.run([*cmd, *bootstrap, *args], stdin=subprocess.DEVNULL).returncode
