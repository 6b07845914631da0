"""Schemathesis hooks for `make fuzz`: sign requests in as real accounts.

Each token fetch registers a fresh account and signs it in, so a fuzzed logout
(which revokes the token) or a fuzzed email change cannot lock the run out:
Schemathesis fetches again after a 401. The refresh endpoint gets the refresh
token; admin-only operations get an admin's token (`FUZZ_ADMIN_EMAIL`), except on
the signed-in account itself: deleting it would take its fresh posts with it
(cascade), which Schemathesis would then report as created resources gone missing.
"""

from __future__ import annotations

import os
import uuid

import requests
import schemathesis

BASE_URL = os.environ["FUZZ_BASE_URL"]
PASSWORD = "Fuzz-Passw0rd"
ADMIN_ONLY = {("DELETE", "/api/users/{user_id}")}


def _login(email: str, password: str) -> dict[str, str]:
    response = requests.post(f"{BASE_URL}/api/auth/login", json={"email": email, "password": password},
                             timeout=10)
    response.raise_for_status()
    return response.json()


@schemathesis.auth(refresh_interval=600)
class FreshAccounts:
    def get(self, case, ctx) -> dict[str, dict[str, str]]:
        email = f"fuzz-{uuid.uuid4().hex[:12]}@example.com"
        created = requests.post(f"{BASE_URL}/api/users", timeout=10,
                                json={"email": email, "name": "Fuzz User", "password": PASSWORD})
        created.raise_for_status()
        return {"user": _login(email, PASSWORD), "user_id": str(created.json()["id"]),
                "admin": _login(os.environ["FUZZ_ADMIN_EMAIL"], os.environ["FUZZ_ADMIN_PASSWORD"])}

    def set(self, case, data: dict, ctx) -> None:
        operation = (case.operation.method.upper(), case.operation.path)
        target = str((case.path_parameters or {}).get("user_id", ""))
        as_admin = operation in ADMIN_ONLY and target != data["user_id"]
        tokens = data["admin" if as_admin else "user"]
        kind = "refresh_token" if case.operation.path == "/api/auth/refresh" else "access_token"
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {tokens[kind]}"
