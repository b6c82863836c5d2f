"""A throwaway PostgreSQL server for the catalog tests and benchmarks: Debian's binaries (installed by
scripts/test.sh), a cluster in a temp directory, listening on 127.0.0.1 at a free port, password authentication
over TCP. Every test gets its own database."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

USER = "ttc"


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    port: int
    password: str
    socket_dir: Path  # also the parent of the cluster's data directory
    cluster: Path
    bindir: Path
    as_user: list[str]

    def url(self, database: str, password: bool = False) -> str:
        auth = f"{USER}:{self.password}" if password else USER
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> list[tuple]:
        """Run one statement as the superuser (trusted over the unix socket)."""
        import psycopg

        with psycopg.connect(
            host=str(self.socket_dir), port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as con:
            cur = con.execute(sql)
            return cur.fetchall() if cur.description else []

    def create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.admin(f"CREATE DATABASE {name} OWNER {USER}")
        return name

    def stop(self) -> None:
        subprocess.run(
            [*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.cluster), "-m", "immediate", "-w", "stop"],
            capture_output=True,
        )
        shutil.rmtree(self.socket_dir, ignore_errors=True)


class NoPostgres(RuntimeError):
    pass


def start_server() -> PostgresServer:
    """A new server, ready; NoPostgres when this machine has no PostgreSQL binaries."""
    bindir = _bindir()
    if bindir is None:
        raise NoPostgres("no PostgreSQL binaries (scripts/test.sh installs Debian's postgresql)")
    base = Path(tempfile.mkdtemp(prefix="ttc-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as Debian's postgres user
        shutil.chown(base, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    password = secrets.token_hex(12)
    pwfile = base / "pw"
    pwfile.write_text(password + "\n")
    if as_user:
        shutil.chown(pwfile, "postgres", "postgres")
    cluster = base / "data"
    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(cluster), "-U", "postgres", "--auth-local=trust"]
        + ["--auth-host=scram-sha-256", f"--pwfile={pwfile}", "--no-sync", "-E", "UTF8"],
        capture_output=True,
        text=True,
        check=True,
    )
    port = _free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off -c max_connections=200"
    started = subprocess.run(
        [*as_user, str(bindir / "pg_ctl"), "-D", str(cluster), "-o", options, "-l", str(base / "log"), "-w"]
        + ["-t", "60", "start"],
        capture_output=True,
        text=True,
    )
    if started.returncode != 0:
        log = (base / "log").read_text() if (base / "log").exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {started.stderr}\n{log}")
    server = PostgresServer(port, password, base, cluster, bindir, as_user)
    server.admin(f"CREATE ROLE {USER} LOGIN PASSWORD '{password}'")
    return server
