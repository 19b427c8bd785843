"""Owner routing from tags: who hears about an ESM, where its ticket goes, who approves its fixes.

Tags, read on the ESM, then its function, then the MSK cluster (the first level that has a tag wins, per tag),
then the account default from the environment:

==============================  ====================================================  ==============================
tag                             meaning                                               account default
==============================  ====================================================  ==============================
``esm-medic:owner``             owning team or person (shown in messages and tickets)  ``ESM_MEDIC_DEFAULT_OWNER``
``esm-medic:slack-channel``     Slack channel id or name for the Slack app            ``ESM_MEDIC_SLACK_CHANNEL``
``esm-medic:ticket-project``    Jira project key / ServiceNow assignment group /      ``ESM_MEDIC_TICKET_PROJECT``
                                GitHub repo; per provider: ``jira=OPS;github=o/r``
``esm-medic:approvers``         approvers (comma separated e-mails / Slack ids)       ``ESM_MEDIC_APPROVERS``
==============================  ====================================================  ==============================

A level that cannot be read (AccessDenied, a self-managed ESM without a cluster) is skipped and logged.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

logger = Logger(service="esm-medic", child=True)

TAG_OWNER = "esm-medic:owner"
TAG_SLACK_CHANNEL = "esm-medic:slack-channel"
TAG_TICKET_PROJECT = "esm-medic:ticket-project"
TAG_APPROVERS = "esm-medic:approvers"
FIELDS = {
    "owner": (TAG_OWNER, "ESM_MEDIC_DEFAULT_OWNER"),
    "slack_channel": (TAG_SLACK_CHANNEL, "ESM_MEDIC_SLACK_CHANNEL"),
    "ticket_project": (TAG_TICKET_PROJECT, "ESM_MEDIC_TICKET_PROJECT"),
    "approvers": (TAG_APPROVERS, "ESM_MEDIC_APPROVERS"),
}
CACHE_SECONDS = 300.0


@dataclass
class Route:
    owner: str = ""
    slack_channel: str = ""
    ticket_project: str = ""
    approvers: tuple[str, ...] = ()
    source: dict[str, str] = field(default_factory=dict)  # field -> "esm" | "function" | "cluster" | "account"

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "approvers": list(self.approvers)}


_cache: dict[str, tuple[float, dict[str, str]]] = {}
_lock = threading.Lock()


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def _tags(aws: Aws, level: str, arn: str) -> dict[str, str]:
    now = time.monotonic()
    with _lock:
        hit = _cache.get(arn)
        if hit and now - hit[0] < CACHE_SECONDS:
            return hit[1]
    from esm_medic.aws import error_code

    try:
        if level == "cluster":
            tags = aws.call("kafka", "list_tags_for_resource", ResourceArn=arn).get("Tags") or {}
        else:
            tags = aws.call("lambda", "list_tags", Resource=arn).get("Tags") or {}
    except Exception as exc:
        logger.warning(
            "cannot read routing tags", extra={"level": level, "arn": arn, "error": error_code(exc) or str(exc)}
        )
        tags = {}
    clean = {str(k): str(v) for k, v in dict(tags).items() if str(k).startswith("esm-medic:")}
    with _lock:
        _cache[arn] = (now, clean)
    return clean


def arns_of(context: Mapping[str, Any]) -> tuple[str, str, str]:
    """(ESM ARN, function ARN, cluster ARN) from a workflow context (API item or the engine's summary)."""
    diag = context.get("diagnosis") if isinstance(context.get("diagnosis"), Mapping) else {}
    esm: Mapping[str, Any] = {}
    for cand in (context.get("esm"), (diag or {}).get("esm")):
        if isinstance(cand, Mapping) and cand:
            esm = cand
            break
    uuid = str(context.get("uuid") or esm.get("UUID") or esm.get("uuid") or "")
    fn = str(esm.get("FunctionArn") or esm.get("function_arn") or esm.get("function") or "")
    fn = fn or str(context.get("function_arn") or (diag or {}).get("function_arn") or "")
    cluster = str(esm.get("cluster_arn") or "")
    source = str(esm.get("EventSourceArn") or "")
    if not cluster and source.startswith("arn:aws:kafka:"):
        cluster = source
    esm_arn = str(esm.get("EventSourceMappingArn") or esm.get("arn") or "")
    if not esm_arn and fn.startswith("arn:") and uuid:
        parts = fn.split(":")
        esm_arn = f"arn:{parts[1]}:lambda:{parts[3]}:{parts[4]}:event-source-mapping:{uuid}"
    return esm_arn, fn if fn.startswith("arn:") else "", cluster


def route_for(aws: Aws | None, context: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Route:
    """The route for the ESM the context names: the nearest tag per field, else the account default."""
    e = os.environ if env is None else env
    esm_arn, fn_arn, cluster_arn = arns_of(context)
    levels = [("esm", esm_arn), ("function", fn_arn), ("cluster", cluster_arn)]
    found: dict[str, tuple[str, str]] = {}
    if aws is not None:
        for level, arn in levels:
            if not arn:
                continue
            tags = _tags(aws, level, arn)
            for name, (tag, _) in FIELDS.items():
                if name not in found and tags.get(tag, "").strip():
                    found[name] = (tags[tag].strip(), level)
            if len(found) == len(FIELDS):
                break
    for name, (_, var) in FIELDS.items():
        if name not in found and (e.get(var) or "").strip():
            found[name] = ((e.get(var) or "").strip(), "account")
    values = {k: v for k, (v, _) in found.items()}
    approvers = tuple(a.strip() for a in values.get("approvers", "").split(",") if a.strip())
    return Route(
        owner=values.get("owner", ""),
        slack_channel=values.get("slack_channel", ""),
        ticket_project=values.get("ticket_project", ""),
        approvers=approvers,
        source={k: lvl for k, (_, lvl) in found.items()},
    )


def foreign_account(aws: Aws | None, context: Mapping[str, Any]) -> str:
    """The ESM's account when it is not the install's own ("" otherwise): a central install acting in a member
    account names it in every message, approval and ticket. The account comes from the payload (``account``, the
    classification's, the diagnosed function's ARN: :func:`esm_medic.accounts.account_of_payload`); when the
    install's own account cannot be read, a named account is shown (better one id too many than a wrong guess)."""
    from esm_medic.accounts import account_of_payload, home_account

    account = account_of_payload(context) or ""
    if not account or aws is None:
        return account
    try:
        return "" if account == home_account(aws) else account
    except Exception as exc:
        from esm_medic.aws import error_code

        logger.warning("cannot read the install's own account", extra={"error": error_code(exc) or repr(exc)})
        return account


def with_account(aws: Aws | None, context: Mapping[str, Any]) -> dict[str, Any]:
    """``context`` whose ``account`` is the ESM's account when foreign, and absent when it is the install's own."""
    out = {k: v for k, v in context.items() if k != "account"}
    account = foreign_account(aws, context)
    if account:
        out["account"] = account
    return out
