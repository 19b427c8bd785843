"""Runbooks (runbooks/*.md, runbooks/ko/*.md) and their loader (esm_medic.runbooks).

The catalogue JSON is read directly so these tests do not depend on the classifier module.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esm_medic import runbooks
from esm_medic.runbooks import (
    KNOWN_PLACEHOLDERS,
    REQUIRED_SECTIONS,
    SECTION_TITLES_KO,
    TRUNCATION_MARK,
    Runbook,
    RunbookNotFound,
    load,
    parse,
)
from esm_medic.steps import STEP_TITLES, Step

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = REPO / "runbooks"
KO = RUNBOOKS / "ko"
CATALOGUE = json.loads((REPO / "functions/esm_medic/catalogue/catalogue.json").read_text(encoding="utf-8"))
ENTRIES = CATALOGUE["entries"]
BY_ID = {e["id"]: e for e in ENTRIES}
ERROR_IDS = [e["id"] for e in ENTRIES if e["kind"] == "error"]
ALL_IDS = [e["id"] for e in ENTRIES]

#: The one place the IPv4/IPv6 "whole internet" CIDR may appear: a warning line in this form.
NEVER_LINE = re.compile(r"^> \*\*(Never do this|절대 하지 마세요):\*\* ")
WORLD_CIDR = re.compile(r"0\.0\.0\.0/0|(?<![0-9a-fA-F:])::/0")

#: AWS CLI operations allowed under "How to check" (read-only verbs).
READ_ONLY_OPS = re.compile(r"^(describe|get|list|simulate|lookup|filter)-")
AWS_CALL = re.compile(r"\baws\s+([a-z0-9-]+)\s+([a-z0-9-]+)")
KAFKA_TOOL_MUTATION = re.compile(r"kafka-[a-z-]+\.sh\b[^\n]*--(add|create|delete|alter|remove)\b")


@pytest.fixture(autouse=True)
def _fresh_loader(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(runbooks.ENV_VAR, raising=False)
    runbooks.clear_cache()
    yield
    runbooks.clear_cache()


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def world_cidr_violations(text: str) -> list[str]:
    """Lines that mention the whole-internet CIDR outside a 'never do this' warning line."""
    return [line for line in text.splitlines() if WORLD_CIDR.search(line) and not NEVER_LINE.match(line)]


def _ko(entry_id: str) -> Runbook:
    rb = load(entry_id, "ko")
    assert rb.lang == "ko", f"{entry_id}: Korean runbook missing, loader fell back to English"
    return rb


# --- catalogue <-> files ---------------------------------------------------------------------------------------


def test_catalogue_runbook_field_is_id_dot_md():
    assert len(ALL_IDS) == len(set(ALL_IDS))
    for entry in ENTRIES:
        assert entry["runbook"] == f"{entry['id']}.md", entry["id"]


def test_no_orphan_runbooks():
    wanted = {e["runbook"] for e in ENTRIES}
    english = {p.name for p in RUNBOOKS.glob("*.md") if p.name != "README.md"}
    assert english == wanted, f"missing: {sorted(wanted - english)}, orphans: {sorted(english - wanted)}"
    korean = {p.name for p in KO.glob("*.md")}
    assert korean <= wanted, f"Korean orphans: {sorted(korean - wanted)}"
    assert runbooks.available() == sorted(ALL_IDS)


def test_korean_covers_every_error_entry():
    korean = set(runbooks.available("ko"))
    missing = sorted(set(ERROR_IDS) - korean)
    assert not missing, f"error entries without a Korean runbook: {missing}"


# --- English format -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry_id", ALL_IDS)
def test_english_format(entry_id: str):
    rb = load(entry_id)
    entry = BY_ID[entry_id]
    assert rb.lang == "en"
    assert rb.problems() == []
    assert rb.title == entry["title"]
    assert list(rb.sections) == list(REQUIRED_SECTIONS)
    lines = rb.text.splitlines()
    assert lines[0] == f"# {entry['title']}"
    assert lines[1] == f"<!-- entry: {entry_id} -->"


@pytest.mark.parametrize("entry_id", ALL_IDS)
def test_examples_in_symptom(entry_id: str):
    entry = BY_ID[entry_id]
    symptom = load(entry_id).section("Symptom")
    assert entry["examples"][0] in symptom, "first example must appear verbatim"
    for example in entry["examples"]:
        assert _norm(example) in _norm(symptom), f"example not in Symptom: {example!r}"


@pytest.mark.parametrize("entry_id", ALL_IDS)
def test_symptom_names_the_field(entry_id: str):
    symptom = load(entry_id).section("Symptom")
    fields = {"LastProcessingResult", "StateTransitionReason"} & set(BY_ID[entry_id]["fields"])
    for name in fields:
        assert name in symptom


@pytest.mark.parametrize("entry_id", [e["id"] for e in ENTRIES if e["status"] == "unconfirmed"])
def test_unconfirmed_texts_are_marked(entry_id: str):
    assert "unconfirmed" in load(entry_id).section("Symptom").lower()
    assert "미확인" in _ko(entry_id).section("Symptom")


@pytest.mark.parametrize("entry_id", ALL_IDS)
def test_which_step_names_the_catalogue_step(entry_id: str):
    step = BY_ID[entry_id]["step"]
    assert f"`{step}`" in load(entry_id).section("Which step failed and why")
    if entry_id in runbooks.available("ko"):
        assert f"`{step}`" in _ko(entry_id).section("Which step failed and why")


@pytest.mark.parametrize("entry_id", ALL_IDS)
@pytest.mark.parametrize("lang", ["en", "ko"])
def test_what_esm_medic_does_matches_fix_safety(entry_id: str, lang: str):
    entry = BY_ID[entry_id]
    if lang == "ko" and entry_id not in runbooks.available("ko"):
        pytest.skip("no Korean runbook")
    body = load(entry_id, lang).section("What esm-medic does")
    lines = body.splitlines()
    for fix in entry["fixes"]:
        hits = [ln for ln in lines if f"`{fix['action']}`" in ln and f"`{fix['safety']}`" in ln]
        assert hits, f"no line names fix {fix['action']} with safety {fix['safety']}"
    # no safety class the catalogue does not give this entry
    for action in {"add-sg-self-rule", "create-vpc-endpoints", "grant-iam-permissions", "enable-vpc-dns"}:
        if action not in {f["action"] for f in entry["fixes"]}:
            assert f"`{action}`" not in body, f"{action} is not a fix of this entry"


@pytest.mark.parametrize("entry_id", ALL_IDS)
@pytest.mark.parametrize("lang", ["en", "ko"])
def test_how_to_check_is_read_only(entry_id: str, lang: str):
    if lang == "ko" and entry_id not in runbooks.available("ko"):
        pytest.skip("no Korean runbook")
    check = load(entry_id, lang).section("How to check")
    for service, op in AWS_CALL.findall(check):
        assert READ_ONLY_OPS.match(op), f"mutating call under How to check: aws {service} {op}"
    assert not KAFKA_TOOL_MUTATION.search(check)


def test_healthy_runbooks_are_short_and_fix_nothing():
    for entry in ENTRIES:
        if entry["kind"] != "healthy":
            continue
        rb = load(entry["id"])
        assert len(rb.text.splitlines()) < 60
        assert rb.section("How to fix").startswith("Nothing to fix")
        assert rb.section("What esm-medic does").startswith("Nothing")


def test_error_runbooks_restart_the_esm_after_a_fix():
    # every error whose fix people or esm-medic apply ends with a disable/enable (or says nothing to restart)
    for entry_id in ERROR_IDS:
        fix = load(entry_id).section("How to fix")
        if entry_id in {"function-call-failed", "esm-config-not-valid"}:
            continue  # invoke retries by itself / the ESM is recreated
        assert "--no-enabled" in fix and "--enabled" in fix, entry_id


# --- safety rules across all files --------------------------------------------------------------------------------


def _all_markdown() -> list[Path]:
    return sorted(RUNBOOKS.glob("*.md")) + sorted(KO.glob("*.md"))


def test_world_cidr_only_in_never_warnings():
    bad = {str(p.relative_to(RUNBOOKS)): world_cidr_violations(p.read_text(encoding="utf-8")) for p in _all_markdown()}
    assert {k: v for k, v in bad.items() if v} == {}


def test_world_cidr_rule_itself():
    assert world_cidr_violations("aws ec2 authorize-security-group-ingress --cidr 0.0.0.0/0")
    assert world_cidr_violations("route ::/0 to the igw")
    assert world_cidr_violations("> Note: 0.0.0.0/0 is fine")
    assert not world_cidr_violations("> **Never do this:** open port 9098 to 0.0.0.0/0.")
    assert not world_cidr_violations("> **절대 하지 마세요:** 0.0.0.0/0 규칙")
    assert not world_cidr_violations("10.0.0.0/16 and fe80::/10")


def test_warnings_present_where_people_are_tempted():
    for entry_id in ("connection-vpc-services", "connection-broker-unreachable", "connection-error-generic"):
        for lang in ("en", "ko"):
            text = load(entry_id, lang).text
            assert any(NEVER_LINE.match(line) and WORLD_CIDR.search(line) for line in text.splitlines())


def test_placeholders_are_from_the_vocabulary():
    used: set[str] = set()
    for path in _all_markdown():
        if path.name == "README.md":
            continue  # the index talks about placeholders in general
        names = set(re.findall(r"<([a-z][a-z0-9]*(?:[-_][a-z0-9]+)*)>", path.read_text(encoding="utf-8")))
        assert names <= KNOWN_PLACEHOLDERS, (
            f"{path.relative_to(RUNBOOKS)}: unknown placeholders {sorted(names - KNOWN_PLACEHOLDERS)}"
        )
        used |= names
    assert used == KNOWN_PLACEHOLDERS, f"vocabulary entries no runbook uses: {sorted(KNOWN_PLACEHOLDERS - used)}"


def test_broker_ports_per_auth_mode_are_stated():
    text = load("connection-broker-unreachable").section("Which step failed and why")
    for row in ("| Plaintext | 9092 |", "| TLS, or mTLS (client certificate) | 9094 | 9194 |",
                "| SASL/SCRAM | 9096 | 9196 |", "| IAM | 9098 | 9198 |"):  # fmt: skip
        assert row in text


def test_group_arn_uses_esm_uuid():
    text = load("cluster-authorization-failed").text
    assert "group/<cluster-name>/<cluster-uuid>/<esm-uuid>" in text
    assert "topic/<cluster-name>/<cluster-uuid>/<topic>" in text
    for action in ("Connect", "DescribeGroup", "AlterGroup", "DescribeTopic", "ReadData",
                   "DescribeClusterDynamicConfiguration"):  # fmt: skip
        assert f"kafka-cluster:{action}" in text


# --- README index -------------------------------------------------------------------------------------------------


def test_readme_index_grouped_by_step():
    readme = (RUNBOOKS / "README.md").read_text(encoding="utf-8")
    step_of_heading: dict[str, str] = {}
    current = None
    seen: list[str] = []
    for line in readme.splitlines():
        m = re.match(r"^## `([a-z]+)` — (.+)$", line)
        if m:
            current = m.group(1)
            assert m.group(2).startswith(STEP_TITLES[Step(current)])
            continue
        link = re.match(r"^- \[(.+?)\]\(([a-z0-9-]+\.md)\) · \[ko\]\(ko/([a-z0-9-]+\.md)\)", line)
        if link:
            assert current is not None
            entry_id = link.group(2)[:-3]
            assert link.group(3) == link.group(2)
            assert link.group(1) == BY_ID[entry_id]["title"]
            step_of_heading[entry_id] = current
            seen.append(entry_id)
            assert (KO / link.group(3)).exists()
    assert sorted(seen) == sorted(ALL_IDS), "each entry exactly once"
    assert len(seen) == len(set(seen))
    assert step_of_heading == {e["id"]: e["step"] for e in ENTRIES}


# --- Korean -------------------------------------------------------------------------------------------------------

HANGUL = re.compile(r"[\uac00-\ud7a3]")


@pytest.mark.parametrize("entry_id", ALL_IDS)
def test_korean_format(entry_id: str):
    if entry_id not in runbooks.available("ko"):
        pytest.skip("no Korean runbook (allowed for healthy entries)")
    rb = _ko(entry_id)
    entry = BY_ID[entry_id]
    # decision: Korean runbooks use the Korean headings of SECTION_TITLES_KO, in the same order
    assert rb.headings == tuple(SECTION_TITLES_KO[name] for name in REQUIRED_SECTIONS)
    assert rb.problems() == []
    assert list(rb.sections) == list(REQUIRED_SECTIONS)  # loader maps them back to the English keys
    assert rb.text.splitlines()[1] == f"<!-- entry: {entry_id} -->"
    assert HANGUL.search(rb.title)
    for name in REQUIRED_SECTIONS:
        assert HANGUL.search(rb.section(name)), f"section {name} is not translated"
    # the AWS texts stay in English: the first example verbatim
    assert entry["examples"][0] in rb.section("Symptom")


# --- loader -------------------------------------------------------------------------------------------------------

SAMPLE = """# Sample entry
<!-- entry: sample-entry -->

