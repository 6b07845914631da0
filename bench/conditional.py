"""The benchmark's conditional-request rows: what a `304 Not Modified` of the list endpoint
costs against the full page (plain and gzip), and, with `--baseline REV`, the list endpoint
without conditional headers served by the code of REV beside today's.

Called by bench/run.py, which owns the servers and the wrk runner.
"""

from __future__ import annotations

import subprocess
import tarfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CPU_TARGET = 0.5  # a 304 may cost at most half the CPU of the full page


@dataclass
class Pair:
    label: str
    full: Any  # run.Result
    not_modified: Any

    @property
    def cpu_ratio(self) -> float:
        return self.not_modified.cpu_ms / self.full.cpu_ms if self.full.cpu_ms else 0.0


def etag(url: str, headers: dict[str, str]) -> str:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
        return response.headers["ETag"]


def measure_pairs(wrk: Callable[..., dict], summarise: Callable[..., Any], server: Any, path: str, mode: Any,
                  connections: int) -> list[Pair]:
    """The full page and its 304, without and with `Accept-Encoding: gzip` (which a 304 also
    saves), alternated round by round as the first page and the floor are, so that the
    machine's drift hits both alike; CPU is summed over the rounds."""
    pairs = []
    for label, extra in (("no compression", ()), ("gzip", ("Accept-Encoding", "gzip"))):
        tag = etag(server.url + path, dict(zip(extra[::2], extra[1::2], strict=True)))
        variants = {f"GET {path} ({label}): 200": extra,
                    f"GET {path} ({label}) + If-None-Match: 304": (*extra, "If-None-Match", tag)}
        for args in variants.values():
            wrk(server, server.url + path, mode.warmup, connections, "headers.lua", args)
        runs: dict[str, list[dict]] = {name: [] for name in variants}
        for _ in range(mode.rounds):
            for name, args in variants.items():
                runs[name].append(wrk(server, server.url + path, mode.duration, connections, "headers.lua", args))
        full, not_modified = (summarise(name, found) for name, found in runs.items())
        pairs.append(Pair(label, full, not_modified))
    return pairs


def baseline_tree(root: Path, out: Path, revision: str) -> Path:
    """The project as of `revision`, unpacked beside the benchmark's output (the shared .venv serves it)."""
    commit = subprocess.run(["git", "rev-parse", "--short", revision], cwd=root, check=True,
                            capture_output=True, text=True).stdout.strip()
    target = out / f"baseline-{commit}"
    if not target.exists():
        archive = out / f"baseline-{commit}.tar"
        subprocess.run(["git", "archive", "-o", str(archive), commit], cwd=root, check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
        archive.unlink()
    return target


def render_rows(pairs: list[Pair], mark: Callable[[bool], str], baseline: tuple[str, Any, Any] | None) -> list[str]:
    lines = [
        "## Conditional requests",
        "",
        "The first page of `GET /api/posts?limit=20`, and the same request with `If-None-Match` naming "
        "its current ETag (a 304 without a body). A page's tag is made of its posts' ids, versions and author "
        "names, its next cursor and its URL (app/api/conditional.py): the 304 reads those alone, not the "
        "titles and bodies. "
        "CPU counts the gunicorn workers and their PostgreSQL backends, summed over rounds that alternate "
        "the 200 and the 304.",
        "",
        "| Request | Requests/s | p50 (ms) | CPU ms/request | 304 CPU / 200 CPU |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for pair in pairs:
        for result, ratio in ((pair.full, ""), (pair.not_modified, f"{pair.cpu_ratio:.2f}")):
            lines.append(f"| {result.label} | {result.rps:,.0f} | {result.p50_ms:.2f} | {result.cpu_ms:.2f} "
                         f"| {ratio} |")
    worst = max(pair.cpu_ratio for pair in pairs)
    lines += ["", f"- **304 / full page, CPU per request: {worst:.2f}** at most; target ≤ {CPU_TARGET:.2f}: "
                  f"{mark(worst <= CPU_TARGET)}."]
    if baseline is not None:
        revision, before, after = baseline
        cpu = after.cpu_ms / before.cpu_ms if before.cpu_ms else 0.0
        lines.append(f"- **List endpoint without conditional headers, CPU per request today / `{revision}`: "
                     f"{cpu:.2f}** ({after.cpu_ms:.2f} vs {before.cpu_ms:.2f} ms; requests/s {after.rps:,.0f} vs "
                     f"{before.rps:,.0f}, alternated rounds; CPU is the noise-proof figure on a shared machine); "
                     f"target ≤ 1.05: {mark(cpu <= 1.05)}.")
    return [*lines, ""]
