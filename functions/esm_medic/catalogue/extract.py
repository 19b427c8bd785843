"""Parameters pulled out of a status text: broker host and port, ARNs (keyed by service), the first topic listed.

``extract_params`` reads any text. ``extract_ascii`` gives exactly the same result for an ASCII text, faster, when
the caller already knows which extractors can find something (the matcher's single pass looks for ``TRIGGERS``)
and searches only where a match can start: a topic list from the first ``topic``, a host:port from the host run
before each colon that a digit follows.
No boto3 here.
"""

from __future__ import annotations

import re

ARN = re.compile(r"arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d{12}:[A-Za-z0-9_+=,.@:/-]+")
HOSTPORT = re.compile(r"\b((?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}|\d{1,3}(?:\.\d{1,3}){3}):(\d{2,5})\b")
TOPICS = re.compile(r"topics?:?\s*\[([^\]]+)\]", re.IGNORECASE)
COLON_DIGIT = re.compile(r":\d")  # cheap guard: most texts have a colon ("PROBLEM:", "Exception:") but no port

# Literals of which an ASCII text must contain one for each extractor to find anything (lower-cased).
TRIGGERS = {"arn": ("arn:",), "port": tuple(f":{d}" for d in range(10)), "topics": ("[",)}

_ARN_KEYS = {
    "secretsmanager": "secret_arn",
    "kms": "kms_key_arn",
    "kafka": "cluster_arn",
    "iam": "role_arn",
    "sts": "principal_arn",
    "ec2": "resource_arn",
}
_HOST_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-"  # all a HOSTPORT host can hold
_PORT_REACH = 7  # a match ends at most 6 characters after its colon (":" and 5 digits); one more for the \b


def extract_params(text: str) -> dict[str, str]:
    """Pull broker host/port, ARNs and topic names out of free text (empty dict when there are none)."""
    params: dict[str, str] = {}
    if "arn:" in text:
        _arns(text, params)
    if ":" in text and COLON_DIGIT.search(text):
        m = HOSTPORT.search(text)
        if m:
            params["host"], params["port"] = m.group(1), m.group(2)
    if "[" in text:
        _topic(TOPICS.search(text), params)
    return params


def extract_ascii(text: str, lowered: str, arns: int, port: int, topics: int) -> dict[str, str]:
    """``extract_params(text)`` for an ASCII ``text`` (``lowered`` is ``text.lower()``); each flag is false only
    when its extractor cannot find anything (its ``TRIGGERS`` literal is absent)."""
    params: dict[str, str] = {}
    if arns:
        _arns(text, params)
    if port:
        found = _hostport(text)
        if found is not None:
            params["host"], params["port"] = found
    if topics:
        start = lowered.find("topic")  # TOPICS starts with "topic" (any case): no match starts before this
        if start >= 0:
            _topic(TOPICS.search(text, start), params)
    return params


def _arns(text: str, params: dict[str, str]) -> None:
    for arn in ARN.findall(text):
        service = arn.split(":")[2]
        params.setdefault(_ARN_KEYS.get(service, f"{service}_arn"), arn.rstrip(".,;"))


def _topic(m: re.Match[str] | None, params: dict[str, str]) -> None:
    if m:
        params["topic"] = m.group(1).split(",")[0].strip()


def _hostport(text: str) -> tuple[str, str] | None:
    """``HOSTPORT.search(text)``'s two groups for an ASCII text, searching small windows only.

    A host holds no colon, so every match's colon is one that a digit follows, its start lies in the run of host
    characters just before that colon, and matches come in the order of their colons. For each such colon in turn,
    the window from one character before that run (the context of the leading ``\\b``) to the end of the longest
    port plus one character (the context of the trailing ``\\b``) holds every match with that colon, whole, with
    its context: the first colon whose window gives a match with that colon gives the leftmost match. A run with
    no dot holds no host."""
    for colon in COLON_DIGIT.finditer(text):
        at = colon.start()
        run = len(text[:at].rstrip(_HOST_CHARS))
        if "." not in text[run:at]:  # both kinds of host hold a dot (a domain name, a dotted IPv4 address)
            continue
        base = run - 1 if run else 0
        m = HOSTPORT.search(text[base : at + _PORT_REACH])
        if m is not None and base + m.end(1) == at:
            return m.group(1), m.group(2)
    return None
