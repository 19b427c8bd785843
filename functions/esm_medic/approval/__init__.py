"""Human approval of risky fixes, built to survive link scanners, double clicks, replays and impostors.

1. The workflow's ``waitForTaskToken`` task calls :func:`request_approval`; the task token goes into the STATE table
   under a random, opaque approval id (only the id ever appears in a URL, a Slack button or a log line).
2. Every approver decides as an identity a channel proved, never a typed name:
   - a web link of their own (:mod:`.links`: the HMAC binds approval id, approver, plan hash and expiry), sent to
     them alone; opening it (GET / HEAD, e.g. a mail scanner) only shows a page, only a POST decides;
   - the principal ARN of a SigV4-signed request to a function URL with ``AWS_IAM`` auth (``esm-medic approve``);
   - the ``user.id`` of Slack's signed interactivity payload (:mod:`.slack`).
3. :func:`decide_approval` makes the identity canonical and maps it to one person (:mod:`.settings`), checks expiry,
   the allow-list and the requester exclusion, decides once, audits, then resumes the workflow.

Modules: settings (identities), store (DynamoDB records and audit), links, slack, request, decide.
"""

from esm_medic.approval.decide import (
    E_BAD_INPUT,
    E_DECIDED,
    E_EXPIRED,
    E_NOT_ALLOWED,
    E_NOT_FOUND,
    E_REQUESTER,
    E_SAME_APPROVER,
    E_STORE,
    E_TASK,
    decide_approval,
    normalise_decision,
)
from esm_medic.approval.links import approver_urls, link_key, make_token, parse_token, plan_hash, verify_token
from esm_medic.approval.request import (
    DEFAULT_TIMEOUT_SECONDS,
    MAX_TIMEOUT_SECONDS,
    RETENTION_SECONDS,
    ApprovalError,
    plan_summary,
    request_approval,
)
from esm_medic.approval.settings import PROD_TIERS, TIER_TAG, ApprovalSettings, canonical
from esm_medic.approval.slack import (
    SLACK_WINDOW_SECONDS,
    claim_slack_request,
    slack_identity,
    slack_signing_secret,
    verify_slack_signature,
)
from esm_medic.approval.store import (
    APPROVED,
    EXPIRED,
    PENDING,
    REJECTED,
    STATUSES,
    audit_records,
    get_approval,
    load,
    new_approval_id,
    pending_approvals,
    public_view,
    valid_approval_id,
)

__all__ = [
    "APPROVED",
    "DEFAULT_TIMEOUT_SECONDS",
    "EXPIRED",
    "E_BAD_INPUT",
    "E_DECIDED",
    "E_EXPIRED",
    "E_NOT_ALLOWED",
    "E_NOT_FOUND",
    "E_REQUESTER",
    "E_SAME_APPROVER",
    "E_STORE",
    "E_TASK",
    "MAX_TIMEOUT_SECONDS",
    "PENDING",
    "PROD_TIERS",
    "REJECTED",
    "RETENTION_SECONDS",
    "SLACK_WINDOW_SECONDS",
    "STATUSES",
    "TIER_TAG",
    "ApprovalError",
    "ApprovalSettings",
    "approver_urls",
    "audit_records",
    "canonical",
    "claim_slack_request",
    "decide_approval",
    "get_approval",
    "link_key",
    "load",
    "make_token",
    "new_approval_id",
    "normalise_decision",
    "parse_token",
    "pending_approvals",
    "plan_hash",
    "plan_summary",
    "public_view",
    "request_approval",
    "slack_identity",
    "slack_signing_secret",
    "valid_approval_id",
    "verify_slack_signature",
    "verify_token",
]
