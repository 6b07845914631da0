"""SQL statements per request, and the plans of the list queries.

A debug run through the Flask test client against the benchmark database,
with the production config: a SQLAlchemy `before_cursor_execute` listener
counts statements per request, and the pool's pre-ping (a `SELECT 1` round
trip on every connection checkout, outside the event system) is counted by
wrapping the dialect's `do_ping`. The captured list statements are then run
under `EXPLAIN (ANALYZE, BUFFERS)` with their real parameters.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Probe:
    label: str
    method: str
    path: str
    json: dict | None = None
    auth: bool = False
    expect: int = 200
    runs: int = 5
    explain: bool = False


@dataclass
class Count:
    label: str
    statements: float
    pings: float
    status: int
    captured: list[tuple[str, Any]] = field(default_factory=list)


@dataclass
class Plan:
    label: str
    text: str
    seq_scan: bool
    sort: bool
    index_scan: bool
    most_rows: int  # the most rows any node produced: a whole-table scan or sort would show here

    def verdict(self) -> str:
        sort = "none" if not self.sort else "yes (small: see the rows)"
        return (
            f"index scan: {'yes' if self.index_scan else 'NO'}; sequential scan: "
            f"{'YES' if self.seq_scan else 'none'}; sort node: {sort}; "
            f"the largest node produced {self.most_rows} rows"
        )


def count_statements(probes: list[Probe], token: str | None) -> tuple[list[Count], list[Plan]]:
    """Run each probe once to warm up, then `runs` times counting statements."""
    from sqlalchemy import event

    from app import create_app, database
    from app.extensions import db

    app = create_app()
    logging.getLogger("app.request").setLevel(logging.WARNING)  # the per-request lines are noise here
    counts: list[Count] = []
    plans: list[Plan] = []
    with app.app_context():  # only to reach the engines: `g` must not outlive a request
        engine = db.engine
    engines = database.engines(app)  # the main engine and the read engine
    seen: list[tuple[str, Any]] = []
    pings = [0]

    def on_execute(_conn, _cursor, statement, parameters, _context, _many):
        seen.append((statement, parameters))

    original_pings = [e.dialect.do_ping for e in engines]

    def counting(original_ping):
        def counting_ping(dbapi_connection):
            pings[0] += 1
            return original_ping(dbapi_connection)

        return counting_ping

    for each, original_ping in zip(engines, original_pings, strict=True):
        event.listen(each, "before_cursor_execute", on_execute)
        each.dialect.do_ping = counting(original_ping)  # type: ignore[method-assign]
    client = app.test_client()
    try:
        for probe in probes:
            headers = {"Authorization": f"Bearer {token}"} if probe.auth and token else {}
            status, total_statements, total_pings, captured = 0, 0, 0, []
            for run in range(probe.runs + 1):
                seen.clear()
                pings[0] = 0
                response = client.open(probe.path, method=probe.method, json=probe.json, headers=headers)
                status = response.status_code
                if status != probe.expect:
                    raise RuntimeError(
                        f"{probe.label}: {probe.method} {probe.path} gave {status}, "
                        f"expected {probe.expect}: {response.get_data(as_text=True)[:300]}"
                    )
                if run == 0:
                    continue  # warm-up: first connection, dialect initialisation
                if run == 1:
                    captured = list(seen)
                total_statements += len(seen)
                total_pings += pings[0]
            counts.append(Count(probe.label, total_statements / probe.runs, total_pings / probe.runs, status, captured))
            if probe.explain:
                plans.append(_explain(engine, probe.label, captured))
    finally:
        for each, original_ping in zip(engines, original_pings, strict=True):
            event.remove(each, "before_cursor_execute", on_execute)
            each.dialect.do_ping = original_ping  # type: ignore[method-assign]
            each.dispose()
    return counts, plans


def explain(engine: Any, statement: str, parameters: Any, settings: Sequence[str] = ()) -> tuple[str, str]:
    """`EXPLAIN (ANALYZE, BUFFERS)` of a captured statement, in a transaction rolled back after it,
    with `settings` (`name=value`) set for that transaction: the statement with its values, and its plan."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for setting in settings:
            name, value = setting.split("=", 1)
            cursor.execute("SELECT set_config(%s, %s, true)", (name, value))
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        shown = cursor.mogrify(statement, parameters).decode()
        raw.rollback()
    finally:
        raw.close()
    return shown, plan


def _explain(engine, label: str, captured: list[tuple[str, Any]]) -> Plan:
    """The plan of the statement that reads posts (the list query itself)."""
    statement, parameters = next((s, p) for s, p in reversed(captured) if "FROM posts" in s)
    shown, text = explain(engine, statement, parameters)
    return Plan(
        label=label,
        text=f"{shown}\n\n{text}",
        seq_scan="Seq Scan" in text,
        sort=bool(re.search(r"(^|->\s*)(Incremental )?Sort\b", text, re.MULTILINE)),
        index_scan="Index Scan" in text or "Index Only Scan" in text,
        most_rows=max((int(n) for n in re.findall(r"actual time=\S+ rows=(\d+)", text)), default=0),
    )
