"""Redaction: secret values never reach Slack, SNS, tickets, provider answers or logs.

:func:`redact` masks values under secret-named keys (an ARN that names a secret stays visible); :func:`redact_text`
masks secret-looking values inside free text (PEM blocks, ``password=...``, bearer tokens, AWS access key ids).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "***redacted***"

# ------------------------------------------------------------------------------------------------ redaction
_SECRET_KEY = re.compile(
    r"(pass(word|wd|phrase)?|secret_?string|secretstring|secret_?value|private_?key|privatekey|"
    r"client_?secret|signing_?(secret|key)|api_?key|access_?key|session_?token|task_?token|auth(orization)?_?token|"
    r"^token$|^secret$|credential|certificate_?key|keystore)",
    re.IGNORECASE,
)
# keys that name a secret without holding its value (ARNs, names, ids) stay visible
_SECRET_KEY_OK = re.compile(r"(arn|name|id|uri|type|count|present|exists|format|length|keys)$", re.IGNORECASE)
_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(-----END [A-Z0-9 ]+-----|\Z)", re.DOTALL)
_KV_SECRET = re.compile(
    r"""(?P<k>(?<![:/\w-])[\w-]*(?:password|passwd|pwd|secret|token|api[_-]?key|private[_-]?key|access[_-]?key)[\w-]*"""
    r"""["']?\s*[:=]\s*)(?P<q>["']?)(?!arn:)(?P<v>[^\s"',;}&]+)(?P=q)""",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
_AKID = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b")


def redact_text(text: str) -> str:
    """Mask secret-looking values inside free text (PEM blocks, ``password=...``, bearer tokens, AWS keys)."""
    if not text:
        return text
    out = _PEM.sub("[PEM block redacted]", text)
    out = _KV_SECRET.sub(lambda m: f"{m.group('k')}{m.group('q')}{REDACTED}{m.group('q')}", out)
    out = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", out)
    return _AKID.sub(REDACTED, out)


def is_secret_key(key: str) -> bool:
    k = str(key)
    return bool(_SECRET_KEY.search(k)) and not _SECRET_KEY_OK.search(k)


def _redact_item(key: str, value: Any, depth: int) -> Any:
    if is_secret_key(key) and value not in (None, ""):
        if isinstance(value, str) and value.startswith("arn:"):
            return value  # the ARN names the secret; it is not the secret
        return REDACTED
    return redact(value, depth + 1)


def redact(obj: Any, _depth: int = 0) -> Any:
    """A deep copy of ``obj`` with values under secret-named keys replaced and free text masked."""
    if _depth > 20:
        return "…"
    if isinstance(obj, Mapping):
        return {str(k): _redact_item(str(k), v, _depth) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [redact(v, _depth + 1) for v in obj]
    if isinstance(obj, str):
        return redact_text(obj)
    if isinstance(obj, (int, float, bool)) or obj is None:
        return obj
    return redact_text(str(obj))
