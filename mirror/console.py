"""stderr, shared: one rich console for logs and progress bars, and the log handler.

Logs print above the live progress bars, not into them, because both go through the same
console. Kept apart from the report so that every command can log without importing it.
"""

from __future__ import annotations

import logging
import sys

from rich.console import Console
from rich.logging import RichHandler

from mirror.text import ERROR_LIMIT, printable

# One console for everything on stderr: logs print above the live progress bars, not into them.
STDERR = Console(stderr=True, highlight=False)


class _PrintableFormatter(logging.Formatter):
    """Each log message as one printable line: log lines quote registries' messages."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record), ERROR_LIMIT)


def log_handler() -> logging.Handler:
    """Logs to stderr: through the shared console on a terminal, plain lines otherwise."""
    handler: logging.Handler
    if STDERR.is_terminal:
        handler = RichHandler(
            console=STDERR, show_time=False, show_level=False, show_path=False, markup=False
        )
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_PrintableFormatter("%(message)s"))
    return handler
