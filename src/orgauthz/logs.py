"""Logging set-up: human text or one JSON object per line (``--log-format json``).

A JSON line holds ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, any
``extra={...}`` fields given to the logging call, and ``exception`` when there is one.
In JSON a message never spans lines (newlines are escaped), so shippers can split on them.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str)


def configure(fmt: str = "text", level: str = "INFO") -> None:
    """Sends all logs to stderr in ``fmt`` ("text" or "json") at ``level`` and above."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("casbin").setLevel(logging.ERROR)  # Casbin logs every request at INFO
    logging.getLogger("alembic").setLevel(logging.WARNING)
