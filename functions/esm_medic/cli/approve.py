"""``esm-medic approve ID [--reject] [--reason TEXT] [--url URL]``: decide a pending approval as yourself.

The request goes to the approval endpoint's function URL whose auth type is ``AWS_IAM`` (``--url`` or
``$ESM_MEDIC_APPROVAL_IAM_URL``), signed with SigV4 by your own AWS credentials (``--profile`` / the usual chain).
Lambda verifies the signature and hands the handler your principal ARN, which is what the approval records: no
name is typed, so nobody can approve as someone else. The ARN (or the person it maps to through
``ESM_MEDIC_APPROVER_IDENTITIES``) must be on the approver allow-list.

Exit code: 0 decided (or recorded, when a prod approval needs another person), 1 refused or failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from esm_medic.cli.common import add_aws_options, add_json_option

URL_ENV = "ESM_MEDIC_APPROVAL_IAM_URL"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "approve",
        help="approve (or --reject) a pending fix as your own AWS identity",
        description="Decide a pending approval through the approval endpoint's AWS_IAM function URL, signed with "
        "your own AWS credentials; your principal ARN is recorded as the approver.",
    )
    p.add_argument("approval_id", metavar="ID", help="the approval id (apr-...) from the notification")
    p.add_argument("--reject", action="store_true", help="reject the fix instead of approving it")
    p.add_argument("--reason", default="", help="a short reason, kept in the audit trail")
    p.add_argument("--url", default=os.environ.get(URL_ENV, ""), help=f"the AWS_IAM function URL (default: ${URL_ENV})")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the endpoint (default: 10)")
    add_aws_options(p)
    add_json_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from esm_medic.approval import valid_approval_id
    from esm_medic.aws import signed_request
    from esm_medic.cli.common import aws_error_message, fail, make_aws, print_json

    if not valid_approval_id(args.approval_id):
        return fail(f"not an approval id: {args.approval_id!r} (expected apr-...)", 2)
    url = str(args.url or "").strip().rstrip("/")
    if not url.startswith(("https://", "http://")):
        return fail(f"no approval endpoint: pass --url or set ${URL_ENV} to the AWS_IAM function URL", 2)
    if not 0 < args.timeout <= 300:
        return fail("--timeout must be between 0 and 300 seconds", 2)
    decision = "reject" if args.reject else "approve"
    body = json.dumps({"decision": decision, "reason": str(args.reason)[:2000]}).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    aws = make_aws(args)
    try:
        status, raw = signed_request(
            aws, "POST", f"{url}/approvals/{args.approval_id}", body=body, headers=headers, timeout=args.timeout
        )
    except RuntimeError as exc:
        return fail(str(exc))
    except Exception as exc:  # credentials, DNS, TLS, refused connection
        return fail(f"could not reach the approval endpoint: {aws_error_message(exc)}")
    try:
        doc: Any = json.loads(raw.decode("utf-8", "replace") or "{}")
    except json.JSONDecodeError:
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    doc.setdefault("http_status", status)
    if status == 403 and "message" not in doc:  # Lambda itself refused the signature or the permission
        doc["message"] = "forbidden: your credentials may not invoke this function URL (lambda:InvokeFunctionUrl)"
    if args.json:
        print_json(doc)
    else:
        print(f"{args.approval_id}: {doc.get('message') or f'HTTP {status}'}")
    return 0 if status == 200 else 1
