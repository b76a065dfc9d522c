"""`mirror status`: did last night's run work? The scheduled job on one screen.

Exit code 0 when all is well, 1 when something needs a human (`mirror.status_report.attention`),
2 for bad input (the config, checked before any AWS call).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from mirror.commands.schedule import load_with_text


def run_status(config_path: Path, *, output: str, builds: int, out: TextIO = sys.stdout) -> int:
    from mirror.status import read_status
    from mirror.status_report import attention, document, lines

    config, text = load_with_text(config_path)
    status = read_status(config, text, builds=builds, now=datetime.now(UTC))
    if output == "json":
        out.write(json.dumps(document(status), indent=2) + "\n")
    else:
        out.write("".join(line + "\n" for line in lines(status)))
    return 1 if attention(status) else 0
