"""``esm-medic outbox list|redeliver``: the ticket deliveries that have not reached their provider yet.

``list`` shows every undelivered item (pending: retried automatically with backoff; failed: a final answer such as
a 4xx, waiting for an operator) with the provider's last answer. ``redeliver`` tries them now (all, or the ids
given), whatever their backoff; an item is delivered at most once. Exit code: 0 when nothing is left undelivered
(``list``) or every attempted delivery succeeded (``redeliver``), 1 otherwise, 2 on bad usage.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from esm_medic.cli.common import CliError, add_aws_options, add_json_option

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "outbox",
        help="list or redeliver ticket deliveries that have not reached their provider",
        description="Ticket deliveries (Jira, ServiceNow, GitHub, PagerDuty, file) wait in the STATE table's "
        "outbox until their provider accepts them. List them, or redeliver them now.",
    )
    p.add_argument("action", choices=("list", "redeliver"))
    p.add_argument("ids", nargs="*", metavar="ID", help="outbox item ids (redeliver; default: every undelivered one)")
    p.add_argument("--all", action="store_true", help="list: include delivered items")
    add_aws_options(p)
    add_json_option(p)
    p.set_defaults(func=run)


def _line(item: dict[str, Any]) -> str:
    err = item.get("last_error") or {}
    answer = f" {err.get('status') or ''} {err.get('answer') or err.get('error') or ''}".rstrip()
    doc = item.get("doc") or {}
    return (
        f"{item['item_id']}  {item.get('status', '?'):9} {item['provider']:10} {item['op']:7} "
        f"{doc.get('ticket_id', '?')}  attempts={item.get('attempts', 0)}{answer[:160]}"
    )


def execute(aws: Aws, action: str, ids: list[str], *, include_delivered: bool = False, as_json: bool = False) -> int:
    from esm_medic.cli.common import print_json
    from esm_medic.notify import outbox

    if action == "list":
        items = outbox.undelivered(aws, include_delivered=include_delivered)
        if as_json:
            print_json(items)
        else:
            for item in items:
                print(_line(item))
            print(f"outbox: {sum(1 for i in items if i.get('status') != outbox.DELIVERED)} undelivered")
        return 0 if all(i.get("status") == outbox.DELIVERED for i in items) else 1
    results = outbox.drain(aws, limit=10_000, force=not ids, ids=ids)
    if as_json:
        print_json(results)
    else:
        for r in results:
            err = r.get("error") or {}
            print(f"{r['item_id']}  {r['status']:9} {r['provider']:10} {r['op']:7} {err.get('error', '')}".rstrip())
        print(f"outbox: {sum(1 for r in results if r['status'] == outbox.DELIVERED)} of {len(results)} delivered")
    return 0 if all(r["status"] in (outbox.DELIVERED, "skipped") for r in results) else 1


def run(args: argparse.Namespace) -> int:
    from esm_medic.cli.common import aws_error_message, fail, make_aws

    if args.action == "list" and args.ids:
        return fail("list takes no ids", 2)
    try:
        return execute(make_aws(args), args.action, list(args.ids), include_delivered=args.all, as_json=args.json)
    except Exception as exc:
        if isinstance(exc, CliError):
            raise
        return fail(aws_error_message(exc))
