"""The sweeper over 10,000 Kafka ESMs in the sandbox: API calls, DynamoDB reads/writes, wall time, latency.

Targets (issue 7):

- ListEventSourceMappings calls = ceil(N / 100) per sweep; no GetEventSourceMapping unless a status changed (one
  confirming Get per transition to emit);
- DynamoDB writes only for changes: 0 for an unchanged sweep; for a transition, 2 conditional PutItems (the
  transition with its outbox, then the outbox cleared once PutEvents delivered it) and 2 digest updates (busy,
  then the new status), batched per digest shard;
- DynamoDB reads: one digest Query per sweep; snapshots are read only for ESMs whose status changed;
- one run handles 10,000 ESMs well within the Lambda limit (15 min), so no fan-out is needed;
- detection latency = sweep interval + hold time + one run.

The fleet is 10,000 MSK ESMs of one function inserted straight into the sandbox's Lambda backend (creating them
through the API costs O(N^2) in the sandbox's duplicate check and measures nothing of ours); statuses are set with
``patches.set_esm_status`` (no simulator). Wall times are in-process moto: they measure esm-medic's own work plus
moto's, not network latency, so the report also gives the number of sequential AWS round trips.
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

N_ESMS = 10_000
CHANGED_RATIO = 0.01
AUTHZ = "PROBLEM: Cluster failed to authorize Lambda."
WRITE_OPS = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")
READ_OPS = ("GetItem", "BatchGetItem", "Query", "Scan")
ASSUMED_MS_PER_CALL = 30  # for the real-AWS estimate only: a same-region API round trip (assumption, not measured)


def _insert_esms(aws: Any, stack: Any, n: int) -> list[str]:
    """Put ``n`` Kafka ESMs into the sandbox's Lambda backend directly (no per-create duplicate scan)."""
    from esm_medic_sandbox.patch_lambda import find_esm
    from moto.awslambda.models import EventSourceMapping

    first = stack.create_esm(aws, Topics=["topic-0"])
    model = find_esm(first["UUID"])
    if model is None:
        raise LookupError(f"the sandbox does not hold ESM {first['UUID']}")
    backend = _backend_holding(first["UUID"])
    uuids = [first["UUID"]]
    for i in range(1, n):
        spec = {
            "RegionName": model.region,
            "AccountId": model.account_id,
            "FunctionName": stack.function_name,
            "FunctionArn": model.function_arn,
            "EventSourceArn": stack.cluster_arn,
            "Topics": [f"topic-{i}"],
            "StartingPosition": "LATEST",
            "BatchSize": 100,
        }
        esm = EventSourceMapping(spec)  # type: ignore[abstract]
        backend._event_source_mappings[esm.uuid] = esm
        uuids.append(esm.uuid)
    return uuids


def _backend_holding(uuid: str) -> Any:
    from moto.awslambda.models import lambda_backends
    from moto.awslambda_simple.models import lambda_simple_backends

    for backends in (lambda_simple_backends, lambda_backends):
        for account in list(backends.keys()):
            for region in list(backends[account].keys()):
                if uuid in backends[account][region]._event_source_mappings:
                    return backends[account][region]
    raise LookupError(uuid)


def _measure(aws: Any, label: str, fn: Any) -> dict[str, Any]:
    aws.reset_counts()
    started = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - started
    calls = dict(aws.calls)
    ddb = {op: n for k, n in calls.items() if k.startswith("dynamodb:") for op in [k.split(":", 1)[1]]}
    return {
        "label": label,
        "wall_s": round(wall, 2),
        "emitted": result.emitted,
        "first_seen": result.first_seen,
        "pending": result.pending,
        "snapshots_read": result.snapshots_read,
        "deleted": len(result.deleted),
        "unchanged": result.unchanged,
        "complete": result.complete,
        "list_calls": calls.get("lambda:ListEventSourceMappings", 0),
        "get_calls": calls.get("lambda:GetEventSourceMapping", 0),
        "put_events_calls": calls.get("events:PutEvents", 0),
        "ddb_read_calls": sum(n for op, n in ddb.items() if op in READ_OPS),
        "ddb_write_calls": sum(n for op, n in ddb.items() if op in WRITE_OPS),
        "ddb_by_operation": ddb,
        "api_calls": sum(calls.values()),
    }


def _snapshot_item_bytes(aws: Any, uuid: str) -> int:
    from esm_medic.detect.snapshot import SnapshotStore

    snap = SnapshotStore(aws).get(uuid)
    return len(json.dumps(snap.to_item() if snap else {})) if snap else 0


