"""Which embedded store backs the KV disk store: LMDB (`lmdb`), RocksDB (`rocksdict`) or SQLite
(standard library), measured on the disk store's own work: batches of puts that carry the applied
offsets in the same atomic write, then random point reads, then a reopen.

    python bench/kv_disk_choice.py [--keys 200000] [--value-bytes 100] [--batch 5000]

Each backend writes into a fresh temporary directory; the table prints rates and ratios to LMDB.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

POSITIONS = b"__positions__"
Backend = tuple[
    Callable[[list[tuple[bytes, bytes]]], None],
    Callable[[bytes], bytes | None],
    Callable[[], None],
]
"""(write a batch with the positions, read one key, close)."""


def lmdb_backend(path: Path) -> Backend:
    import lmdb

    env = lmdb.open(str(path), map_size=8 << 30, metasync=False, max_dbs=2)
    data = env.open_db(b"data")

    def write(batch: list[tuple[bytes, bytes]]) -> None:
        with env.begin(write=True) as txn:
            for key, value in batch:
                txn.put(key, value, db=data)
            txn.put(POSITIONS, b"0:1234")

    def read(key: bytes) -> bytes | None:
        with env.begin(buffers=False) as txn:
            return txn.get(key, db=data)  # type: ignore[no-any-return]

    return write, read, env.close


def rocksdict_backend(path: Path) -> Backend:
    from rocksdict import Options, Rdict, WriteBatch

    db = Rdict(str(path), Options(raw_mode=True))

    def write(batch: list[tuple[bytes, bytes]]) -> None:
        wb = WriteBatch(raw_mode=True)
        for key, value in batch:
            wb.put(key, value)
        wb.put(POSITIONS, b"0:1234")
        db.write(wb)

    def read(key: bytes) -> bytes | None:
        return db.get(key)  # type: ignore[no-any-return]

    return write, read, db.close


def sqlite_backend(path: Path) -> Backend:
    db = sqlite3.connect(path / "kv.sqlite", check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID")

    def write(batch: list[tuple[bytes, bytes]]) -> None:
        db.execute("BEGIN")
        db.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?)", batch)
        db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (POSITIONS, b"0:1234"))
        db.execute("COMMIT")

    def read(key: bytes) -> bytes | None:
        row = db.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        return None if row is None else row[0]  # type: ignore[no-any-return]

    return write, read, db.close


BACKENDS = {"lmdb": lmdb_backend, "rocksdict": rocksdict_backend, "sqlite": sqlite_backend}


def size_of(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=200_000)
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--reads", type=int, default=100_000)
    args = parser.parse_args()
    rng = random.Random(7)
    keys = [f"site:{i:08d}".encode() for i in range(args.keys)]
    value = os.urandom(args.value_bytes)
    lookups = [rng.choice(keys) for _ in range(args.reads)]
    results = {}
    for name, make in BACKENDS.items():
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp)
            write, read, close = make(path)
            started = time.perf_counter()
            for i in range(0, len(keys), args.batch):
                write([(k, value) for k in keys[i : i + args.batch]])
            written = time.perf_counter() - started
            started = time.perf_counter()
            for key in lookups:
                read(key)
            reads = time.perf_counter() - started
            close()
            started = time.perf_counter()
            _write, read, close = make(path)
            read(keys[0])
            reopened = time.perf_counter() - started
            close()
            results[name] = (args.keys / written, reads / args.reads * 1e6, reopened * 1000, size_of(path))
    base = results["lmdb"]
    print(f"{args.keys} keys x {args.value_bytes} B, batches of {args.batch}, {args.reads} random reads")
    header = ("backend", "puts/s", "vs lmdb", "get us", "vs lmdb", "reopen ms", "MB on disk")
    print(f"{header[0]:10} " + " ".join(f"{h:>10}" for h in header[1:]))
    for name, (rate, get_us, reopen_ms, size) in results.items():
        print(
            f"{name:10} {rate:10.0f} {rate / base[0]:10.2f} {get_us:10.2f} {get_us / base[1]:10.2f}"
            f" {reopen_ms:10.1f} {size / 1e6:10.1f}"
        )


if __name__ == "__main__":
    main()
