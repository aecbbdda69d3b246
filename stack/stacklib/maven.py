"""Resolve jars from Maven Central into a cache dir keyed by the pom's hash (so a warm `up` skips Maven)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from .settings import STACK_SRC, StackError


def require_tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise StackError(f"`{name}` is not installed or not on PATH. {hint}")
    return path


def require_java() -> str:
    java = require_tool(
        "java", "Install OpenJDK 17 or newer (Debian: apt-get install openjdk-17-jre-headless)."
    )
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    try:
        major = int(out.split('"')[1].split(".")[0])
    except (IndexError, ValueError):
        raise StackError(f"cannot read the Java version from: {out.strip()}") from None
    if major < 17:
        raise StackError(f"Java {major} found; Kafka 4.x and Debezium 3.x need Java 17 or newer.")
    return java


def _mvn(command: list[str], log_file: Path) -> int:
    """Run Maven in batch mode, quietly, appending its output to `log_file`; its exit code."""
    with open(log_file, "ab") as log:
        return subprocess.run(
            [command[0], "-B", "-q", *command[1:]],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        ).returncode


def resolve(pom_name: str, cache_dir: Path, log_file: Path, subdir: str = "") -> Path:
    """Copy the runtime dependencies of stack/maven/<pom_name>/pom.xml into a cached dir; return it.

    With `subdir`, the jars go one level down (`<dir>/<subdir>/*.jar`): the layout Kafka Connect's
    plugin.path expects, where the returned dir is the plugin path.
    """
    pom = STACK_SRC / "maven" / pom_name / "pom.xml"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:12]
    target = cache_dir / "jars" / f"{pom_name}-{digest}"
    if (target / ".complete").exists():
        return target
    mvn = require_tool(
        "mvn", "Install Maven (Debian: apt-get install maven); it fetches jars from Maven Central."
    )
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / subdir).mkdir(parents=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    print(f"stack: resolving {pom_name} jars from Maven Central (log: {log_file}) ...", flush=True)
    returncode = _mvn(
        [
            mvn,
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={tmp / subdir}",
        ],
        log_file,
    )
    if returncode != 0 or not any((tmp / subdir).glob("*.jar")):
        raise StackError(
            f"downloading the {pom_name} jars failed (mvn exit {returncode}); "
            f"is Maven Central reachable? Details in {log_file}"
        )
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    (target / ".complete").write_text(digest + "\n")
    return target


SMT_SRC = STACK_SRC / "smt"
"""outboxkit's Kafka Connect transform (Java, Maven): built from source, not downloaded."""


def source_digest(root: Path) -> str:
    """Hash of every file under `root` (names and bytes), ignoring build output."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "target" not in p.parts):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def build_smt(cache_dir: Path, log_file: Path, subdir: str = "outboxkit-smt") -> Path:
    """`mvn package` stack/smt into a cached plugin dir (`<dir>/<subdir>/*.jar`) keyed by its sources.

    The build runs outside the source tree (-Dsmt.build.dir), so a checkout stays clean; its plugins
    and the provided connect-api come from Maven Central once, then from ~/.m2 (a warm build works
    offline).
    """
    digest = source_digest(SMT_SRC)
    target = cache_dir / "jars" / f"outboxkit-smt-{digest}"
    if (target / ".complete").exists():
        return target
    mvn = require_tool(
        "mvn", "Install Maven (Debian: apt-get install maven); it builds outboxkit's Connect transform."
    )
    require_tool("javac", "Install a JDK 17 (Debian: apt-get install openjdk-17-jdk-headless).")
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / subdir).mkdir(parents=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    print(f"stack: building outboxkit's Connect transform (log: {log_file}) ...", flush=True)
    returncode = _mvn(
        [mvn, "-f", str(SMT_SRC / "pom.xml"), "package", f"-Dsmt.build.dir={tmp / 'build'}"], log_file
    )
    jar = tmp / "build" / "outboxkit-connect-smt.jar"
    if returncode != 0 or not jar.exists():
        raise StackError(
            f"building outboxkit's Connect transform failed (mvn exit {returncode}); details in {log_file}"
        )
    jar.rename(tmp / subdir / jar.name)
    shutil.rmtree(tmp / "build")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    (target / ".complete").write_text(digest + "\n")
    return target