def _central_and_members(root: Any, n_accounts: int, per_account: int, external_id: str) -> tuple[Any, list[str]]:
    """A central ``EsmMedicSweeper`` role, and ``n_accounts`` member accounts with the member stack's diagnosis
    role (trusting role/EsmMedic* of the central account with the external id) and ``per_account`` Kafka ESMs."""
    from esm_medic_sandbox.env import create_msk_stack
    from esm_medic_sandbox.multi_account import admin_of, assumed, create_central_role, create_member_role

    home = root.account_id()
    central = assumed(root, create_central_role(root, "EsmMedicSweeper"), "bench")
    members = [f"{300000000000 + k:012d}" for k in range(n_accounts)]
    for k, account in enumerate(members):
        admin = admin_of(central, account, "bench-admin")
        create_member_role(admin, home, external_id)
        _insert_esms(admin, create_msk_stack(admin, name=f"bench{k}"), per_account)
    return central, members


def accounts(n_accounts: tuple[int, ...] = (1, 5, 20), per_account: int = 150) -> dict[str, Any]:
    """The central sweeper over member accounts: AssumeRole, list and digest calls per sweep for N accounts (cold:
    a new container assumes each member role once; warm: the adapters' credentials are reused for their hour)."""
    from esm_medic_sandbox.env import sandbox

    from esm_medic import tables
    from esm_medic.accounts import MemberSettings
    from esm_medic.detect.sweeper import SweepSettings
    from esm_medic.detect.sweeper_accounts import sweep_accounts

    t0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    fast = SweepSettings(hold_seconds=0, gc_every_seconds=0, interval_seconds=60)
    rows: list[dict[str, Any]] = []
    for n in n_accounts:
        with sandbox() as root:
            central, members = _central_and_members(root, n, per_account, "bench-external-id")
            tables.create_tables(central)
            cfg = MemberSettings(accounts=tuple(members), external_id="bench-external-id")
            row: dict[str, Any] = {"member_accounts": n, "esms": n * per_account}
            for label, minute in (("cold", 0), ("warm", 1)):
                started = time.perf_counter()
                out = sweep_accounts(central, cfg, settings=fast, now=t0 + timedelta(minutes=minute))
                calls = out.combined.calls
                row[label] = {
                    "assume_role": calls.get("sts:AssumeRole", 0),
                    "list_calls": calls.get("lambda:ListEventSourceMappings", 0),
                    "digest_queries": calls.get("dynamodb:Query", 0),
                    "api_calls": sum(calls.values()),
                    "failed_accounts": len(out.failed),
                    "wall_s": round(time.perf_counter() - started, 2),
                }
            rows.append(row)
    for row in rows:
        n = row["member_accounts"]
        own_pages = 0  # the install's own account holds no ESM here: one (empty) list call
        pages = n * math.ceil(per_account / 100) + max(1, own_pages)
        row["expected_list_calls"] = pages
        # a sweeper in each member account instead: the same list calls, but a digest Query per account and one
        # scheduled invocation per account per minute (plus its logs, alarms and a cross-account event path)
        row["per_account_sweepers_per_minute"] = {"invocations": n + 1, "digest_queries": n + 1, "list_calls": pages}
        row["central_per_minute_warm"] = {
            "invocations": 1,
            "digest_queries": row["warm"]["digest_queries"],
            "list_calls": row["warm"]["list_calls"],
            "assume_role": row["warm"]["assume_role"],
        }
    last = rows[-1]
    print(
        f"sweep accounts: {last['member_accounts']} members x {per_account} ESMs: cold {last['cold']['assume_role']} "
        f"AssumeRole, {last['cold']['list_calls']} list calls, {last['cold']['digest_queries']} digest Query; warm "
        f"{last['warm']['assume_role']} AssumeRole, {last['warm']['digest_queries']} digest Query "
        f"(per-account sweepers: {last['per_account_sweepers_per_minute']['digest_queries']} Queries, "
        f"{last['per_account_sweepers_per_minute']['invocations']} invocations per minute)"
    )
    return {"per_account_esms": per_account, "runs": rows}


