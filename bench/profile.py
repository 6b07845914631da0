"""Where a list request's time goes: pyinstrument over many in-process requests.

Runs against the benchmark database that `make bench`/`make bench-quick` left
behind (app_bench), with the production config, through the Flask test client
(so the WSGI server and the socket are not in the picture; the floor has them
too). Writes bench/out/profile-<name>.txt and .html and prints the text.

    python bench/profile.py                      # GET /api/posts?limit=20
    python bench/profile.py --path '/api/users/1/posts' --requests 2000
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", default="/api/posts?limit=20")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE", "app_bench"))
    parser.add_argument("--time-only", action="store_true", help="no profiler: just ms per request")
    parser.add_argument("--log-level", default="INFO", help="the app's LOG_LEVEL (production: INFO)")
    options = parser.parse_args()
    os.environ.update(
        APP_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(48),
        JWT_SECRET_KEY=secrets.token_urlsafe(48),
        DATABASE_URL=f"postgresql://postgres@127.0.0.1:5432/{options.database}",
        RATELIMIT_ENABLED="0",
        LOG_LEVEL=options.log_level,
        PUBLIC_BASE_URL="http://localhost",  # the test client's host
        MAIL_SERVER="127.0.0.1",  # production requires one; requests only queue mail, and no worker runs
    )
    sys.path.insert(0, str(ROOT))
    from pyinstrument import Profiler
    from pyinstrument.renderers import ConsoleRenderer

    from app import create_app

    app = create_app()
    OUT.mkdir(exist_ok=True)
    handler = logging.FileHandler(OUT / "profile-requests.log")  # like gunicorn's log file
    logging.getLogger().handlers[:] = [handler]
    client = app.test_client()
    for _ in range(50):
        assert client.get(options.path).status_code == 200
    if options.time_only:
        started = time.perf_counter()
        for _ in range(options.requests):
            client.get(options.path)
        elapsed = time.perf_counter() - started
        print(f"{options.path}: {elapsed / options.requests * 1000:.3f} ms per request (in process)")
        return
    profiler = Profiler(interval=0.0002)
    started = time.perf_counter()
    profiler.start()
    for _ in range(options.requests):
        client.get(options.path)
    profiler.stop()
    elapsed = time.perf_counter() - started
    name = options.path.strip("/").split("?")[0].replace("/", "-")
    text = profiler.output_text(unicode=True, color=False, show_all=False)
    flat = profiler.output(ConsoleRenderer(unicode=True, color=False, flat=True, time="percent_of_total"))
    flat = "\n".join(flat.splitlines()[:45])
    (OUT / f"profile-{name}.txt").write_text(text + "\n" + flat)
    (OUT / f"profile-{name}.html").write_text(profiler.output_html())
    print(text)
    print("Self time by function (top of the flat profile):")
    print(flat)
    print(
        f"{options.requests} requests in {elapsed:.2f} s under the profiler: "
        f"{elapsed / options.requests * 1000:.2f} ms per request (profiler overhead included)"
    )


if __name__ == "__main__":
    main()
