"""ECR registry credentials from `GetAuthorizationToken`, renewed before they expire.

ECR's registry speaks HTTP Basic with user `AWS` and a password valid for 12 hours. A long
sync must renew it: `EcrCredentials.get()` renews when less than `renew_before` is left, and
`renew()` (after a 401) renews at once. Both are bounded below by `min_interval`, so a token
that already reads as expired (moto answers an `expiresAt` in 2015) cannot cause a renewal
storm.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from mirror.aws import client
from mirror.errors import CredentialsError
from mirror.registry.auth import Credentials


class EcrCredentials:
    """A `CredentialsProvider` for ECR, and the registry endpoint it names."""

    def __init__(
        self,
        region: str | None,
        *,
        renew_before: float = 30 * 60,
        min_interval: float = 60.0,
        clock: Callable[[], float] = time.time,
        ecr_client: Any = None,
    ) -> None:
        self._region = region
        self._renew_before = renew_before
        self._min_interval = min_interval
        self._clock = clock
        self._client = ecr_client
        self._lock = threading.Lock()
        self._credentials: Credentials | None = None
        self._endpoint: str | None = None
        self._expires_at = 0.0
        self._fetched_at = float("-inf")

    def __repr__(self) -> str:
        return f"EcrCredentials(region={self._region!r}, endpoint={self._endpoint!r})"

    @property
    def endpoint(self) -> str:
        """The registry URL (`proxyEndpoint`), e.g. https://<account>.dkr.ecr.<region>..."""
        if self._endpoint is None:
            self.get()
        assert self._endpoint is not None
        return self._endpoint

    def get(self) -> Credentials:
        with self._lock:
            now = self._clock()
            due = self._credentials is None or now >= self._expires_at - self._renew_before
            if due and (self._credentials is None or now - self._fetched_at >= self._min_interval):
                self._fetch(now)
            assert self._credentials is not None
            return self._credentials

    def renew(self) -> None:
        with self._lock:
            now = self._clock()
            if now - self._fetched_at >= self._min_interval:
                self._fetch(now)

    def _fetch(self, now: float) -> None:
        import botocore.exceptions

        try:
            ecr = self._client or client("ecr", self._region)
            answer = ecr.get_authorization_token()
            data = answer["authorizationData"][0]
            username, _, password = (
                base64.b64decode(data["authorizationToken"]).decode().partition(":")
            )
        except botocore.exceptions.BotoCoreError as exc:
            raise CredentialsError(
                f"ECR GetAuthorizationToken failed: {type(exc).__name__}: {exc}"
            ) from None
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            raise CredentialsError(
                f"ECR GetAuthorizationToken failed: {error.get('Code')}: {error.get('Message')}"
            ) from None
        except (KeyError, IndexError, ValueError) as exc:
            raise CredentialsError(
                f"ECR GetAuthorizationToken gave an unreadable answer ({type(exc).__name__})"
            ) from None
        self._credentials = Credentials(username, password)
        self._endpoint = str(data.get("proxyEndpoint") or "").rstrip("/") or None
        expires = data.get("expiresAt")
        self._expires_at = expires.timestamp() if isinstance(expires, datetime) else now + 12 * 3600
        self._fetched_at = now
