"""`mirror quota`: Docker Hub's limit and what is left, read from a HEAD (no pull spent)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TextIO

from mirror.config import load_config
from mirror.credentials import find_source_credentials
from mirror.registries import open_registries, quota
from mirror.registry.auth import StaticCredentials
from mirror.text import printable

log = logging.getLogger("mirror")


def run_quota(config_path: Path, out: TextIO = sys.stdout) -> int:
    config = load_config(config_path)
    found = find_source_credentials(config)
    log.info("%s", found.describe())
    with open_registries(
        config, StaticCredentials(found.credentials), StaticCredentials(None), config.source.url, 1
    ) as registries:
        ratelimit = quota(registries.source)
    if ratelimit is None:
        out.write(f"{registries.source_name}: no rate limit stated (unlimited)\n")
    else:
        window = f"{ratelimit.window_seconds}s" if ratelimit.window_seconds else "unknown"
        out.write(
            f"limit: {ratelimit.limit}\nremaining: {ratelimit.remaining}\n"
            f"window: {window}\nsource: {printable(ratelimit.source or 'unknown')}\n"
        )
    return 0