def organization(n_accounts: int = 40, minutes: int = 60) -> dict[str, Any]:
    """Discovery (esm_medic.discovery) for an organization of ``n_accounts`` in an OU tree: Organizations calls per
    listing (the whole organization, an OU tree) and over ``minutes`` of one sweep a minute with the container's TTL
    cache; the AssumeRole calls spent on discovered accounts without the member stack (not enrolled: retried per
    TTL, not per sweep)."""
    from esm_medic_sandbox.env import sandbox

    from esm_medic import discovery, tables
    from esm_medic.accounts import MemberSettings
    from esm_medic.detect.sweeper import SweepSettings
    from esm_medic.detect.sweeper_accounts import sweep_accounts

    with sandbox() as root:
        org = root.call("organizations", "create_organization", FeatureSet="ALL")["Organization"]["Id"]
        (top,) = [r["Id"] for r in root.call("organizations", "list_roots")["Roots"]]
        ous = []
        for k in range(2):  # two OUs, each with a child OU; accounts spread over the four
            parent = root.call("organizations", "create_organizational_unit", ParentId=top, Name=f"team{k}")
            ou = parent["OrganizationalUnit"]["Id"]
            child = root.call("organizations", "create_organizational_unit", ParentId=ou, Name=f"team{k}-new")
            ous += [ou, child["OrganizationalUnit"]["Id"]]
        for k in range(n_accounts):
            made = root.call("organizations", "create_account", AccountName=f"a{k}", Email=f"a{k}@example.com")
            root.call(
                "organizations",
                "move_account",
                AccountId=made["CreateAccountStatus"]["AccountId"],
                SourceParentId=top,
                DestinationParentId=ous[k % len(ous)],
            )
        central, _ = _central_and_members(root, 0, 0, "bench-external-id")
        tables.create_tables(central)
        home = central.account_id()
        out: dict[str, Any] = {"accounts": n_accounts, "ous": len(ous), "minutes": minutes}
        now = [0.0]

        def clock() -> float:
            return now[0]

        for label, cfg in (
            ("organization", MemberSettings(organization=org)),
            ("ou_tree", MemberSettings(organization=org, ous=(ous[0], ous[2]))),
        ):
            central.reset_counts()
            discovery.clear(central)
            for minute in range(minutes):
                now[0] = minute * 60.0
                found = discovery.discover(central, cfg, home, clock=clock)
            calls = sum(v for k, v in central.calls.items() if k.startswith("organizations:"))
            out[label] = {
                "discovered": len(found.accounts),
                "listings": math.ceil(minutes * 60 / discovery.TTL_SECONDS),
                "organizations_calls": calls,
                "calls_without_cache": calls * minutes // max(1, math.ceil(minutes * 60 / discovery.TTL_SECONDS)),
            }
        # no account has the member stack: cold, each discovered account costs one refused AssumeRole; warm, none
        discovery.clear(central)
        cfg = MemberSettings(organization=org, external_id="bench-external-id")
        fast = SweepSettings(hold_seconds=0, gc_every_seconds=0, interval_seconds=60)
        t0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
        for label, minute in (("not_enrolled_cold", 0), ("not_enrolled_warm", 1)):
            central.reset_counts()
            swept = sweep_accounts(central, cfg, settings=fast, now=t0 + timedelta(minutes=minute))
            out[label] = {
                "not_enrolled": len(swept.not_enrolled),
                "assume_role": swept.combined.calls.get("sts:AssumeRole", 0),
                "failed_accounts": len(swept.failed),
            }
    print(
        f"sweep organization: {n_accounts} accounts, {minutes} sweeps: {out['organization']['organizations_calls']} "
        f"Organizations calls org-wide, {out['ou_tree']['organizations_calls']} for 2 OU trees (without the "
        f"{int(discovery.TTL_SECONDS // 60)}-minute cache: {out['ou_tree']['calls_without_cache']}); not enrolled: "
        f"{out['not_enrolled_cold']['assume_role']} AssumeRole cold, {out['not_enrolled_warm']['assume_role']} warm"
    )
    return out


