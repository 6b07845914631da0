"""What gunicorn loads: `gunicorn -c gunicorn.conf.py wsgi:app`."""

import sys

from app import create_app
from config import ConfigurationError

try:
    app = create_app()
except ConfigurationError as error:
    sys.exit(f"error: {error}")
