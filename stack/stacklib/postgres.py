"""PostgreSQL 15+ from Debian's packages, in a cluster of our own (own data dir, port, socket dir)."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

from .processes import Daemon, port_open, require_free, wait_until
from .settings import Settings, StackError

MIN_VERSION = 15
PG_OS_USER = "postgres"  # PostgreSQL refuses to run as root; as root we start it as this user


def find_bindir() -> Path | None:
    candidates = []
    for path in Path("/usr/lib/postgresql").glob("*/bin/postgres"):
        try:
            candidates.append((int(path.parent.parent.name), path.parent))
        except ValueError:
            continue
    good = sorted(c for c in candidates if c[0] >= MIN_VERSION)
    return good[-1][1] if good else None


def install() -> Path:
    """apt-get install postgresql-15, without Debian's auto-created 'main' cluster (it would take 5432)."""
    if os.geteuid() != 0:
        raise StackError(
            "PostgreSQL 15+ is not installed and this is not root: run "
            "`sudo apt-get install -y postgresql-15` once, then `stack/stack up` again."
        )
    conf = Path("/etc/postgresql-common/createcluster.conf")
    if not conf.exists():
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text("create_main_cluster = false\n")
    print("stack: installing PostgreSQL 15 from Debian's packages ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "postgresql-15"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise StackError(f"`{' '.join(cmd)}` failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")
    bindir = find_bindir()
    if bindir is None:
        raise StackError("postgresql-15 was installed but no postgres binary is under /usr/lib/postgresql")
    return bindir


class Postgres:
    name = "postgres"

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.daemon = Daemon(self.name, settings.state_dir, settings.instance_tag())
        self.as_root = os.geteuid() == 0
        self.os_user = PG_OS_USER if self.as_root else None

    # -- locations -------------------------------------------------------------------------------
    def base_dir(self) -> Path:
        """state_dir/postgres, unless the postgres OS user cannot reach it (then a dir of its own)."""
        preferred = self.s.state_dir / "postgres"
        if not self.as_root or self._reachable_by_pg_user(self.s.state_dir):
            return preferred
        return Path("/var/lib/postgresql") / f"outboxkit-{self.s.instance_tag()}"

    def _reachable_by_pg_user(self, path: Path) -> bool:
        path.mkdir(parents=True, exist_ok=True)
        probe = subprocess.run(["test", "-x", str(path)], user=PG_OS_USER, capture_output=True)
        return probe.returncode == 0

    @property
    def socket_dir(self) -> Path:
        return self.base_dir() / "socket"

    def psql(
        self, sql: str, database: str = "postgres", bindir: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        bindir = bindir or find_bindir()
        assert bindir is not None
        return subprocess.run(
            [
                str(bindir / "psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.s.pg_port),
                "-U",
                "postgres",
                "-d",
                database,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        bindir = find_bindir() or install()
        base = self.base_dir()
        data = base / "data"
        if self.daemon.pid() is None:
            require_free(self.s.pg_port, "PostgreSQL", "OUTBOX_STACK_PG_PORT")
            self._init_cluster(bindir, base, data)
            self.daemon.start(
                [
                    str(bindir / "postgres"),
                    "-D",
                    str(data),
                    "-c",
                    f"port={self.s.pg_port}",
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={self.socket_dir}",
                    "-c",
                    "wal_level=logical",  # Debezium reads the WAL through logical decoding
                    "-c",
                    "max_replication_slots=20",
                    "-c",
                    "max_wal_senders=20",
                    "-c",
                    "max_connections=300",  # concurrent-writer tests and several relays
                    "-c",
                    "shared_buffers=256MB",
                    "-c",
                    "cluster_name=outboxkit",
                    "-c",
                    f"outboxkit.stack={self.s.instance_tag()}",
                ],  # our mark in the cmdline
                user=self.os_user,
            )

    def wait(self) -> None:
        bindir = find_bindir()
        assert bindir is not None, "start() installs PostgreSQL"
        wait_until(
            lambda: self._probe(bindir),
            what="PostgreSQL",
            daemon=self.daemon,
            timeout=self.s.start_timeout,
        )
        self._bootstrap(bindir)

    def _init_cluster(self, bindir: Path, base: Path, data: Path) -> None:
        if (data / "PG_VERSION").exists():
            return
        for d in (base, self.socket_dir):
            d.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(data, ignore_errors=True)
        if self.as_root:
            pw = pwd.getpwnam(PG_OS_USER)
            for d in (base, self.socket_dir):
                os.chown(d, pw.pw_uid, pw.pw_gid)
        done = subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--no-locale",
                "-E",
                "UTF8",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ],
            user=self.os_user,
            capture_output=True,
            text=True,
            cwd=base,
        )
        if done.returncode != 0:
            raise StackError(f"initdb failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")

    def _probe(self, bindir: Path) -> str | None:
        if not port_open(self.s.pg_port):
            return f"port {self.s.pg_port} not open"
        done = self.psql("select 1", bindir=bindir)
        return None if done.returncode == 0 else done.stderr.strip()

    def _bootstrap(self, bindir: Path) -> None:
        """The role and database the toolkit uses (idempotent)."""
        s = self.s
        sql = f"""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{s.db_user}') THEN
            CREATE ROLE {s.db_user} LOGIN REPLICATION CREATEDB PASSWORD '{s.db_password}';
          END IF;
        END $$;
        """
        for step in (sql, f"SELECT 'exists' FROM pg_database WHERE datname = '{s.db_name}'"):
            done = self.psql(step, bindir=bindir)
            if done.returncode != 0:
                raise StackError(f"setting up the {s.db_name} role/database failed: {done.stderr.strip()}")
        if "exists" not in done.stdout:
            done = self.psql(f"CREATE DATABASE {s.db_name} OWNER {s.db_user}", bindir=bindir)
            if done.returncode != 0:
                raise StackError(f"CREATE DATABASE {s.db_name} failed: {done.stderr.strip()}")

    def down(self) -> bool:
        # SIGTERM would be PostgreSQL's "smart" shutdown, which waits for every client to leave;
        # SIGINT is "fast": clients are disconnected, the cluster shuts down cleanly.
        return self.daemon.stop(timeout=60, sig=signal.SIGINT)

    def answer(self) -> str | None:
        bindir = find_bindir()
        return "not installed" if bindir is None else self._probe(bindir)
