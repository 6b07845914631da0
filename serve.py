"""Run a server command (gunicorn) as a child, and give it a lame-duck period before it stops.

    python serve.py gunicorn -c gunicorn.conf.py wsgi:app     # the image's command, systemd's ExecStart

gunicorn closes its listening socket as soon as it gets SIGTERM, and has no hook before that: a
connection that arrives afterwards is refused, and one the kernel had queued but no worker had
taken is reset. Orchestrators avoid both with a "lame duck" period, and this does the same:

- SIGTERM (docker stop, systemctl stop): create DRAIN_FILE, so /health/ready answers 503 in every
  worker and load balancers stop sending new requests here, keep serving whatever still comes for
  SHUTDOWN_DELAY seconds (config.py), then send gunicorn its own SIGTERM: its graceful shutdown
  finishes the requests in flight. A second SIGTERM cuts the delay short.
- SIGINT, SIGQUIT, SIGHUP and gunicorn's other documented signals (USR1, USR2, TTIN, TTOU, WINCH)
  go to gunicorn as they are: SIGINT and SIGQUIT stop it at once, HUP reloads its settings.
- It exits with gunicorn's status (128 + the signal's number if a signal killed gunicorn).

Why a Python launcher rather than a shell script with `trap`: it reads SHUTDOWN_DELAY with the
app's own parser (`5`, `5s`, `1500ms` mean what they mean everywhere else, and a bad value stops
the start with the same one line), and it waits for signals with `sigtimedwait`, which has no race
between a signal's arrival and the wait; a shell's `wait` has to be restarted after each trap.
As a container's PID 1 it also reaps any orphaned process handed to it. Nothing of the app is
imported here (only config.py), so this process stays small; one-shot commands and `flask worker`
do not go through it.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from config import Config, ConfigurationError

# Blocked here and taken with sigtimedwait; gunicorn starts with none of them blocked.
FORWARDED = {signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2,
             signal.SIGTTIN, signal.SIGTTOU, signal.SIGWINCH}
TAKEN = FORWARDED | {signal.SIGTERM, signal.SIGCHLD}


def exit_status(wait_status: int) -> int:
    """A child's wait status as a shell would report it."""
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def reap(child: int) -> int | None:
    """Collect every exited child (orphans too, as PID 1 must); `child`'s exit status if it is one."""
    status = None
    while True:
        try:
            pid, wait_status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if pid == 0:
            return status
        if pid == child:
            status = exit_status(wait_status)


def serve(command: list[str], delay: float, drain_file: Path) -> int:
    """Run `command` until it exits; SIGTERM becomes DRAIN_FILE, `delay` seconds, then SIGTERM."""
    signal.pthread_sigmask(signal.SIG_BLOCK, TAKEN)
    child = os.posix_spawnp(command[0], command, {**os.environ, "DRAIN_FILE": str(drain_file)},
                            setsigmask=(), setsigdef=TAKEN | {signal.SIGPIPE, signal.SIGXFSZ})
    term_at: float | None = None  # when gunicorn gets its SIGTERM
    term_sent = False
    while True:
        timeout = None if term_at is None or term_sent else max(0.0, term_at - time.monotonic())
        info = signal.sigtimedwait(TAKEN, timeout) if timeout is not None else signal.sigwaitinfo(TAKEN)
        if info is None or (info.si_signo == signal.SIGTERM and term_at is not None):
            if not term_sent:  # the delay is over, or a second SIGTERM cut it short
                os.kill(child, signal.SIGTERM)
                term_sent = True
        elif info.si_signo == signal.SIGTERM:
            try:
                drain_file.touch()  # an empty file: its presence is the message
                print(f"[serve] SIGTERM: draining for {delay:g} s (/health/ready answers 503), then stopping "
                      "gunicorn", file=sys.stderr, flush=True)
            except OSError as error:  # still serve out the delay: a load balancer may stop on its own
                print(f"[serve] SIGTERM: cannot create DRAIN_FILE {drain_file}: {error.strerror}; waiting "
                      f"{delay:g} s anyway", file=sys.stderr, flush=True)
            term_at = time.monotonic() + delay
        elif info.si_signo in FORWARDED:
            os.kill(child, info.si_signo)
        status = reap(child)
        if status is not None:
            return status


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python serve.py COMMAND [ARG...]  (e.g. gunicorn -c gunicorn.conf.py wsgi:app)",
              file=sys.stderr)
        return 2
    try:
        delay = Config.SHUTDOWN_DELAY.read(os.environ, "SHUTDOWN_DELAY")
        drain_file = Config.DRAIN_FILE.read(os.environ, "DRAIN_FILE")
    except ConfigurationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        own_folder = None if drain_file else tempfile.mkdtemp(prefix="users-posts-serve-")
    except OSError as error:
        print(f"error: no writable temporary folder for DRAIN_FILE ({error}); give the container a tmpfs on /tmp",
              file=sys.stderr)
        return 2
    drain = Path(drain_file or os.path.join(own_folder, "draining"))
    drain.unlink(missing_ok=True)  # one left by an earlier run would keep this one out of rotation
    try:
        return serve(argv, delay, drain)
    except FileNotFoundError as error:
        print(f"error: cannot run {argv[0]!r}: {error.strerror}", file=sys.stderr)
        return 127
    finally:
        if own_folder:
            shutil.rmtree(own_folder, ignore_errors=True)
        else:
            drain.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
