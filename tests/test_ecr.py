"""ECR's credentials (mirror/ecr.py): renewed before they expire, and never in a storm."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from mirror.ecr import EcrCredentials


class FakeEcr:
    def __init__(self, expires: datetime) -> None:
        self.expires = expires
        self.calls = 0

    def get_authorization_token(self) -> dict[str, Any]:
        self.calls += 1
        token = base64.b64encode(f"AWS:pw-{self.calls}".encode()).decode()
        return {
            "authorizationData": [
                {
                    "authorizationToken": token,
                    "expiresAt": self.expires,
                    "proxyEndpoint": "https://1.dkr.ecr.eu-west-1.amazonaws.com",
                }
            ]
        }


def test_ecr_credentials_renew_before_expiry() -> None:
    now = [1_000_000.0]
    fake = FakeEcr(datetime.fromtimestamp(now[0] + 12 * 3600, UTC))
    creds = EcrCredentials("eu-west-1", clock=lambda: now[0], ecr_client=fake)
    assert creds.get().password == "pw-1"
    assert creds.endpoint == "https://1.dkr.ecr.eu-west-1.amazonaws.com"
    now[0] += 11 * 3600  # 1 h left: still more than the 30 min margin
    assert creds.get().password == "pw-1"
    now[0] += 40 * 60  # 20 min left: renew
    fake.expires = datetime.fromtimestamp(now[0] + 12 * 3600, UTC)
    assert creds.get().password == "pw-2"
    assert "pw-" not in repr(creds) and "pw-" not in repr(creds.get())


def test_a_token_that_reads_expired_does_not_cause_a_renewal_storm() -> None:
    now = [2_000_000_000.0]
    fake = FakeEcr(datetime(2015, 1, 1, tzinfo=UTC))  # what moto answers
    creds = EcrCredentials("us-east-1", clock=lambda: now[0], ecr_client=fake)
    for _ in range(100):
        creds.get()
        creds.renew()
    assert fake.calls == 1
    now[0] += 61
    creds.get()
    creds.renew()
    assert fake.calls == 2
