"""Single-flight tables: whoever asks for a key first does the work; the others wait for it.

A run copies many tags whose images share manifests; each manifest must be fetched from
Docker Hub once and PUT to a repository once, whatever number of copies need it. A table
maps a key to the future of that work. A failed attempt does not stick: the next caller of
`claim` gets to try again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import Future
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """A table of work in flight or done, by key. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[K, Future[V]] = {}

    def claim(self, key: K) -> tuple[Future[V], bool]:
        """The future for `key`, and whether the caller must fulfil it (nobody has, or the
        last attempt failed)."""
        with self._lock:
            return self._claim(key)

    def claim_all(
        self, keys: Iterable[K], admit: Callable[[int], bool]
    ) -> list[tuple[Future[V], bool]] | None:
        """Claim every key at once, if `admit(n)` agrees, where n is how many claims would be
        the caller's to fulfil: checked and claimed in one step, so that no two callers both
        count a key as theirs. None when `admit` refuses (nothing is claimed then)."""
        keys = list(dict.fromkeys(keys))
        with self._lock:
            if not admit(sum(1 for key in keys if self._open(key))):
                return None
            return [self._claim(key) for key in keys]

    def set(self, key: K, value: V) -> None:
        """Record `key` as done with `value`, unless someone has claimed it already."""
        future: Future[V] = Future()
        future.set_result(value)
        with self._lock:
            if self._open(key):
                self._futures[key] = future

    def _open(self, key: K) -> bool:
        future = self._futures.get(key)
        return future is None or (future.done() and future.exception() is not None)

    def _claim(self, key: K) -> tuple[Future[V], bool]:
        if self._open(key):
            future: Future[V] = Future()
            self._futures[key] = future
            return future, True
        return self._futures[key], False


def fulfil(future: Future[V], work: Callable[[], V]) -> V:
    """Do the work a claim made the caller's, and tell whoever waits for it."""
    try:
        value = work()
    except BaseException as exc:
        future.set_exception(exc)
        raise
    future.set_result(value)
    return value
