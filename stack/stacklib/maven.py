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
    with open(log_file, "ab") as log:
        done = subprocess.run(
            [
                mvn,
                "-B",
                "-q",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={tmp / subdir}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    if done.returncode != 0 or not any((tmp / subdir).glob("*.jar")):
        raise StackError(
            f"downloading the {pom_name} jars failed (mvn exit {done.returncode}); "
            f"is Maven Central reachable? Details in {log_file}"
        )
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    (target / ".complete").write_text(digest + "\n")
    return target
