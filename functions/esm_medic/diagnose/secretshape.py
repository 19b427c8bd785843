"""The shape of a Secrets Manager secret an ESM uses, never its values.

:func:`analyse` turns a GetSecretValue response into evidence that is safe to print and store: the JSON key names,
PEM block labels, lengths, certificate dates, the private-key encryption scheme. Passwords, keys and certificate
bodies never leave this module. Certificates are read with a tiny DER walker (stdlib only) to get the validity
dates and to compare subject / issuer names for chain order.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MAX_SECRET_BYTES = 65_536

SASL_TYPES = ("SASL_SCRAM_512_AUTH", "SASL_SCRAM_256_AUTH", "BASIC_AUTH")
CLIENT_CERT = "CLIENT_CERTIFICATE_TLS_AUTH"
ROOT_CA = "SERVER_ROOT_CA_CERTIFICATE"

_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
_PBES2_OID = bytes.fromhex("2a864886f70d01050d")  # 1.2.840.113549.1.5.13
_PKCS5_PREFIX = bytes.fromhex("2a864886f70d0105")  # 1.2.840.113549.1.5.x (PBES1 schemes)
_PKCS12_PBE_PREFIX = bytes.fromhex("2a864886f70d010c01")  # 1.2.840.113549.1.12.1.x


@dataclass
class SecretShape:
    """Safe-to-print facts about one secret, and the problems found (cause id, message)."""

    sac_type: str
    evidence: dict[str, Any] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# ---------------------------------------------------------------------------------------------- DER
class _DerError(ValueError):
    pass


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at ``pos``."""
    if pos + 2 > len(data):
        raise _DerError("truncated")
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or pos + n > len(data):
            raise _DerError("bad length")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    end = pos + length
    if end > len(data):
        raise _DerError("truncated")
    return tag, pos, end


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """[(tag, element start, content start, content end)] of a constructed element's content."""
    out = []
    pos = start
    while pos < end:
        tag, cstart, cend = _tlv(data, pos)
        out.append((tag, pos, cstart, cend))
        pos = cend
    return out


def _time(data: bytes, tag: int, start: int, end: int) -> datetime | None:
    text = data[start:end].decode("ascii", errors="replace").rstrip("Z")
    if tag == 0x17:  # UTCTime YYMMDDHHMM[SS]
        fmt, size = ("%y%m%d%H%M%S", 12) if len(text) >= 12 else ("%y%m%d%H%M", 10)
    elif tag == 0x18:  # GeneralizedTime YYYYMMDDHHMM[SS]
        fmt, size = ("%Y%m%d%H%M%S", 14) if len(text) >= 14 else ("%Y%m%d%H%M", 12)
    else:
        return None
    try:
        return datetime.strptime(text[:size], fmt).replace(tzinfo=UTC)
    except ValueError:
        return None


def certificate_facts(der: bytes) -> dict[str, Any]:
    """not_before / not_after (ISO), and raw subject / issuer bytes (for chain order) of one X.509 certificate."""
    _, cstart, cend = _tlv(der, 0)
    tbs_tag, _, tstart, tend = _children(der, cstart, cend)[0]
    if tbs_tag != 0x30:
        raise _DerError("not a certificate")
    fields = _children(der, tstart, tend)
    if fields and fields[0][0] == 0xA0:  # explicit version
        fields = fields[1:]
    # serial, signature algorithm, issuer, validity, subject
    if len(fields) < 5:
        raise _DerError("short TBSCertificate")
    issuer = der[fields[2][1] : fields[2][3]]
    validity = _children(der, fields[3][2], fields[3][3])
    subject = der[fields[4][1] : fields[4][3]]
    nb = _time(der, validity[0][0], validity[0][2], validity[0][3]) if len(validity) > 0 else None
    na = _time(der, validity[1][0], validity[1][2], validity[1][3]) if len(validity) > 1 else None
    return {
        "not_before": nb.isoformat() if nb else None,
        "not_after": na.isoformat() if na else None,
        "_not_after": na,
        "_subject": subject,
        "_issuer": issuer,
        "self_signed": subject == issuer,
    }


def key_encryption_scheme(der: bytes) -> str:
    """PBES2 / PBES1 / unknown, from an EncryptedPrivateKeyInfo."""
    try:
        _, cstart, cend = _tlv(der, 0)
        alg = _children(der, cstart, cend)[0]
        oid_tag, _, ostart, oend = _children(der, alg[2], alg[3])[0]
    except (_DerError, IndexError):
        return "unknown"
    if oid_tag != 0x06:
        return "unknown"
    oid = der[ostart:oend]
    if oid == _PBES2_OID:
        return "PBES2"
    if oid.startswith((_PKCS5_PREFIX, _PKCS12_PBE_PREFIX)):
        return "PBES1"
    return "unknown"


# ---------------------------------------------------------------------------------------------- PEM
@dataclass
class _Block:
    label: str
    der: bytes | None
    line_breaks: bool


