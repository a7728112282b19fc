"""Log output: readable lines (the default) or one JSON object per line (``RAPPORT_LOG_FORMAT=json``), for
log collectors that index fields.

>>> import logging
>>> record = logging.LogRecord("rapport.worker", logging.WARNING, __file__, 1, "lag %d", (12,), None)
>>> record.created = 1796169600.0
>>> JsonFormatter().format(record)
'{"time":"2026-12-02T00:00:00.000Z","level":"warning","logger":"rapport.worker","message":"lag 12"}'
"""
from __future__ import annotations

import logging
import logging.config
import time

import orjson


class JsonFormatter(logging.Formatter):
    """``time`` (UTC, ms), ``level``, ``logger``, ``message``, and ``exception`` (the traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                       + f".{int(record.created * 1000) % 1000:03d}Z",
               "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out).decode()


def logging_config(fmt: str, level: str | int = "INFO") -> dict:
    """A ``logging.config.dictConfig`` for the given format (``text`` or ``json``) on stderr."""
    formatter = {"()": f"{__name__}.JsonFormatter"} if fmt == "json" else {
        "format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    return {"version": 1, "disable_existing_loggers": False, "formatters": {"main": formatter},
            "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stderr"}},
            "root": {"level": level if isinstance(level, int) else level.upper(), "handlers": ["stderr"]}}


def setup(fmt: str, level: str | int = "INFO") -> None:
    logging.config.dictConfig(logging_config(fmt, level))
