"""Logging set-up with secrets redacted: tokens never reach a log line."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from bot.private import private_file

# Slack tokens (xoxb-, xoxp-, xapp-, ...), bearer headers, AWS secret-looking values after "secret".
_SECRET = re.compile(
    r"(xox[a-z]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|(?i:bearer)\s+[A-Za-z0-9._~+/=-]+"
    r"|(?i:(?:secret|password|token)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+)"
)


def redact(text: str) -> str:
    return _SECRET.sub(lambda m: m.group(0)[:4] + "…[redacted]", text)


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(level: int = logging.INFO, file: Path | None = None, stderr_level: int = logging.INFO) -> None:
    """Log to stderr at ``stderr_level`` and, if given, to ``file`` at ``level`` (both redacted)."""
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(min(level, stderr_level))
    fmt = RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    err = logging.StreamHandler()
    err.setLevel(stderr_level)
    err.setFormatter(fmt)
    root.addHandler(err)
    if file is not None:
        private_file(file)
        handler = logging.FileHandler(file, encoding="utf-8")
        handler.setLevel(level)
        handler.setFormatter(fmt)
        root.addHandler(handler)
    for noisy in ("asyncio", "botocore", "urllib3", "matplotlib", "traitlets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
