"""The image's HEALTHCHECK: GET /health on the container's own gunicorn, exit 0 if it answers 200.

Standard library only, no shell. The request names the public host (PUBLIC_BASE_URL's), which
production's TRUSTED_HOSTS accepts; a bare `127.0.0.1` would be refused with 400.
"""

import os
import sys
import urllib.request
from urllib.parse import urlsplit

port = os.environ.get("PORT") or "8000"
bind = os.environ.get("GUNICORN_BIND") or ""
if bind.rpartition(":")[2].isdigit():
    port = bind.rpartition(":")[2]
host = urlsplit(os.environ.get("PUBLIC_BASE_URL") or "").hostname or "localhost"
request = urllib.request.Request(f"http://127.0.0.1:{port}/health", headers={"Host": host})
try:
    with urllib.request.urlopen(request, timeout=3) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError as error:
    print(f"unhealthy: {error}", file=sys.stderr)
    sys.exit(1)
