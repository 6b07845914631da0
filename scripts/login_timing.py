"""Known versus unknown email: does login timing tell them apart? (issue 10, reproduction 9)

Runs the app in process on a throwaway SQLite database with `BCRYPT_ROUNDS` (default 12).
The account's password is first hashed at another cost (as after raising
`BCRYPT_ROUNDS`); one login re-hashes it, then logins with a wrong password for the
known email and for unknown emails alternate, and the medians are compared. The same
is done for password-reset requests, from the first request of a freshly made app: they only
queue a message (the worker sends it), so neither does any network work.

    .venv/bin/python scripts/login_timing.py [--rounds 12] [--samples 30] [--stale-rounds 10]
        [--database postgresql://...test...]   # the resets on PostgreSQL instead of SQLite

A measurement, not a test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import bcrypt
from sqlalchemy import delete

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app
from app.extensions import db
from app.models import OutboxMessage, User
from app.services import users

PASSWORD = "Sup3rSecret"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--stale-rounds", type=int, default=10)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--reset-samples", type=int, default=50)
    parser.add_argument("--database", help="a throwaway PostgreSQL database for the resets (its tables are emptied)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        app = create_app({"APP_ENV": "testing", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/timing.db",
                          "BCRYPT_ROUNDS": args.rounds, "RATELIMIT_ENABLED": False})
        with app.app_context():
            db.create_all()
            user = users.register(email="known@example.com", name="Known", password=PASSWORD)
            stale = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(args.stale_rounds)).decode()
            db.session.get(User, user.id).password_hash = stale
            db.session.commit()
        client = app.test_client()

        def login(email: str, password: str) -> tuple[float, int]:
            start = time.perf_counter()
            status = client.post("/api/auth/login", json={"email": email, "password": password}).status_code
            return (time.perf_counter() - start) * 1000, status

        stale_known, _ = login("known@example.com", "Wr0ngPassword")  # before any successful login
        rehash_ms, status = login("known@example.com", PASSWORD)
        assert status == 200
        with app.app_context():
            cost = db.session.get(User, user.id).password_hash.split("$")[2]
        login("nobody@example.com", "Wr0ngPassword")  # warm the dummy hash

        known, unknown = [], []
        for n in range(args.samples):
            known.append(login("known@example.com", "Wr0ngPassword")[0])
            unknown.append(login(f"nobody{n}@example.com", "Wr0ngPassword")[0])

        reset_known, reset_unknown = reset_timings(args, f"sqlite:///{folder}/timing.db")

    k, u = statistics.median(known), statistics.median(unknown)
    print(f"BCRYPT_ROUNDS={args.rounds}, {args.samples} logins each way, alternating; stored cost after the "
          f"first successful login: {cost} (was {args.stale_rounds})")
    print()
    print("| login (wrong password) | median ms | min ms | max ms |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| known email | {k:.1f} | {min(known):.1f} | {max(known):.1f} |")
    print(f"| unknown email | {u:.1f} | {min(unknown):.1f} | {max(unknown):.1f} |")
    print()
    print(f"difference of the medians: {abs(k - u) / max(k, u) * 100:.1f}% (target: within 10%)")
    print(f"for reference: known email with its hash still at cost {args.stale_rounds}: {stale_known:.1f} ms; "
          f"the re-hashing login: {rehash_ms:.1f} ms")
    rk, ru = statistics.median(reset_known), statistics.median(reset_unknown)
    print()
    print(f"| password-reset request ({'PostgreSQL' if args.database else 'SQLite'}, from the first request "
          f"of a new app) | median ms | min ms | max ms |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| known email (message queued) | {rk:.2f} | {min(reset_known):.2f} | {max(reset_known):.2f} |")
    print(f"| unknown email (nothing queued) | {ru:.2f} | {min(reset_unknown):.2f} | {max(reset_unknown):.2f} |")
    print()
    print(f"difference of the medians: {abs(rk - ru):.2f} ms over {args.reset_samples} of each (target: within 2 ms)")


def reset_timings(args: argparse.Namespace, sqlite_url: str) -> tuple[list[float], list[float]]:
    """Reset requests for a known and unknown emails, alternating, from a freshly made app's first
    request on (no warm-up: the first requests after a start are the ones that used to differ)."""
    url = args.database or sqlite_url
    setup = create_app({"APP_ENV": "testing", "SQLALCHEMY_DATABASE_URI": url, "BCRYPT_ROUNDS": 4})
    with setup.app_context():
        if args.database:
            db.create_all()
            db.session.execute(delete(OutboxMessage))
            db.session.execute(delete(User).where(User.email == "reset-known@example.com"))
            db.session.commit()
        users.register(email="reset-known@example.com", name="Known", password=PASSWORD)
        db.session.commit()
    app = create_app({"APP_ENV": "testing", "SQLALCHEMY_DATABASE_URI": url, "RATELIMIT_ENABLED": False})
    client = app.test_client()

    def reset(email: str) -> float:
        start = time.perf_counter()
        assert client.post("/api/auth/password-reset", json={"email": email}).status_code == 202
        return (time.perf_counter() - start) * 1000

    known, unknown = [], []
    for n in range(args.reset_samples):
        known.append(reset("reset-known@example.com"))
        unknown.append(reset(f"nobody{n}@example.com"))
    return known, unknown


if __name__ == "__main__":
    main()