def _pem_blocks(text: str) -> list[_Block]:
    out = []
    for m in _PEM.finditer(text):
        body = m.group(2)
        lines_ok = "\n" in body or len(body.strip()) <= 64
        try:
            der: bytes | None = base64.b64decode("".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            der = None
        out.append(_Block(m.group(1), der, lines_ok))
    return out


def _analyse_certificates(text: Any, what: str, shape: SecretShape, *, leaf_first: bool, now: datetime) -> None:
    if not isinstance(text, str) or not text.strip():
        shape.problems.append(("not-pem", f"{what} is missing or empty"))
        return
    blocks = _pem_blocks(text)
    labels = [b.label for b in blocks]
    shape.evidence[f"{what}_pem_blocks"] = labels
    shape.evidence[f"{what}_length"] = len(text)
    certs = [b for b in blocks if b.label == "CERTIFICATE"]
    if not certs:
        shape.problems.append(("not-pem", f"{what} holds no PEM CERTIFICATE block (DER or bare base64?)"))
        return
    if "\\n" in text or not all(b.line_breaks for b in certs):
        shape.problems.append(("not-pem", f"{what}: line breaks were lost (escaped \\n or one long line)"))
    facts = []
    for n, block in enumerate(certs):
        if block.der is None:
            shape.problems.append(("not-pem", f"{what}: certificate #{n + 1} is not valid base64"))
            continue
        try:
            facts.append(certificate_facts(block.der))
        except (_DerError, IndexError):
            shape.problems.append(("not-pem", f"{what}: certificate #{n + 1} is not a readable X.509 certificate"))
    shape.evidence[f"{what}_certificates"] = [{k: v for k, v in f.items() if not k.startswith("_")} for f in facts]
    if facts and leaf_first:
        na = facts[0].get("_not_after")
        if isinstance(na, datetime) and na < now:
            shape.problems.append(("expired-client-cert", f"the client certificate expired on {na.date()}"))
        for a, b in itertools.pairwise(facts):
            if a["_issuer"] != b["_subject"]:
                shape.problems.append(
                    ("chain-order", f"{what}: the chain is not in order (client, intermediates, root)")
                )
                break
    elif facts:
        na = facts[0].get("_not_after")
        if isinstance(na, datetime) and na < now:
            shape.problems.append(("wrong-root-ca", f"the root CA certificate expired on {na.date()}"))


def _analyse_private_key(doc: Mapping[str, Any], shape: SecretShape) -> None:
    key = doc.get("privateKey")
    if not isinstance(key, str) or not key.strip():
        shape.problems.append(("not-pem", "privateKey is missing or empty"))
        return
    blocks = _pem_blocks(key)
    labels = [b.label for b in blocks]
    shape.evidence["privateKey_pem_blocks"] = labels
    shape.evidence["privateKey_length"] = len(key)
    has_password = isinstance(doc.get("privateKeyPassword"), str) and bool(doc.get("privateKeyPassword"))
    shape.evidence["has_privateKeyPassword"] = has_password
    if not blocks:
        shape.problems.append(("not-pem", "privateKey holds no PEM block"))
        return
    block = blocks[0]
    if "\\n" in key or not block.line_breaks:
        shape.problems.append(("not-pem", "privateKey: line breaks were lost (escaped \\n or one long line)"))
    if block.label == "PRIVATE KEY":
        return
    if block.label == "ENCRYPTED PRIVATE KEY":
        scheme = key_encryption_scheme(block.der or b"")
        shape.evidence["key_encryption"] = scheme
        if scheme == "PBES2":
            shape.problems.append(("pbes2-encrypted", "the private key is PBES2-encrypted; only PBES1 is supported"))
        if not has_password:
            shape.problems.append(
                ("missing-password", "the private key is encrypted but privateKeyPassword is missing")
            )
        return
    shape.problems.append(
        ("not-pkcs8", f"the private key is '{block.label}', not PKCS#8 (BEGIN PRIVATE KEY / ENCRYPTED PRIVATE KEY)")
    )


def analyse(response: Mapping[str, Any], sac_type: str, *, now: datetime | None = None) -> SecretShape:
    """Shape and problems of a GetSecretValue response for a SourceAccessConfigurations type. Never keeps values."""
    now = now or datetime.now(UTC)
    shape = SecretShape(sac_type)
    text = response.get("SecretString")
    if not isinstance(text, str):
        binary = response.get("SecretBinary")
        shape.evidence["format"] = "binary" if binary is not None else "empty"
        shape.evidence["length"] = len(binary) if isinstance(binary, bytes | bytearray) else 0
        shape.problems.append(("wrong-credentials" if sac_type in SASL_TYPES else "not-pem", "no SecretString"))
        return shape
    shape.evidence["length"] = len(text)
    if len(text.encode("utf-8")) > MAX_SECRET_BYTES:
        shape.problems.append(("not-pem", f"the secret is larger than {MAX_SECRET_BYTES} bytes"))
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if not isinstance(doc, Mapping):
        shape.evidence["format"] = "text"
        shape.problems.append(
            ("wrong-credentials" if sac_type in SASL_TYPES else "not-pem", "the SecretString is not a JSON object")
        )
        return shape
    shape.evidence["format"] = "json"
    shape.evidence["keys"] = sorted(str(k) for k in doc)
    if sac_type in SASL_TYPES:
        for k in ("username", "password"):
            v = doc.get(k)
            ok = isinstance(v, str) and bool(v)
            shape.evidence[f"has_{k}"] = ok
            if not ok:
                shape.problems.append(("wrong-credentials", f"the JSON has no non-empty '{k}' string"))
    elif sac_type == CLIENT_CERT:
        _analyse_certificates(doc.get("certificate"), "certificate", shape, leaf_first=True, now=now)
        _analyse_private_key(doc, shape)
    elif sac_type == ROOT_CA:
        _analyse_certificates(doc.get("certificate"), "certificate", shape, leaf_first=False, now=now)
    return shape


__all__ = ["CLIENT_CERT", "ROOT_CA", "SASL_TYPES", "SecretShape", "analyse", "certificate_facts"]
