"""A throwaway PostgreSQL primary and hot standby with real streaming replication,
for the replica tests and `make faults`.

Built with this machine's own binaries (`pg_config --bindir`: initdb, pg_basebackup -R,
pg_ctl), run as the `postgres` system user, in temporary folders, on free loopback ports;
`stop` removes everything.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2

SYSTEM_USER = "postgres"


def bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout.strip()
    return Path(found) if found else None


def missing() -> str | None:
    """Why replication cannot be set up here, or None when it can."""
    folder = bindir()
    if folder is None:
        return "pg_config is not on PATH (install PostgreSQL's server package)"
    for name in ("initdb", "pg_basebackup", "pg_ctl"):
        if not (folder / name).exists():
            return f"{folder / name} is missing (install PostgreSQL's server package)"
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        return f"there is no {SYSTEM_USER!r} system user to run PostgreSQL as"
    if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != SYSTEM_USER:
        return f"running PostgreSQL as {SYSTEM_USER!r} needs root (runuser) or that user"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(*command: str | Path, check: bool = True) -> subprocess.CompletedProcess:
    prefix = ["runuser", "-u", SYSTEM_USER, "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *map(str, command)], capture_output=True, text=True, check=check,
                          timeout=120)


@dataclass
class Server:
    folder: Path
    port: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def query(self, sql: str, database: str = "postgres") -> list[tuple]:
        connection = psycopg2.connect(self.url(database), connect_timeout=3)
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchall() if cursor.description else []
        finally:
            connection.close()

    def start(self) -> None:
        _as_postgres(bindir() / "pg_ctl", "-D", self.folder / "data", "-l", self.folder / "log", "-w",
                     "-t", "60", "-o", f"-p {self.port}", "start")

    def stop(self, mode: str = "fast") -> None:
        _as_postgres(bindir() / "pg_ctl", "-D", self.folder / "data", "-m", mode, "-w", "stop", check=False)

    def log(self) -> str:
        path = self.folder / "log"
        return path.read_text(errors="replace") if path.exists() else ""


@dataclass
class Replication:
    primary: Server
    standby: Server
    root: Path

    def wait_for_standby(self, seconds: float = 30) -> None:
        """Until the standby has replayed everything the primary has written so far."""
        target = self.primary.query("SELECT pg_current_wal_lsn()")[0][0]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                caught_up = self.standby.query(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn")[0][0]
            except psycopg2.OperationalError:
                caught_up = False
            if caught_up:
                return
            time.sleep(0.05)
        raise RuntimeError("the standby did not catch up:\n" + self.standby.log()[-2000:])

    def pause_replay(self) -> None:
        self.standby.query("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self.standby.query("SELECT pg_wal_replay_resume()")

    def stop(self) -> None:
        self.standby.stop("immediate")
        self.primary.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def start_replication() -> Replication:
    """initdb a primary, pg_basebackup -R a hot standby from it, start both."""
    root = Path(tempfile.mkdtemp(prefix="users-posts-replication-"))
    if os.geteuid() == 0:
        shutil.chown(root, SYSTEM_USER)
    primary = Server(root / "primary", _free_port())
    standby = Server(root / "standby", _free_port())
    replication = Replication(primary, standby, root)
    try:
        for server in (primary, standby):
            server.folder.mkdir()
            if os.geteuid() == 0:
                shutil.chown(server.folder, SYSTEM_USER)
        _as_postgres(bindir() / "initdb", "-D", primary.folder / "data", "-U", "postgres", "--auth=trust",
                     "-E", "UTF8", "--locale=C.UTF-8")
        settings = ("listen_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{root}'\n"
                    "max_connections = 60\nshared_buffers = 32MB\nfsync = off\nfull_page_writes = off\n"
                    "wal_level = replica\nmax_wal_senders = 4\nhot_standby = on\n"
                    "wal_receiver_status_interval = 1s\nmax_standby_streaming_delay = 1s\n")
        _as_postgres("sh", "-c", f"cat >> '{primary.folder / 'data' / 'postgresql.conf'}' <<'EOF'\n{settings}EOF")
        primary.start()
        _as_postgres(bindir() / "pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                     "-D", standby.folder / "data", "-R", "-X", "stream", "-c", "fast")
        standby.start()
        deadline = time.monotonic() + 30
        while not standby.query("SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'")[0][0]:
            if time.monotonic() > deadline:
                raise RuntimeError("the standby does not stream:\n" + standby.log()[-2000:])
            time.sleep(0.1)
    except BaseException:
        replication.stop()
        raise
    return replication
