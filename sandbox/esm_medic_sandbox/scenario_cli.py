"""``esm-medic sandbox scenario``: list the scenarios or build one in a running sandbox (never real AWS)."""

from __future__ import annotations

import argparse
import json
import os

from esm_medic.aws import Aws
from esm_medic_sandbox.scenarios import SCENARIOS

_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]", "0.0.0.0")


def cli_register(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``esm-medic sandbox scenario``."""
    parser.add_argument("name", nargs="?", metavar="NAME", help="scenario to build (see --list)")
    parser.add_argument("--list", action="store_true", help="list the scenarios with their expected outcome")
    parser.add_argument("--json", action="store_true", help="JSON output")
    parser.add_argument(
        "--endpoint-url",
        default=os.environ.get("AWS_ENDPOINT_URL"),
        help="a running `esm-medic sandbox serve` (default: $AWS_ENDPOINT_URL); never real AWS",
    )
    parser.add_argument("--region", default=None, help="region (default: the sandbox's, us-east-1)")
    parser.add_argument("--prefix", default="", help="prefix for the names of what is built")


def _is_local(url: str) -> bool:
    from urllib.parse import urlparse

    host = (urlparse(url).hostname or "").lower()
    return host in _LOCAL_HOSTS or host.endswith(".localhost")


def cli_run(args: argparse.Namespace) -> int:
    as_json = bool(getattr(args, "json", False))
    name = getattr(args, "name", None)
    if getattr(args, "list", False) or not name:
        listing = [s.summary() for s in SCENARIOS.values()]
        if as_json:
            print(json.dumps(listing, indent=2))
        else:
            for s in listing:
                e = s["expected"]
                outcome = "healthy" if e["step"] == "none" else f"{e['entry']} / {e['step']} / {e['root_cause']}"
                print(f"{s['name']:34} {s['source_kind']:13} {s['auth_mode']:15} -> {outcome} (fix: {e['fix']})")
                print(f"{'':34} {s['title']}")
        return 0 if getattr(args, "list", False) or name else 2
    if name not in SCENARIOS:
        print(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
        return 2
    endpoint = getattr(args, "endpoint_url", None) or ""
    if not endpoint:
        print("building a scenario needs --endpoint-url (or AWS_ENDPOINT_URL) of `esm-medic sandbox serve`")
        return 2
    if not _is_local(endpoint):
        print(f"refusing to build scenario resources at {endpoint}: only a local sandbox endpoint is allowed")
        return 2
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    aws = Aws(region=getattr(args, "region", None) or "us-east-1", endpoint_url=endpoint, max_attempts=2)
    try:
        result = SCENARIOS[name].build(aws, prefix=getattr(args, "prefix", "") or "")
        status = aws.call("lambda", "get_event_source_mapping", UUID=result.uuid)
    except Exception as exc:
        print(f"building {name} failed: {type(exc).__name__}: {exc}")
        return 1
    out = result.to_dict()
    out["status"] = {k: status.get(k, "") for k in ("State", "StateTransitionReason", "LastProcessingResult")}
    if as_json:
        print(json.dumps(out, indent=2, default=str))
    else:
        e = result.expected
        print(f"built {name}: ESM {result.uuid} (function {result.function_name}, role {result.role_name})")
        if result.cluster_arn:
            print(f"  cluster   {result.cluster_arn}")
        if result.bootstrap_servers:
            print(f"  brokers   {', '.join(result.bootstrap_servers)}")
        print(
            f"  vpc       {result.vpc_id}  subnets {', '.join(result.subnet_ids)}  "
            f"sgs {', '.join(result.security_group_ids)}"
        )
        print(
            f"  status    {out['status']['State']} / {out['status']['StateTransitionReason']} / "
            f"{out['status']['LastProcessingResult']}"
        )
        print(f"  expected  entry={e['entry']} step={e['step']} root_cause={e['root_cause']} fix={e['fix']}")
        for note in result.notes:
            print(f"  note      {note}")
    return 0
