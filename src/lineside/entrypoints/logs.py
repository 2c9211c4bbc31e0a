"""One logging setup for every entrypoint: ``lineside serve`` (and its uvicorn workers), the
webhook worker, every CLI command and the demo call :func:`configure_logging`.

Why redaction sits on the handler and not on a logger: a logger's filters see only records
logged to that very logger, never those of its children (``lineside.mqtt``) or of libraries
(uvicorn, amqtt), while every record that is written passes through a handler. The handler's
formatter redacts the whole formatted line, so a secret inside an exception's traceback or
a library's own message is cut as well.

Map::

    redact()              every Lineside secret cut to its prefix
    RequestLogContext     request id and organization of the request being served
    configure_logging()   one stderr handler on the root logger, text or JSON, redacted
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from lineside.domain.secret_tokens import SecretKind

# Every prefix SecretKind knows (a new kind is covered without touching this), and webhooks'.
_PREFIXES = "|".join(re.escape(kind.value) for kind in SecretKind)
SECRET = re.compile(rf"\b({_PREFIXES}|whsec_)[A-Za-z0-9_\-+/=]{{8,}}")
# Production token ids are bare hex (Electric Imp's format, ADR 7): 64 digits. Plan ids (32
# digits, not secret) and UUIDs (hyphenated) are shorter runs and stay readable.
LONG_HEX = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{48,}(?![0-9A-Fa-f])")
# Brokers configured with GET put the MQTT password, and VerneMQ the hook secret, in the query.
SECRET_IN_QUERY = re.compile(r"([?&](?:password|secret)=)[^&\s\"]+")
REDACTED = "[redacted]"

# Libraries that narrate every connection or request at INFO: their warnings are what an
# operator needs, unless LINESIDE_LOG_LEVEL=debug asks for everything.
_CHATTY_LIBRARIES = ("amqtt", "transitions", "httpx", "httpcore", "hpack", "multipart", "asyncio", "alembic")
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def redact(text: str) -> str:
    text = SECRET_IN_QUERY.sub(rf"\1{REDACTED}", text)
    text = SECRET.sub(rf"\1{REDACTED}", text)
    return LONG_HEX.sub(REDACTED, text)


@dataclass
class RequestLogContext:
    """What a log line written while serving a request says about it. The middleware makes
    one per request; authentication fills in the organization (a mutable object, so a
    dependency running in a worker thread, with a copy of the context, still reaches it)."""

    request_id: str
    organization_id: str | None = None


_request: ContextVar[RequestLogContext | None] = ContextVar("lineside_request", default=None)


def begin_request(request_id: str) -> RequestLogContext:
    context = RequestLogContext(request_id)
    _request.set(context)
    return context


def note_organization(organization_id: str) -> None:
    context = _request.get()
    if context is not None:
        context.organization_id = organization_id


def current_request() -> RequestLogContext | None:
    return _request.get()


class RedactingTextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = _request.get()
        if context is not None:
            line = f"{line} [request {context.request_id}]"
        return redact(line)


class RedactingJsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request and organization ids."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = _request.get()
        if context is not None:
            entry["request_id"] = context.request_id
            if context.organization_id is not None:
                entry["org_id"] = context.organization_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # Secrets are made of characters JSON never escapes, so redacting the serialised line
        # is as good as redacting each field, and cannot miss one.
        return redact(json.dumps(entry, ensure_ascii=False, default=str))


class RoutineBrokerCalls(logging.Filter):
    """Drops the access lines of the Mosquitto plugin's routine calls answered 200 (its tick
    every recheck interval, its arrivals): a line every two seconds for ever says nothing.
    A failed one is still logged, and everything at debug level."""

    PATHS = frozenset({"/broker/mosquitto/tick", "/broker/mosquitto/arrivals"})

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args  # uvicorn's: client, method, path, HTTP version, status
        return not (isinstance(args, tuple) and len(args) == 5 and args[2] in self.PATHS and args[4] == 200)


class LinesideHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The one handler: marked, so configuring twice replaces it instead of doubling lines."""


def configure_logging(level: str = "info", log_format: str = "text", stream: TextIO | None = None) -> None:
    """Send every record (Lineside's, uvicorn's, amqtt's) through one redacting handler.

    Idempotent: a second call (the multi-worker app factory after the CLI) replaces the
    handler it installed before.
    """
    root = logging.getLogger()
    for existing in [h for h in root.handlers if isinstance(h, LinesideHandler)]:
        root.removeHandler(existing)
    handler = LinesideHandler(stream or sys.stderr)
    handler.setFormatter(RedactingJsonFormatter() if log_format == "json" else RedactingTextFormatter())
    root.addHandler(handler)
    numeric = logging.getLevelName(level.upper())
    root.setLevel(numeric if isinstance(numeric, int) else logging.INFO)
    # uvicorn installs handlers of its own unless told not to (log_config=None); in case it
    # did, its records go through ours instead of being written twice, unredacted.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True
    access = logging.getLogger("uvicorn.access")
    for routine in [f for f in access.filters if isinstance(f, RoutineBrokerCalls)]:
        access.removeFilter(routine)
    if root.level > logging.DEBUG:
        access.addFilter(RoutineBrokerCalls())
    quiet = logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING
    for name in _CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(quiet)
