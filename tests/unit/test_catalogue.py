"""The catalogue is data: it must match its schema, be internally consistent, and cover the errors the AWS
troubleshooting guides name."""

from __future__ import annotations

import copy
import json
import re

import pytest

from esm_medic.catalogue import CATALOGUE_PATH, CatalogueError, get_catalogue, load_catalogue
from esm_medic.models import FIX_IDS
from esm_medic.steps import Step

RAW = json.loads(CATALOGUE_PATH.read_text(encoding="utf-8"))


def test_packaged_catalogue_validates_and_loads():
    cat = load_catalogue()
    assert len(cat) == len(RAW["entries"]) >= 25
    assert re.fullmatch(r"\d{4}\.\d{2}\.\d{2}(\.\d+)?", cat.version)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["entries"][0].update(step="bogus"), "step"),
        (lambda d: d["entries"][0].pop("patterns"), "patterns"),
        (lambda d: d["entries"][0]["fixes"].append({"action": "rm-rf", "safety": "auto", "summary": "x"}), "rm-rf"),
        (lambda d: d["entries"][0]["fixes"][0].update(safety="yolo"), "yolo"),
        (lambda d: d.pop("version"), "version"),
    ],
)
def test_schema_rejects_bad_documents(tmp_path, mutate, message):
    doc = copy.deepcopy(RAW)
    mutate(doc)
    p = tmp_path / "cat.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(CatalogueError, match=message):
        load_catalogue(p)


def test_duplicate_ids_and_bad_regex_are_rejected(tmp_path):
    doc = copy.deepcopy(RAW)
    doc["entries"].append(copy.deepcopy(doc["entries"][0]))
    p = tmp_path / "dup.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(CatalogueError, match="duplicate"):
        load_catalogue(p)
    doc = copy.deepcopy(RAW)
    doc["entries"][0]["patterns"] = ["(unclosed"]
    p.write_text(json.dumps(doc))
    with pytest.raises(CatalogueError, match="bad pattern"):
        load_catalogue(p)


def test_fix_when_must_name_a_root_cause(tmp_path):
    doc = copy.deepcopy(RAW)
    entry = next(e for e in doc["entries"] if any(f.get("when") for f in e["fixes"]))
    next(f for f in entry["fixes"] if f.get("when"))["when"] = "no-such-cause"
    p = tmp_path / "when.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(CatalogueError, match="no-such-cause"):
        load_catalogue(p)


def test_unreadable_catalogue_is_a_clear_error(tmp_path):
    p = tmp_path / "broken.json"
    p.write_text("{not json")
    with pytest.raises(CatalogueError, match="cannot read"):
        load_catalogue(p)


def test_entries_are_consistent():
    cat = get_catalogue()
    for e in cat:
        assert e.runbook == f"{e.id}.md"
        assert e.step in {s.value for s in Step}
        for f in e.fixes:
            assert f.action in FIX_IDS
            # credentials, certificates, trust policies and Kafka ACLs are never automatic
            if f.action == "ticket":
                assert f.safety == "manual", e.id
        if e.healthy:
            assert e.step == "none" and not e.fixes
        else:
            assert e.step != "none" and e.root_causes, e.id
            assert any(f.action == "ticket" for f in e.fixes) or e.auto_fixable or e.fixable, e.id
        # entries whose whole cause is secret material or trust never carry an automatic fix
        if e.step in ("tls", "role") or e.id in ("certificate-or-key-invalid", "certificate-not-pem"):
            assert all(f.action == "ticket" for f in e.fixes), e.id


REQUIRED_TEXTS = [
    "Connection error. Please check your event source connection configuration",
    "Your VPC must be able to connect to Lambda and STS, as well as Secrets Manager if authentication is required",
    "Your event source VPC must be able to connect to Lambda and STS, Secrets Manager (if event source "
    "authentication is required), and the OnFailure Destination",
    "Cluster failed to authorize Lambda",
    "SASL authentication failed",
    "Server failed to authenticate Lambda",
    "Lambda failed to authenticate server",
    "Provided certificate or private key is invalid",
    "Certificates and/or private key must be in PEM format",
    "Cannot resolve the provided Kafka broker endpoint",
    "Lambda failed to assume your function execution role",
    "Lambda internal error",
    "Function call failed",
    "Timeout expired while fetching topic metadata",
    "Not authorized to access topics: [t]",
    "ESM_CONFIG_NOT_VALID",
    "EVENT_SOURCE_AUTHN_ERROR",
    "EVENT_SOURCE_AUTHZ_ERROR",
    "FUNCTION_CONFIG_NOT_VALID",
]


@pytest.mark.parametrize("text", REQUIRED_TEXTS)
def test_guides_errors_are_covered(text):
    from esm_medic.classify import classify

    c = classify(f"PROBLEM: {text}.")
    assert c.kind == "error" and c.entry, text
