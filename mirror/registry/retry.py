"""The retry policy: one tenacity policy, with a predicate, bounded and jittered.

Retried: connection errors and resets, timeouts, bodies cut short, error answers that
`RegistryError.retryable` allows (408, 429 throttling, 5xx), and Docker engine failures marked
`EngineError.transient`. A `Retry-After` answer is honoured (capped). Never retried: Docker
Hub's spent pull quota, 401/403/404, wrong bytes, and any other exception: a bug should
surface, not loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from threading import Lock
from typing import TypeVar

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from mirror.errors import EngineError
from mirror.registry.errors import BlobIntegrityError, RegistryError

log = logging.getLogger("mirror.retry")
T = TypeVar("T")
MAX_RETRY_AFTER = 60.0


def is_transient(exc: BaseException) -> bool:
    """True for failures another attempt may cure."""
    if isinstance(exc, RegistryError):
        return exc.retryable
    if isinstance(exc, BlobIntegrityError):
        return exc.short
    if isinstance(exc, EngineError):
        return exc.transient
    return isinstance(exc, httpx.TransportError)


@dataclass
class RetryPolicy:
    """Bounded attempts with exponential backoff and full jitter; counts what it retried."""

    attempts: int = 5
    initial_wait: float = 0.5
    max_wait: float = 20.0
    sleep: Callable[[float], None] = time.sleep
    retries: int = field(default=0, init=False)
    _lock: Lock = field(default_factory=Lock, init=False, repr=False)

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_random_exponential(multiplier=self.initial_wait, max=self.max_wait)(state)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RegistryError) and exc.retry_after is not None:
            return max(backoff, min(exc.retry_after, MAX_RETRY_AFTER))
        return backoff

    def _before_sleep(self, state: RetryCallState) -> None:
        with self._lock:
            self.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        log.info("retrying after %s (attempt %d)", _describe(exc), state.attempt_number)

    def call(self, operation: Callable[[], T]) -> T:
        """Run `operation`, retrying transient failures."""
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=self._wait,
            retry=retry_if_exception(is_transient),
            before_sleep=self._before_sleep,
            sleep=self.sleep,
            reraise=True,
        )
        return retrying(operation)


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, httpx.TransportError):
        try:
            return f"{type(exc).__name__} on {exc.request.method} {exc.request.url.path}"
        except RuntimeError:  # no request attached
            return type(exc).__name__
    return str(exc)