def main(n: int = N_ESMS) -> dict[str, Any]:
    from esm_medic_sandbox.env import create_msk_stack, sandbox
    from esm_medic_sandbox.patches import set_esm_status

    from esm_medic import tables
    from esm_medic.detect.sweeper import SweepSettings, sweep

    t0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    fast = SweepSettings(hold_seconds=0, gc_every_seconds=0, interval_seconds=60)
    with sandbox() as aws:
        build_started = time.perf_counter()
        stack = create_msk_stack(aws, name="bench")
        tables.create_tables(aws)
        uuids = _insert_esms(aws, stack, n)
        build_s = time.perf_counter() - build_started

        first = _measure(aws, "first sweep (every ESM first seen)", lambda: sweep(aws, now=t0, settings=fast))
        unchanged = _measure(aws, "unchanged sweep", lambda: sweep(aws, now=t0 + timedelta(minutes=1), settings=fast))
        changed_ids = uuids[:: max(1, int(1 / CHANGED_RATIO))][: max(1, round(n * CHANGED_RATIO))]
        for u in changed_ids:
            set_esm_status(u, last_processing_result=AUTHZ)
        changed = _measure(
            aws, "sweep with 1% transitions (hold 0)", lambda: sweep(aws, now=t0 + timedelta(minutes=2), settings=fast)
        )
        after = _measure(aws, "unchanged again", lambda: sweep(aws, now=t0 + timedelta(minutes=3), settings=fast))
        for u in uuids[-10:]:  # 10 ESMs deleted: the next sweep forgets them
            aws.call("lambda", "delete_event_source_mapping", UUID=u)
        gc = _measure(aws, "sweep after 10 deletions", lambda: sweep(aws, now=t0 + timedelta(minutes=4), settings=fast))
        # with the default hold time (120 s): the first sight of a change costs one pending write, then nothing
        # until it has held, then the transition
        hold = SweepSettings(hold_seconds=120, gc_every_seconds=0, interval_seconds=60, early_emit=False)
        for u in changed_ids:
            set_esm_status(u, last_processing_result="OK")
        held = [
            _measure(
                aws,
                f"recovery with hold 120 s, sweep {i + 1}",
                lambda i=i: sweep(aws, now=t0 + timedelta(minutes=5 + i), settings=hold),
            )
            for i in range(3)
        ]
        item_bytes = _snapshot_item_bytes(aws, changed_ids[0])
    pages = math.ceil(n / 100)
    # eventually consistent reads cost 0.5 RCU per 4 KB of each item read: 256 digest shards of ~60 bytes per ESM,
    # against reading every snapshot item (what a sweep without the digest would do)
    shard_bytes = n * 60 / 256
    digest_rcu = 256 * math.ceil(shard_bytes / 4096) * 0.5
    full_read_rcu = n * math.ceil(max(item_bytes, 1) / 4096) * 0.5
    sequential_trips = unchanged["list_calls"] + unchanged["ddb_read_calls"]
    result: dict[str, Any] = {
        "esms": n,
        "fleet_build_s": round(build_s, 1),
        "expected_list_calls": pages,
        "sweeps": [first, unchanged, changed, after, gc, *held],
        "unchanged_list_calls": unchanged["list_calls"],
        "unchanged_get_calls": unchanged["get_calls"],
        "unchanged_ddb_reads": unchanged["ddb_read_calls"],
        "unchanged_ddb_writes": unchanged["ddb_write_calls"],
        "unchanged_wall_s": unchanged["wall_s"],
        "changes": len(changed_ids),
        "changed_get_calls": changed["get_calls"],
        "changed_ddb_writes": changed["ddb_write_calls"],
        "changed_put_events_calls": changed["put_events_calls"],
        "changed_emitted": changed["emitted"],
        "changed_wall_s": changed["wall_s"],
        "deleted_forgotten": gc["deleted"],
        "deletion_sweep_ddb_writes": gc["ddb_write_calls"],
        "held_recovery_writes": [h["ddb_write_calls"] for h in held],
        "held_recovery_emitted": [h["emitted"] for h in held],
        "snapshot_item_bytes": item_bytes,
        "unchanged_snapshots_read": unchanged["snapshots_read"],
        "ddb_rcu_per_unchanged_sweep": digest_rcu,
        "ddb_rcu_if_every_snapshot_were_read": full_read_rcu,
        "sequential_round_trips_unchanged": sequential_trips,
        "estimated_real_aws_unchanged_s": round(sequential_trips * ASSUMED_MS_PER_CALL / 1000, 1),
        "assumed_ms_per_call": ASSUMED_MS_PER_CALL,
        "detection_latency_s": f"<= pass interval (15-60 s) + one run ({unchanged['wall_s']} s here): see latency",
        "meets_list_target": unchanged["list_calls"] == pages and changed["list_calls"] == pages,
        "meets_get_target": unchanged["get_calls"] == 0 and changed["get_calls"] == len(changed_ids),
        "meets_write_target": unchanged["ddb_write_calls"] == 0 and after["ddb_write_calls"] == 0,
        "changed_writes_per_transition": round(changed["ddb_write_calls"] / max(1, len(changed_ids)), 2),
        "exactly_once": changed["emitted"] == len(changed_ids) and after["emitted"] == 0,
        "accounts": accounts(),
        "organization": organization(),
    }
    print(
        f"sweep: {n} ESMs; unchanged sweep: {unchanged['list_calls']} list calls (target {pages}), "
        f"{unchanged['get_calls']} Gets, {unchanged['ddb_read_calls']} DynamoDB reads, "
        f"{unchanged['ddb_write_calls']} writes, {unchanged['wall_s']}s; 1% changes: {changed['emitted']} events, "
        f"{changed['get_calls']} Gets, {changed['ddb_write_calls']} writes, {changed['put_events_calls']} PutEvents, "
        f"{changed['wall_s']}s; ~{digest_rcu:.0f} RCU per unchanged sweep (vs {full_read_rcu:.0f} reading every "
        "snapshot)"
    )
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2, default=str))