## Symptom
- `PROBLEM: Sample.` on <esm-uuid>

## Where it shows
console

## Which step failed and why
Step `network`.

```bash
## not a heading inside a fence
echo <sg-id>
```

## How to check
aws ec2 describe-security-groups --group-ids <sg-id>

## How to fix
Add the rule on <sg-id> for <broker-port>; keep <unknown-thing> and <esm_uuid>.

## What esm-medic does
Nothing.
"""


def _write(dirpath: Path, name: str, text: str) -> Path:
    dirpath.mkdir(parents=True, exist_ok=True)
    path = dirpath / name
    path.write_text(text, encoding="utf-8")
    return path


def test_runbook_dir_default_is_repo_runbooks():
    assert runbooks.runbook_dir().resolve() == RUNBOOKS.resolve()


def test_runbook_dir_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _write(tmp_path, "sample-entry.md", SAMPLE)
    monkeypatch.setenv(runbooks.ENV_VAR, str(tmp_path))
    assert runbooks.runbook_dir() == tmp_path
    rb = load("sample-entry")
    assert rb.path == tmp_path / "sample-entry.md"
    assert rb.problems() == []


def test_runbook_dir_packaged_then_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake_module = tmp_path / "functions" / "esm_medic" / "runbooks.py"
    fake_module.parent.mkdir(parents=True)
    monkeypatch.setattr(runbooks, "__file__", str(fake_module))
    assert runbooks.runbook_dir() == tmp_path.resolve() / "runbooks"
    (fake_module.parent / "_runbooks").mkdir()
    assert runbooks.runbook_dir() == tmp_path.resolve() / "functions" / "esm_medic" / "_runbooks"


def test_language_fallbacks(tmp_path: Path):
    _write(tmp_path, "sample-entry.md", SAMPLE)
    for lang in ("ko", "de", "KO", "../../etc", "", None):
        rb = load("sample-entry", lang, directory=tmp_path)  # type: ignore[arg-type]
        assert rb.lang == "en"
        assert rb.path == tmp_path / "sample-entry.md"
    ko_text = SAMPLE.replace("# Sample entry", "# 샘플").replace("## Symptom", "## 증상")
    _write(tmp_path / "ko", "sample-entry.md", ko_text)
    rb = load("sample-entry", "ko", directory=tmp_path)
    assert rb.lang == "ko" and rb.title == "샘플"
    assert "Symptom" in rb.sections  # Korean heading mapped to the English key
    assert load("sample-entry", "ko-KR", directory=tmp_path).lang == "ko"
    assert load("sample-entry", "ko_kr", directory=tmp_path).path == tmp_path / "ko" / "sample-entry.md"


def test_real_korean_runbook_loads_with_english_keys():
    rb = load("connection-broker-unreachable", "ko")
    assert rb.lang == "ko" and rb.path.parent.name == "ko"
    assert rb.heading("Symptom") == "증상"
    assert "PROBLEM: Connection error. Please check your event source connection configuration." in rb.section(
        "Symptom"
    )


def test_runbook_not_found(tmp_path: Path):
    with pytest.raises(RunbookNotFound) as err:
        load("no-such-entry", directory=tmp_path)
    assert "no-such-entry" in str(err.value) and str(tmp_path) in str(err.value)
    assert runbooks.ENV_VAR in str(err.value)
    for bad in ("../secrets", "Upper", "a/b", "", "x--y"):
        with pytest.raises(RunbookNotFound, match="not a catalogue entry id"):
            load(bad, directory=tmp_path)
    assert issubclass(RunbookNotFound, LookupError)


def test_cache_reuses_and_rereads_after_edit(tmp_path: Path):
    path = _write(tmp_path, "sample-entry.md", SAMPLE)
    first = load("sample-entry", directory=tmp_path)
    assert load("sample-entry", directory=tmp_path) is first
    path.write_text(SAMPLE.replace("# Sample entry", "# Edited entry"), encoding="utf-8")
    st_ = path.stat()
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns + 1_000_000_000))
    assert load("sample-entry", directory=tmp_path).title == "Edited entry"
    runbooks.clear_cache()
    assert load("sample-entry", directory=tmp_path) is not first


def test_parse_ignores_headings_in_code_fences():
    rb = parse(SAMPLE, entry_id="sample-entry", path=Path("x.md"))
    assert rb.headings == REQUIRED_SECTIONS
    assert "## not a heading inside a fence" in rb.section("Which step failed and why")


def test_problems_reports_format_errors():
    broken = SAMPLE.replace("sample-entry -->", "other -->").replace("## How to check\n", "## How to look\n")
    broken = broken.replace("## Where it shows\nconsole\n", "## Where it shows\n\n")
    problems = parse(broken, entry_id="sample-entry", path=Path("x.md")).problems()
    text = "\n".join(problems)
    assert "marker is 'other'" in text
    assert "H2 headings" in text
    assert "'Where it shows' is empty" in text
    assert "'How to check' is empty" in text
    swapped = SAMPLE.replace("## How to check", "## TMP").replace("## How to fix", "## How to check")
    swapped = swapped.replace("## TMP", "## How to fix")
    assert any("H2 headings" in p for p in parse(swapped, entry_id="sample-entry", path=Path("x.md")).problems())


def test_render_fills_known_placeholders_only():
    rb = parse(SAMPLE, entry_id="sample-entry", path=Path("x.md"))
    out = rb.render({"esm-uuid": "1234-abcd", "sg_id": "sg-0123", "broker-port": 9098, "unused": "x", "topic": None})
    assert "`PROBLEM: Sample.` on 1234-abcd" in out
    assert "echo sg-0123" in out and "rule on sg-0123 for 9098" in out
    assert "<unknown-thing>" in out  # unknown names untouched
    assert "and 1234-abcd." in out  # <esm_uuid> is the same name as <esm-uuid>
    assert "<!-- entry: sample-entry -->" in out
    assert rb.render({}) == SAMPLE
    assert rb.placeholders() == {"esm-uuid", "sg-id", "broker-port", "unknown-thing", "esm_uuid"}


def test_render_real_runbook():
    rb = load("connection-broker-unreachable")
    out = rb.render({"esm-uuid": "6f2a0d3c-1111-4a5b-9c8d-0123456789ab", "sg-id": "sg-0abc"})
    assert "<esm-uuid>" not in out and "<sg-id>" not in out
    assert "--group-id sg-0abc" in out
    assert "<cluster-arn>" in out


def test_excerpt_sections_and_order():
    rb = load("connection-broker-unreachable")
    text = rb.excerpt(max_chars=100_000)
    positions = [text.index(f"## {name}") for name in ("Symptom", "Which step failed and why", "How to fix")]
    assert positions == sorted(positions) and positions[0] == 0
    assert "## Where it shows" not in text and "## How to check" not in text
    assert "## What esm-medic does" not in text
    assert rb.section("How to fix").strip() in text
    assert TRUNCATION_MARK not in text.splitlines()[-1]


def test_excerpt_korean_headings_and_params():
    rb = load("connection-broker-unreachable", "ko")
    text = rb.excerpt(max_chars=100_000, params={"sg-id": "sg-0abc"})
    assert text.startswith("## 증상")
    assert "## 해결 방법" in text and "--group-id sg-0abc" in text


def _check_trim(source: str, out: str, max_chars: int) -> None:
    assert len(out) <= max_chars
    if out == source:
        return
    lines = out.splitlines()
    assert lines[-1] == TRUNCATION_MARK
    body = lines[:-1]
    source_lines = source.splitlines()
    is_prefix = body == source_lines[: len(body)]
    # the trimmer may have added one closing fence to balance an open code block
    closed_by_trimmer = bool(body) and body[-1] == "```" and body[:-1] == source_lines[: len(body) - 1]
    assert is_prefix or closed_by_trimmer, "trimmed on a line boundary, lines kept whole"
    assert sum(1 for ln in lines if ln.lstrip().startswith("```")) % 2 == 0, "code fences balanced"


@pytest.mark.parametrize("max_chars", [60, 200, 500, 1000, 1500, 2800])
def test_excerpt_trimmed_on_line_boundary(max_chars: int):
    for entry_id in ("connection-vpc-services", "cluster-authorization-failed", "certificate-or-key-invalid"):
        rb = load(entry_id)
        full = rb.excerpt(max_chars=1_000_000)
        _check_trim(full, rb.excerpt(max_chars=max_chars), max_chars)


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(
        st.one_of(st.just("```bash"), st.just("```"), st.text(alphabet="ab <>-x", max_size=40)), max_size=40
    ),
    max_chars=st.integers(min_value=1, max_value=600),
)
def test_trim_lines_property(lines: list[str], max_chars: int):
    source = "\n".join(lines)
    out = runbooks.trim_lines(source, max_chars)
    assert len(out) <= max_chars
    if len(source) <= max_chars:
        assert out == source
    else:
        assert out.endswith(TRUNCATION_MARK)
        assert sum(1 for ln in out.splitlines() if runbooks._FENCE.match(ln)) % 2 == 0


def test_all_runbooks_excerpt_fits_a_slack_block():
    for entry_id in ALL_IDS:
        for lang in ("en", "ko"):
            out = load(entry_id, lang).excerpt()
            assert 0 < len(out) <= 2800
            assert out.startswith("## ")
