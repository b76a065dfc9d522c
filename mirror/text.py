"""Text from outside (registries, AWS, exceptions), made safe to show on a terminal.

Two functions, applied where such text is printed (report lines and tables, progress, log
lines, the CLI's error line):

- `printable` makes a string one harmless line: escape sequences (ANSI colours, cursor moves,
  OSC hyperlinks and titles) and every other control character removed, whitespace collapsed,
  the length capped. Printing through rich is done with markup off on top of this.
- `redact` hides what looks like a credential: Authorization header values, Basic and Bearer
  tokens, the header values httpx quotes in its errors, and the secrets given.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Iterable, Mapping

__all__ = ["ERROR_LIMIT", "FIELD_LIMIT", "REDACTED", "known_secrets", "printable", "redact"]

FIELD_LIMIT = 300  # a tag, an image name, a registry's message in a table cell
ERROR_LIMIT = 1000  # a whole error line (it may quote a registry's message)
REDACTED = "<redacted>"
_ELLIPSIS = "…"

# ESC then: CSI (ESC [ ... final), OSC / DCS / PM / APC / SOS strings (up to BEL or ESC \),
# or a single character (ESC 7, ESC c, ...). The 8-bit C1 forms (\x9b, \x9d, ...) likewise.
_ESCAPE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]P^_X]|[\x9d\x90\x9e\x9f\x98])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -~]?"
)
_SPACES = re.compile(r"\s+")


def printable(text: object, limit: int | None = FIELD_LIMIT) -> str:
    """`text` as one line without control characters, at most `limit` characters long
    (cut with an ellipsis; None: no cap). Its leading spaces (an indent) are kept."""
    text = str(text)
    indent = " " * (len(text) - len(text.lstrip(" ")))
    line = _ESCAPE.sub("", text)
    line = "".join(
        " " if char.isspace() else char
        for char in line
        if char.isspace() or unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Co")
    )
    line = indent + _SPACES.sub(" ", line).strip()
    if limit is not None and len(line) > limit:
        line = line[: limit - 1].rstrip() + _ELLIPSIS
    return line


# The header values httpx and h11 quote in their errors ("Illegal header value b'...'"),
# `Authorization: ...` up to the end of the line, and Basic / Bearer credentials anywhere.
_HEADER_VALUE = re.compile(r"""(?i)(header value:?\s*)b?(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")
_AUTHORIZATION = re.compile(r"""(?i)((?:proxy-)?authorization['"]?\s*[:=,]\s*)[^\r\n]*""")
_SCHEME_TOKEN = re.compile(
    r"\b([Bb]asic|[Bb]earer|BASIC|BEARER)(\s+)([A-Za-z0-9._~+/-]+=*)(?![\w.~+/=\"-])"
)

# Variables whose values are secrets, and the pair a Basic credential is made of.
_SECRET_VARIABLES = ("DOCKERHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_USER_VARIABLE, _PASSWORD_VARIABLE = "DOCKERHUB_USERNAME", "DOCKERHUB_TOKEN"


def known_secrets(environ: Mapping[str, str]) -> list[str]:
    """The secrets the environment holds, plain and in the base64 `user:token` form."""
    secrets = [environ[name] for name in _SECRET_VARIABLES if environ.get(name)]
    user, token = environ.get(_USER_VARIABLE), environ.get(_PASSWORD_VARIABLE)
    if user and token:
        secrets.append(base64.b64encode(f"{user}:{token}".encode()).decode("ascii"))
    return secrets


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with credentials replaced by `<redacted>`: header values quoted by an HTTP
    library, Authorization values, Basic / Bearer tokens, and each of `secrets`."""
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _HEADER_VALUE.sub(rf"\1{REDACTED}", text)
    text = _AUTHORIZATION.sub(rf"\1{REDACTED}", text)
    return _SCHEME_TOKEN.sub(_scheme_token, text)


def _scheme_token(match: re.Match[str]) -> str:
    """`Basic <redacted>`; English words after "basic" or "bearer" stay as they are."""
    token = match[3]
    if token.isalpha() and token.islower():
        return match[0]
    return f"{match[1]}{match[2]}{REDACTED}"
