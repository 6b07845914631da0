"""The settings every connection of the app's engines runs with (app/database.py `REQUEST_SETTINGS`):
short requests never pay for JIT compilation or for starting parallel workers."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from app.database import named_engines


@pytest.fixture
def postgresql_only(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("JIT and parallel query are PostgreSQL settings")


def _setting(engine, name: str) -> str:
    with engine.connect() as connection:
        return connection.execute(text(f"SHOW {name}")).scalar_one()


def test_every_engine_runs_its_queries_without_parallel_workers(app, postgresql_only):
    engines = named_engines(app)
    assert {"primary", "reads"} <= engines.keys()
    assert {name: _setting(engine, "max_parallel_workers_per_gather") for name, engine in engines.items()} == {
        name: "0" for name in engines}


def test_every_engine_runs_its_queries_without_jit(app, postgresql_only):
    engines = named_engines(app)
    assert {name: _setting(engine, "jit") for name, engine in engines.items()} == {name: "off" for name in engines}


def test_a_query_the_planner_would_split_over_workers_runs_in_one_process(app, postgresql_only):
    """Parallel plans made free (their costs set to zero for this connection only): the server's
    default would gather every scan from workers; the app's connections plan it in one process."""
    free = ("parallel_setup_cost", "parallel_tuple_cost", "min_parallel_table_scan_size")
    for name, engine in named_engines(app).items():
        with engine.connect() as connection:
            for setting in free:
                connection.execute(text(f"SET {setting} = 0"))
            plan = "\n".join(connection.execute(text("EXPLAIN SELECT count(*) FROM posts")).scalars())
            for setting in free:
                connection.execute(text(f"RESET {setting}"))
        assert "Gather" not in plan, f"{name}: {plan}"
