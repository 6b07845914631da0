"""serve.py, the image's command: gunicorn as its child, and a lame-duck period on SIGTERM.

Against a live gunicorn on the suite's database. Each request below opens a connection of its
own, as a load balancer's new requests would."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from scripts.live_server import LiveServer
from tests.helpers import ROOT, start_gunicorn, stop_times, wait_for

LAUNCHER = (sys.executable, "serve.py")
DELAY = 6  # seconds: room for the checks made while the instance drains


def _ready(url: str) -> requests.Response:
    return requests.get(f"{url}/health/ready", timeout=10)


def test_sigterm_makes_the_instance_not_ready_and_it_keeps_serving_until_the_delay_ends_then_exits_0(
        app, database_url, user, make_post):
    make_post(user, "Still served")
    server = start_gunicorn(database_url, workers=2, launcher=LAUNCHER,
                            env={"SHUTDOWN_DELAY": str(DELAY), "LOG_LEVEL": "INFO"})
    try:
        assert _ready(server.url).status_code == 200
        server.process.send_signal(signal.SIGTERM)
        wait_for(lambda: _ready(server.url).status_code == 503, timeout=DELAY, what="/health/ready to say 503")
        not_ready = _ready(server.url)
        assert not_ready.headers["Content-Type"] == "application/problem+json"
        assert "shutting down" in not_ready.json()["detail"]
        # Draining, yet every request on a new connection is answered as before.
        for _ in range(5):
            assert requests.get(f"{server.url}/health", timeout=10).status_code == 200
            page = requests.get(f"{server.url}/api/posts", timeout=10)
            assert page.status_code == 200 and page.json()[0]["title"] == "Still served"
            me = requests.get(f"{server.url}/api/users/me", headers=user.headers, timeout=10)
            assert me.status_code == 200
        assert "Handling signal: term" not in server.output()  # gunicorn itself has not been told yet
        assert server.process.wait(timeout=DELAY + 30) == 0
        assert "Handling signal: term" in server.output()
        assert "draining" in server.output()
    finally:
        server.stop()


@pytest.fixture
def long_delay(app, database_url) -> Iterator[LiveServer]:
    """gunicorn behind the launcher, with a lame-duck period far longer than any test waits."""
    server = start_gunicorn(database_url, workers=1, launcher=LAUNCHER,
                            env={"SHUTDOWN_DELAY": "300", "LOG_LEVEL": "INFO"})
    yield server
    server.stop()


def test_sigint_goes_to_gunicorn_at_once(long_delay):
    long_delay.process.send_signal(signal.SIGINT)
    assert long_delay.process.wait(timeout=60) == 0  # long before the 300 s a SIGTERM would wait
    assert "Handling signal: int" in long_delay.output()
    assert "draining" not in long_delay.output()


def test_a_second_sigterm_ends_the_delay(long_delay):
    long_delay.process.send_signal(signal.SIGTERM)
    wait_for(lambda: _ready(long_delay.url).status_code == 503, what="/health/ready to say 503")
    long_delay.process.send_signal(signal.SIGTERM)
    assert long_delay.process.wait(timeout=60) == 0
    assert "Handling signal: term" in long_delay.output()


def test_it_exits_with_the_status_of_its_command():
    done = subprocess.run([*LAUNCHER, sys.executable, "-c", "import sys; sys.exit(3)"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3


def test_it_exits_as_a_shell_would_when_a_signal_kills_its_command():
    done = subprocess.run([*LAUNCHER, sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 128 + signal.SIGKILL


def test_a_shutdown_delay_it_does_not_understand_stops_it_with_one_line():
    done = subprocess.run([*LAUNCHER, "true"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "SHUTDOWN_DELAY": "soon"})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: SHUTDOWN_DELAY: expected a duration in seconds (a number of seconds, or one with its unit: "
        "90s, 15m, 1h, 30d), got 'soon'"]


def test_a_command_that_does_not_exist_is_one_line():
    done = subprocess.run([*LAUNCHER, "no-such-command-here"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 127
    assert done.stderr.strip().splitlines() == ["error: cannot run 'no-such-command-here': No such file or directory"]


def test_the_image_stops_within_docker_stops_default_timeout():
    """`docker stop` waits 10 s before SIGKILL: the image's lame-duck period and gunicorn's
    graceful timeout fit in it, and its web command goes through serve.py."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    environment = dict(re.findall(r"^\s*(SHUTDOWN_DELAY|GUNICORN_GRACEFUL_TIMEOUT)=(\S+)", dockerfile, re.M))
    delay, graceful = stop_times(environment)
    assert delay > 0 and delay + graceful < 10
    assert re.search(r'^CMD \["python", "serve.py", "gunicorn", ', dockerfile, re.M)


def test_compose_waits_longer_than_the_lame_duck_period_and_gunicorns_drain():
    compose = (ROOT / "deploy" / "compose.yaml").read_text()
    environment = dict(re.findall(r'^\s*(SHUTDOWN_DELAY|GUNICORN_GRACEFUL_TIMEOUT): "(\S+)"', compose, re.M))
    delay, graceful = stop_times(environment)
    assert delay > 0
    assert int(re.search(r"^\s*stop_grace_period: (\d+)s", compose, re.M)[1]) > delay + graceful
