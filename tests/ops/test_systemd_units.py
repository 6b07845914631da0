"""deploy/systemd/: the unit files for hosts without containers, checked by systemd itself."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT, stop_times

UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))
INSTALLED_AT = "/opt/users-posts"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_unit_files_pass_systemd_analyze_verify(tmp_path: Path):
    """As installed, with this checkout in place of /opt/users-posts (verify checks that each
    ExecStart= exists and is executable)."""
    copies = []
    for unit in UNITS:
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace(INSTALLED_AT, str(ROOT)))
        copies.append(str(copy))
    assert [unit.name for unit in UNITS] == ["users-posts-worker.service", "users-posts.service"]
    result = subprocess.run(["systemd-analyze", "verify", *copies], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_systemd_waits_longer_than_the_lame_duck_period_and_gunicorns_drain():
    """systemd must not SIGKILL the instance while it drains: serve.py's SHUTDOWN_DELAY, then
    gunicorn's graceful timeout for the requests in flight."""
    unit = (ROOT / "deploy" / "systemd" / "users-posts.service").read_text()
    environment = dict(item.split("=", 1) for line in re.findall(r"^Environment=(.*)$", unit, re.M)
                       for item in line.split())
    assert "serve.py" in re.search(r"^ExecStart=(.*)$", unit, re.M)[1]
    assert "KillSignal=SIGTERM" in unit and "KillMode=mixed" in unit  # the signal goes to serve.py alone
    delay, graceful = stop_times(environment)
    assert delay > 0
    assert int(re.search(r"^TimeoutStopSec=(\d+)", unit, re.M)[1]) > delay + graceful
