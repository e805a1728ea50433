"""A private, throwaway PostgreSQL server for the tests (real server, no mocks).

Started at most once per session on a free port in a temporary directory with ``initdb`` and
``pg_ctl`` from Debian's package (``deploy/dev/ensure-postgres.sh`` installs it when absent);
as root, the cluster runs as the ``postgres`` system user, since PostgreSQL refuses root.
Set ACCORD_TEST_POSTGRES_URL to use a server that already runs (it needs CREATEDB).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _bin_dir() -> Path:
    def newest() -> list[str]:
        found = Path("/usr/lib/postgresql").glob("*/bin/initdb")
        return sorted((str(p) for p in found), key=_version)

    found = newest()
    if not found:
        subprocess.run(["bash", str(REPO / "deploy/dev/ensure-postgres.sh")], check=True)
        found = newest()
    if not found:
        raise RuntimeError("PostgreSQL is not installed: run deploy/dev/ensure-postgres.sh")
    return Path(found[-1]).parent


def _version(path: str) -> tuple[int, ...]:
    part = Path(path).parts[-3]
    return tuple(int(p) for p in part.split(".") if p.isdigit())


def _free_port() -> int:
    from broker.devkafka import free_port

    return int(free_port())


class PrivatePostgres:
    """One cluster in its own directory; ``url`` reaches its ``postgres`` database."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="accord-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, cwd=self.root)

    def start(self) -> str:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "accord",
                  "--auth=trust", "-E", "UTF8", "--no-sync")  # fmt: skip
        opts = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", opts,
                  "-l", str(self.root / "server.log"), "-w", "-t", "60", "start")  # fmt: skip
        return f"postgresql://accord@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def server_url() -> Iterator[str]:
    """The session's server: ACCORD_TEST_POSTGRES_URL, or a private one started here."""
    if env := os.environ.get("ACCORD_TEST_POSTGRES_URL"):
        yield env
        return
    pg = PrivatePostgres()
    url = pg.start()
    try:
        yield url
    finally:
        pg.stop()


def fresh_database(server: str) -> Iterator[str]:
    """A new, empty database on ``server`` for one test; dropped afterwards."""
    import psycopg

    name = f"accord_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = server.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
