"""The test world's HTTP fronts: Docker Hub and Amazon ECR look-alikes over real registries.

* :class:`HubFront` (``tests/world/hubfront.py``): token auth, pull quota, CDN redirects,
  tags pagination and seeded faults over a plain distribution registry.
* :class:`EcrFront` (``tests/world/ecrfront.py``): repositories that must exist, immutable
  tags, broken chunked uploads and throttling over a distribution registry with htpasswd.

Both are ``start()``/``stop()`` or context managers, expose thread-safe ``counters`` and an
``errors`` list of unexpected exceptions (a world bug when not empty). Plumbing and the
choice of http.server + http.client are described in ``tests/world/httpfront.py``.
"""

from .ecrfront import REGISTRY_ID, EcrFaults, EcrFront
from .httpfront import MANIFEST_TYPES, Counters
from .hubfront import SERVICE, TOOMANYREQUESTS_MESSAGE, HubFaults, HubFront

__all__ = [
    "MANIFEST_TYPES",
    "REGISTRY_ID",
    "SERVICE",
    "TOOMANYREQUESTS_MESSAGE",
    "Counters",
    "EcrFaults",
    "EcrFront",
    "HubFaults",
    "HubFront",
]
