"""esm_medic.diagnose.secretshape: the shape of a secret (keys, PEM labels, dates), never its values."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from esm_medic.diagnose import secretshape

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

NOW = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
PASSWORD = "s3cr3t-P@ssw0rd-never-printed"


def _cert(subject: str, issuer: str, key, signer, *, days: int = 365, start_days_ago: int = 1):
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=start_days_ago))
        .not_valid_after(NOW + dt.timedelta(days=days))
    )
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture(scope="module")
def pki():
    ca_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("test-ca", "test-ca", ca_key, ca_key)
    leaf = _cert("esm-client", "test-ca", leaf_key, ca_key)
    expired = _cert("esm-client", "test-ca", leaf_key, ca_key, days=-10, start_days_ago=400)

    def pem(c):
        return c.public_bytes(serialization.Encoding.PEM).decode()

    return {
        "ca": pem(ca),
        "leaf": pem(leaf),
        "expired": pem(expired),
        "key_pkcs8": leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        "key_pbes2": leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        ).decode(),
        "key_sec1": leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        ).decode(),
    }


def _analyse(value, sac_type: str):
    text = value if isinstance(value, str) else json.dumps(value)
    return secretshape.analyse({"SecretString": text}, sac_type, now=NOW)


def _causes(shape) -> list[str]:
    return [c for c, _ in shape.problems]


def test_scram_secret_keys_only():
    shape = _analyse({"username": "alice", "password": PASSWORD}, "SASL_SCRAM_512_AUTH")
    assert shape.ok
    assert shape.evidence["keys"] == ["password", "username"]
    assert PASSWORD not in json.dumps(shape.evidence) and "alice" not in json.dumps(shape.evidence)


@pytest.mark.parametrize(
    "value",
    [{"username": "alice"}, {"user": "alice", "pass": PASSWORD}, {"username": "", "password": PASSWORD}, "plain"],
)
def test_scram_secret_without_username_and_password(value):
    shape = _analyse(value, "SASL_SCRAM_512_AUTH")
    assert _causes(shape) and set(_causes(shape)) == {"wrong-credentials"}
    blob = json.dumps([shape.evidence, shape.problems])
    assert PASSWORD not in blob and "alice" not in blob


def test_binary_secret_is_reported_not_read():
    shape = secretshape.analyse({"SecretBinary": b"\x00" * 10}, "BASIC_AUTH")
    assert shape.evidence == {"format": "binary", "length": 10}
    assert _causes(shape) == ["wrong-credentials"]


def test_mtls_secret_in_order(pki):
    shape = _analyse({"certificate": pki["leaf"] + pki["ca"], "privateKey": pki["key_pkcs8"]}, secretshape.CLIENT_CERT)
    assert shape.ok, shape.problems
    assert shape.evidence["certificate_pem_blocks"] == ["CERTIFICATE", "CERTIFICATE"]
    assert shape.evidence["privateKey_pem_blocks"] == ["PRIVATE KEY"]
    certs = shape.evidence["certificate_certificates"]
    assert [c["self_signed"] for c in certs] == [False, True]
    assert certs[0]["not_after"].startswith("2027-11-26")
    body = pki["key_pkcs8"].splitlines()[1]
    assert body not in json.dumps(shape.evidence)


def test_mtls_chain_order_expiry_and_key_formats(pki):
    assert "chain-order" in _causes(
        _analyse({"certificate": pki["ca"] + pki["leaf"], "privateKey": pki["key_pkcs8"]}, secretshape.CLIENT_CERT)
    )
    assert "expired-client-cert" in _causes(
        _analyse({"certificate": pki["expired"], "privateKey": pki["key_pkcs8"]}, secretshape.CLIENT_CERT)
    )
    assert _causes(_analyse({"certificate": pki["leaf"], "privateKey": pki["key_sec1"]}, secretshape.CLIENT_CERT)) == [
        "not-pkcs8"
    ]
    pbes2 = _analyse({"certificate": pki["leaf"], "privateKey": pki["key_pbes2"]}, secretshape.CLIENT_CERT)
    assert set(_causes(pbes2)) == {"pbes2-encrypted", "missing-password"}
    assert pbes2.evidence["key_encryption"] == "PBES2"


def test_pbes1_encrypted_key_with_password_is_fine(pki):
    # EncryptedPrivateKeyInfo { AlgorithmIdentifier { pbeWithSHA1AndDES-CBC, params }, encryptedData }
    oid = bytes.fromhex("06092a864886f70d01050a")
    params = bytes.fromhex("300e0408") + b"\x01" * 8 + bytes.fromhex("020207d0")
    alg = b"\x30" + bytes([len(oid + params)]) + oid + params
    data = b"\x04\x10" + b"\x02" * 16
    der = b"\x30" + bytes([len(alg + data)]) + alg + data
    pem = (
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
        + base64.b64encode(der).decode()
        + "\n-----END ENCRYPTED PRIVATE KEY-----\n"
    )
    shape = _analyse(
        {"certificate": pki["leaf"], "privateKey": pem, "privateKeyPassword": PASSWORD}, secretshape.CLIENT_CERT
    )
    assert shape.ok, shape.problems
    assert shape.evidence["key_encryption"] == "PBES1"
    assert shape.evidence["has_privateKeyPassword"] is True
    assert PASSWORD not in json.dumps(shape.evidence)


def test_not_pem_and_lost_line_breaks(pki):
    der = {"certificate": "MIIBsandboxDER==", "privateKey": "MIIEsandboxDER=="}
    assert set(_causes(_analyse(der, secretshape.CLIENT_CERT))) == {"not-pem"}
    one_line = pki["leaf"].replace("\n", " ")
    assert "not-pem" in _causes(
        _analyse({"certificate": one_line, "privateKey": pki["key_pkcs8"]}, secretshape.CLIENT_CERT)
    )
    escaped = pki["leaf"].replace("\n", "\\n")
    assert "not-pem" in _causes(
        _analyse({"certificate": escaped, "privateKey": pki["key_pkcs8"]}, secretshape.CLIENT_CERT)
    )


def test_root_ca_secret(pki):
    assert _analyse({"certificate": pki["ca"]}, secretshape.ROOT_CA).ok
    assert _causes(_analyse({"cert": pki["ca"]}, secretshape.ROOT_CA)) == ["not-pem"]
