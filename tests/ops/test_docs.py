"""The docs cannot fall behind the code.

Every variable the app (each `Setting` of config.py's classes, and what config.py reads itself)
or gunicorn.conf.py reads has exactly one row in docs/configuration.md, no row names a variable
nothing reads any more, the links between the docs lead to files that exist, and the README's
curl walkthrough runs, as written, against the app under gunicorn.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from config import CONFIGS
from tests.helpers import ROOT, start_gunicorn

CONFIGURATION = ROOT / "docs" / "configuration.md"
ENVIRONMENT_READERS = ("environment_value", "os.environ.get", "os.getenv")
# Where a documented variable may be read: the app, its server, and the tools the docs describe.
SOURCES = ("config.py", "gunicorn.conf.py", "Makefile", ".ci/run", "app/**/*.py", "scripts/**/*", "bench/*.py",
           "tests/**/*.py")


def documented_variables() -> list[str]:
    """The variables named in the first cell of each table row of docs/configuration.md."""
    names = []
    for line in CONFIGURATION.read_text().splitlines():
        if line.startswith("| `"):
            names += re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1])
    return names


def setting_variables() -> set[str]:
    return {setting.env or key for config in CONFIGS.values() for key, setting in config.settings().items()}


def variables_read_by(path: Path) -> set[str]:
    """The variables a module reads by name: `environment_value("X", ...)`, `os.environ.get("X")`,
    `os.getenv("X")`, `os.environ["X"]`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ENVIRONMENT_READERS and node.args:
            name = node.args[0]
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            name = node.slice
        else:
            continue
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            found.add(name.value)
    return found


def test_every_setting_of_the_app_has_a_row_in_the_configuration_doc():
    missing = setting_variables() - set(documented_variables())
    assert not missing, f"add a row to docs/configuration.md for: {sorted(missing)}"


def test_every_variable_gunicorn_and_config_read_has_a_row_in_the_configuration_doc():
    read = variables_read_by(ROOT / "gunicorn.conf.py") | variables_read_by(ROOT / "config.py")
    assert {"APP_ENV", "GUNICORN_BIND", "WEB_CONCURRENCY", "PROMETHEUS_MULTIPROC_DIR"} <= read  # the reader works
    missing = read - set(documented_variables())
    assert not missing, f"add a row to docs/configuration.md for: {sorted(missing)}"


def test_each_variable_is_documented_once():
    twice = [name for name, rows in Counter(documented_variables()).items() if rows > 1]
    assert not twice, f"one row per variable in docs/configuration.md: {twice}"


def test_no_row_documents_a_variable_nothing_reads():
    sources = "\n".join(path.read_text(errors="replace") for pattern in SOURCES for path in ROOT.glob(pattern)
                        if path.is_file() and path != Path(__file__))
    stale = [name for name in documented_variables() if not re.search(rf"\b{name}\b", sources)]
    assert not stale, f"docs/configuration.md documents variables nothing reads: {stale}"


def test_links_between_the_docs_lead_to_files_that_exist():
    broken = []
    for doc in [ROOT / "README.md", *ROOT.glob("docs/**/*.md")]:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            path = target.split("#")[0]
            if path and "://" not in path and not (doc.parent / path).exists():
                broken.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert not broken, broken


def readme_walkthrough() -> str:
    """The README's copy-paste block: the one that sets `API`."""
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    return next(block for block in blocks if block.startswith("API=http://127.0.0.1:8000\n"))


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("python3")),
                    reason="the walkthrough needs curl and python3")
def test_the_readme_walkthrough_runs_as_written(database_url, tmp_path):
    server = start_gunicorn(database_url, workers=1)
    try:
        script = readme_walkthrough().replace("http://127.0.0.1:8000", server.url, 1)
        result = subprocess.run(["bash", "-eu", "-o", "pipefail", "-c", script], cwd=tmp_path, capture_output=True,
                                text=True, timeout=60)
    finally:
        server.stop()
    out = result.stdout
    assert result.returncode == 0, result.stderr + out
    assert out.startswith("HTTP/1.1 201"), out  # registered
    assert out.count('"author":{"id":1,"name":"Ann"}') >= 3 + 3  # three posts written, then listed
    lines = [line for line in out.splitlines() if line.strip()]
    pages = [n for n, line in enumerate(lines) if line.startswith("GET ")]
    assert len(pages) == 2 and "cursor=" in lines[pages[1]], out  # two pages, the second by the Link header
    second_page, by_prefix, by_exclusion, revalidated = lines[pages[1] + 1:]
    assert [post["title"] for post in json.loads(second_page)] == ["About Flask"], out
    assert [post["title"] for post in json.loads(by_prefix)] == ["About PostgreSQL"], out  # q=postgres
    assert [post["title"] for post in json.loads(by_exclusion)] == ["About PostgreSQL"], out  # notes -flask -redis
    assert revalidated == "304", out  # the ETag
