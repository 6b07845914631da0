"""Run a WSGI target under gunicorn until the caller is done with it.

Why one module: the tests' `live_server`, the benchmark (bench/run.py) and the fault
scenarios (scripts/faults/) all need the same thing, and each used to have its own copy
of it: gunicorn with the project's gunicorn.conf.py on a free loopback port, not used
before it answers a probe with 200 *and* has all its workers (a request to a half-booted
server measures the boot), a failure to start that says why (the end of gunicorn's log,
not just "timed out"), and a stop that never leaves a process behind. Each caller keeps
its own environment and extras (the benchmark's CPU and memory accounting subclasses
`LiveServer`).
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NoReturn, Self

ROOT = Path(__file__).resolve().parent.parent
LOG_TAIL = 2000  # characters of gunicorn's log in an error message


class ServerDidNotStart(RuntimeError):
    """gunicorn exited or was not ready in time; the message ends with the tail of its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen, timeout: float) -> int:
    """SIGTERM, then SIGKILL if it has not exited after `timeout` seconds; its exit status."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen
    env: dict[str, str]  # the environment gunicorn runs with
    log: IO[bytes]  # its stderr (and stdout if asked): a file, so a full pipe never blocks the server
    log_path: Path | None  # None: an anonymous temporary file, gone when the server stops
    launched: bool = False  # started through a launcher (serve.py): gunicorn is its child

    @classmethod
    def start(
        cls,
        target: str = "wsgi:app",
        *,
        env: dict[str, str],
        port: int,
        probe: str = "/health",
        workers: int | None = None,
        timeout: float = 30,
        cwd: Path = ROOT,
        log_path: Path | None = None,
        stdout_to_log: bool = False,
        launcher: tuple[str, ...] = (),
    ) -> Self:
        """`gunicorn -c gunicorn.conf.py <target>` in `cwd` with exactly `env` (plus PORT), on
        127.0.0.1:`port`; returned once `probe` answers 200 and `workers` workers are up (by
        default as many as gunicorn.conf.py starts: WEB_CONCURRENCY, else 2 per core).
        Raises `ServerDidNotStart` if gunicorn exits or `timeout` seconds pass first. With a
        `launcher` (e.g. `python serve.py`), gunicorn's command line is given to it to run."""
        env = {**env, "PORT": str(port)}
        expected = workers if workers is not None else int(env.get("WEB_CONCURRENCY", (os.cpu_count() or 1) * 2))
        log = log_path.open("w+b") if log_path else tempfile.TemporaryFile()  # noqa: SIM115 -- closed by stop()
        process = subprocess.Popen(
            [*launcher, sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", target],
            cwd=cwd,
            env=env,
            stdout=log if stdout_to_log else subprocess.DEVNULL,
            stderr=log,
        )
        server = cls(f"http://127.0.0.1:{port}", process, env, log, log_path, launched=bool(launcher))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                server._give_up(f"exited with status {process.returncode}")
            if _answers(server.url + probe) and len(server.worker_pids()) >= expected:
                return server
            time.sleep(0.1)
        server._give_up(f"did not answer {probe} with 200 and have {expected} workers within {timeout:g} s")

    def output(self) -> str:
        """What gunicorn wrote so far, until stop() (read at an offset: gunicorn's file position stays)."""
        fd = self.log.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")

    def worker_pids(self) -> list[int]:
        """The master's children: its workers."""
        masters = _children(self.process.pid) if self.launched else [self.process.pid]
        return sorted(pid for master in masters for pid in _children(master))

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM (gunicorn's graceful stop), SIGKILL after `timeout` seconds; closes the log."""
        stop_process(self.process, timeout)
        self.log.close()

    def _give_up(self, why: str) -> NoReturn:
        where = f" ({self.log_path})" if self.log_path else ""
        message = f"gunicorn {why}; the end of its log{where}:\n{self.output()[-LOG_TAIL:]}"
        self.stop()
        raise ServerDidNotStart(message)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(child) for child in out.stdout.split()]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (OSError, http.client.HTTPException):  # refused while booting, an error status, a timeout
        return False
