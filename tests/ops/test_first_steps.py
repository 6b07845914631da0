"""A newcomer's first steps: `make run` installs only what the app needs, saying what it
does, and `GET /` sends a visitor somewhere useful."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.helpers import ROOT

DEV_TOOLS = ("pytest", "schemathesis", "playwright", "py-spy", "pyinstrument", "hypothesis", "ruff",
             "openapi-python-client")


def make_dry_run(target: str) -> str:
    """The commands `make TARGET` would run from scratch (-B: as if nothing were installed yet)."""
    result = subprocess.run(["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def requirement_names(path: str) -> set[str]:
    names = set()
    for line in (ROOT / path).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[=<>~!\[; ]", line)[0].lower())
    return names


def test_make_run_installs_only_the_apps_requirements_and_says_so():
    commands = make_dry_run("run")
    assert "pip install" in commands and "-r requirements.txt" in commands
    assert "requirements-dev.txt" not in commands
    assert "installing the app's dependencies" in commands


def test_make_test_adds_the_test_tools_and_says_so():
    commands = make_dry_run("test")
    assert "-r requirements.txt" in commands and "-r requirements-dev.txt" in commands
    assert "installing the test and developer tools" in commands


@pytest.mark.parametrize("target", ["lint", "fmt"])
def test_make_lint_and_fmt_install_only_the_linter(target):
    """Issue 26, item 22: linting does not download the test toolchain (Playwright, Schemathesis ...)."""
    commands = make_dry_run(target)
    assert "-r requirements-lint.txt" in commands and "installing the linter only" in commands
    assert "requirements-dev.txt" not in commands and "-r requirements.txt" not in commands
    assert "ruff" in commands


def test_the_linters_pin_lives_in_one_file_the_developer_requirements_include():
    assert requirement_names("requirements-lint.txt") == {"ruff"}
    assert "ruff" not in requirement_names("requirements-dev.txt")
    assert "-r requirements-lint.txt" in (ROOT / "requirements-dev.txt").read_text().splitlines()


def test_the_runtime_requirements_hold_no_test_or_benchmark_tools():
    runtime = requirement_names("requirements.txt")
    assert not runtime & set(DEV_TOOLS)
    assert "flask" in runtime and "gunicorn" in runtime
    assert (ROOT / "requirements-dev.txt").read_text().startswith("-r requirements.txt")


def test_the_root_is_a_json_index_of_the_apis_entry_points(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["name"] == "Users & Posts API"
    links = body["links"]
    assert {"docs", "redoc", "openapi", "health", "ready", "register", "login", "users", "me", "posts",
            "admin"} <= links.keys()
    assert links["docs"] == "/docs" and links["openapi"] == "/openapi.json" and links["posts"] == "/api/posts"
    for name, path in links.items():
        assert path.startswith("/") and "//" not in path, name  # paths: no Host header in them
        assert client.get(path).status_code != 404, (name, path)  # some are POST-only (405)


def test_the_index_is_in_the_openapi_document(client):
    operation = client.get("/openapi.json").get_json()["paths"]["/"]["get"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Index")
