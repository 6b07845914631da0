"""Run Debian's PgBouncer in transaction mode in front of a PostgreSQL server, until the caller is done.

For the tests (tests/ops/test_pgbouncer.py): a pgbouncer of their own on a free loopback port,
with its own ini and auth file in a private folder, `pool_mode = transaction` and every other
setting at PgBouncer's default (`ignore_startup_parameters` above all: empty). Any database name
is passed through to the server (`* =`), so a test points it at its own database by URL alone.
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
from typing import Any, NoReturn, Self

import psycopg2
import psycopg2.extras
from sqlalchemy.engine import make_url

from scripts.live_server import free_port, stop_process

# PgBouncer refuses to run as root; it drops to this user when started by root.
UNPRIVILEGED_USER = "nobody"


def pgbouncer_binary() -> str | None:
    found = shutil.which("pgbouncer")
    if found is None and os.path.exists("/usr/sbin/pgbouncer"):
        found = "/usr/sbin/pgbouncer"
    return found


class PgBouncerDidNotStart(RuntimeError):
    """pgbouncer exited or did not listen in time; the message ends with its log."""


@dataclass
class PgBouncer:
    process: subprocess.Popen
    port: int
    folder: Path
    upstream: str  # the server's URL (any database) as the caller gave it

    @classmethod
    def start(cls, upstream_url: str, *, pool_size: int = 2, timeout: float = 10) -> Self:
        """pgbouncer in front of the server of `upstream_url` (its host, port, user, password),
        `pool_size` server connections per database at most; returned once it accepts connections."""
        binary = pgbouncer_binary()
        if binary is None:
            raise PgBouncerDidNotStart("pgbouncer is not installed (apt-get install -y pgbouncer)")
        url = make_url(upstream_url)
        folder = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        folder.chmod(0o755)  # read by the unprivileged user it drops to
        port = free_port()
        user, password = url.username or "postgres", url.password or ""
        (folder / "userlist.txt").write_text(f'"{user}" "{password}"\n')
        (folder / "pgbouncer.ini").write_text("\n".join([
            "[databases]",
            f"* = host={url.host or '127.0.0.1'} port={url.port or 5432}",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {port}",
            "unix_socket_dir =",
            "auth_type = trust",
            f"auth_file = {folder / 'userlist.txt'}",
            "pool_mode = transaction",
            f"default_pool_size = {pool_size}",
            "max_client_conn = 1000",
            f"admin_users = {user}",
            "",
        ]))
        for name in ("userlist.txt", "pgbouncer.ini"):
            (folder / name).chmod(0o644)
        command = [binary, str(folder / "pgbouncer.ini")]
        if os.geteuid() == 0:
            pwd.getpwnam(UNPRIVILEGED_USER)
            command[1:1] = ["-u", UNPRIVILEGED_USER]
        with (folder / "pgbouncer.log").open("wb") as log:  # the child keeps its own descriptor
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        bouncer = cls(process, port, folder, upstream_url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                bouncer._give_up(f"exited with status {process.returncode}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return bouncer
            time.sleep(0.05)
        bouncer._give_up(f"did not listen on port {port} within {timeout:g} s")

    def url(self, database_url: str) -> str:
        """`database_url` with pgbouncer's address in place of the server's."""
        return make_url(database_url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def show(self, what: str) -> list[dict[str, Any]]:
        """A `SHOW` of PgBouncer's admin console (`clients`, `servers`, `pools`, `stats`), as rows."""
        url = make_url(self.upstream)
        connection = psycopg2.connect(host="127.0.0.1", port=self.port, dbname="pgbouncer",
                                      user=url.username or "postgres", password=url.password or "")
        connection.autocommit = True  # the console takes no transaction
        try:
            with connection.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cursor:
                cursor.execute(f"SHOW {what}")
                return [dict(row) for row in cursor.fetchall()]
        finally:
            connection.close()

    def log(self) -> str:
        return (self.folder / "pgbouncer.log").read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.process, timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)

    def _give_up(self, why: str) -> NoReturn:
        message = f"pgbouncer {why}; its log:\n{self.log()[-2000:]}"
        self.stop()
        raise PgBouncerDidNotStart(message)
