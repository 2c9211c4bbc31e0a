"""Access logs print request paths, and a claim page's path holds a claim code: every
Lineside secret in a log record is cut down to its prefix before it is written.

Production token ids are bare hex (Electric Imp's format, ADR 7), so they are recognised by
where they sit: the fixture's claim poll puts one in its path."""

from __future__ import annotations

import logging
import re

from lineside.domain.secret_tokens import SecretKind

# Every prefix SecretKind knows (a new kind is covered without touching this), and webhooks'.
_PREFIXES = "|".join(re.escape(kind.value) for kind in SecretKind)
SECRET = re.compile(rf"\b({_PREFIXES}|whsec_)[A-Za-z0-9_\-+/=]{{8,}}")
PRODUCTION_TOKEN_IN_PATH = re.compile(r"(/enrollment-tokens/)[0-9A-Fa-f]{16,}")
# Brokers configured with GET put the MQTT password, and VerneMQ the hook secret, in the query.
SECRET_IN_QUERY = re.compile(r"([?&](?:password|secret)=)[^&\s\"]+")


def redact(text: str) -> str:
    text = SECRET_IN_QUERY.sub(r"\1[redacted]", text)
    return PRODUCTION_TOKEN_IN_PATH.sub(r"\1[redacted]", SECRET.sub(r"\1[redacted]", text))


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in args)
        return True


def install_log_redaction(*logger_names: str) -> None:
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactSecrets) for existing in logger.filters):
            logger.addFilter(RedactSecrets())
