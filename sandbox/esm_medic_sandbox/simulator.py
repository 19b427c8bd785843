"""The sandbox's fake "Lambda poller": what would a Kafka ESM report, given the real state of the account?

moto stores event source mappings but never runs them, so ``State`` / ``StateTransitionReason`` /
``LastProcessingResult`` would stay at their defaults whatever the account looks like. This module walks the set-up
chain a real Kafka ESM walks (role -> service path -> secret -> DNS -> network -> TLS -> auth -> authz) against the
sandbox account and answers with the status a real ESM would show. ``install()`` registers it as the status
provider of :mod:`esm_medic_sandbox.patches`, so every Create / Update / Get / List of an ESM returns a status that
follows the account: break a security group and the ESM reports a connection error; repair it and the ESM
recovers.

How the account is read: through boto3 clients wired straight into moto's request dispatcher in this process
(:class:`_Reader`): no HTTP, the same backends in decorator mode and in ``sandbox serve`` mode, and the real API
response shapes. Reads are memoised per *generation*: a counter bumped by every mutating AWS call on the services
that matter (ec2, iam, kafka, secretsmanager, kms, lambda functions), by edits of the sandbox DNS / SCRAM tables,
by :func:`invalidate` and by a moto reset. Per-ESM results are cached by (generation, fingerprint of the ESM's own
fields), so a ``ListEventSourceMappings`` over 1,000 unchanged ESMs costs nothing, and 1,000 ESMs on 10 clusters
share the cluster / security-group / route work.

Sandbox-only simplifications (all deliberate):

- IAM decisions use the sandbox's own evaluator (:mod:`esm_medic_sandbox.iam_sim`, the engine behind its
  ``SimulatePrincipalPolicy``) over the role's identity policies and permissions boundary: conditions, SCPs and
  resource policies are not modelled.
- Kafka ACLs (SCRAM / mTLS authorization) have no AWS API and are assumed to allow the ESM.
- Self-managed broker names resolve when they are IP literals, in :func:`dns_table`, or have an A / AAAA / CNAME
  record in a Route 53 zone that answers in the ESM's VPC (private zones associated with it, public zones); MSK
  broker names always resolve.
- The brokers' SCRAM / SASL-PLAIN users are :func:`scram_users` plus SSM parameters under
  :data:`SCRAM_SSM_PREFIX`; for MSK, a secret associated with the cluster (``kafka:ListScramSecrets``) also logs in.
  Route 53 and SSM keep that state in the account, so scenarios built from another process (``sandbox serve``)
  are judged the same way.
- The status is a pure function of (ESM configuration, account state): once the account is repaired the ESM shows
  ``OK`` on the next read, even if a real ESM would wait for its next retry or a disable/enable.

Errors inside the simulator never break a moto call: the provider logs and answers with the last known status.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from esm_medic_sandbox import sim_state
from esm_medic_sandbox.sim_checks import (
    AUTHZ_ERROR,
    CONFIG_ERROR,
    EPHEMERAL_PORT,
    HTTPS,
    KAFKA_DATA_ACTIONS,
    MESSAGES,
    PUBLIC_SERVICE_IP,
    USER_INITIATED,
    Decision,
    Trace,
    cluster_name_and_id,
    kafka_resource_arns,
    nacl_allows,
    pem_problem,
    resolves,
    sg_allows,
    trust_problem,
)
from esm_medic_sandbox.sim_model import EsmView
from esm_medic_sandbox.sim_reader import _WATCHED_SERVICES, SCRAM_SSM_PREFIX, _is_mutation, _Reader, _reader
from esm_medic_sandbox.sim_state import (
    dns_table,
    generation,
    invalidate,
    register_dns,
    register_scram_user,
    scram_users,
)
from esm_medic_sandbox.sim_walk import _Walk

__all__ = [
    "AUTHZ_ERROR",
    "CONFIG_ERROR",
    "EPHEMERAL_PORT",
    "HTTPS",
    "KAFKA_DATA_ACTIONS",
    "MESSAGES",
    "PUBLIC_SERVICE_IP",
    "SCRAM_SSM_PREFIX",
    "USER_INITIATED",
    "Decision",
    "Trace",
    "_Reader",
    "_Walk",
    "_is_mutation",
    "_reader",
    "cluster_name_and_id",
    "dns_table",
    "evaluate",
    "evaluate_all",
    "generation",
    "install",
    "installed",
    "invalidate",
    "kafka_resource_arns",
    "last_status",
    "nacl_allows",
    "pem_problem",
    "provider",
    "register_dns",
    "register_scram_user",
    "reset",
    "resolves",
    "scram_users",
    "sg_allows",
    "trace",
    "trust_problem",
]

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------- public API
_CACHE: dict[str, tuple[int, str, Trace]] = {}
_LAST: dict[str, dict[str, str]] = {}
_FINGERPRINT_KEYS = (
    "FunctionArn",
    "EventSourceArn",
    "SelfManagedEventSource",
    "SourceAccessConfigurations",
    "ProvisionedPollerConfig",
    "Topics",
    "AmazonManagedKafkaEventSourceConfig",
    "SelfManagedKafkaEventSourceConfig",
    "LastModified",
)


def _fingerprint(item: Mapping[str, Any], enabled: bool) -> str:
    data = {k: item.get(k) for k in _FINGERPRINT_KEYS}
    data["enabled"] = enabled
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _moto_esm(uuid: str) -> Any | None:
    """moto's EventSourceMapping object for ``uuid`` (whichever Lambda backend holds it), or None."""
    try:
        from esm_medic_sandbox.patches import find_esm

        return find_esm(uuid)
    except Exception:  # pragma: no cover - patches missing or moto internals moved
        log.debug("could not look up moto's ESM object", exc_info=True)
        return None


def _moto_enabled(esm: EsmView, item: Mapping[str, Any]) -> bool:
    """The user's Enabled flag, from moto's own ESM object (the item's State may carry our earlier answer)."""
    obj = _moto_esm(esm.uuid)
    if obj is not None:
        return bool(getattr(obj, "enabled", True))
    return str(item.get("State", "Enabled")) not in ("Disabled", "Disabling")


def _evaluate_trace(item: Mapping[str, Any]) -> Trace | None:
    esm = EsmView.parse(item)
    if not esm.is_kafka:
        return None
    enabled = _moto_enabled(esm, item)
    with sim_state.lock:
        fp = _fingerprint(item, enabled)
        cached = _CACHE.get(esm.uuid)
        gen = sim_state.generation()
        if cached is not None and cached[0] == gen and cached[1] == fp:
            return cached[2]
        if not enabled:
            last = _LAST.get(esm.uuid, {})
            status = {
                "State": "Disabled",
                "StateTransitionReason": USER_INITIATED,
                "LastProcessingResult": last.get("LastProcessingResult", ""),
            }
            tr = Trace(esm.uuid, status, "disabled", [Decision("none", "enabled", None, "the ESM is disabled")])
        else:
            tr = _Walk(item).run()
            _LAST[esm.uuid] = dict(tr.status)
        _CACHE[esm.uuid] = (gen, fp, tr)
        return tr


def evaluate(esm_item: Mapping[str, Any]) -> dict[str, str]:
    """The status a real ESM would show: {"State", "StateTransitionReason", "LastProcessingResult"}.
    Non-Kafka ESMs get {} (no opinion). Raises on simulator bugs (the provider wraps it)."""
    tr = _evaluate_trace(esm_item)
    return dict(tr.status) if tr is not None else {}


def trace(esm_item: Mapping[str, Any]) -> dict[str, Any]:
    """The per-step decisions behind :func:`evaluate` (for the demo and for debugging)."""
    tr = _evaluate_trace(esm_item)
    if tr is None:
        return {
            "uuid": str(esm_item.get("UUID", "")),
            "status": {},
            "failed_step": "n/a",
            "cause": "",
            "decisions": [Decision("none", "kind", None, "not a Kafka ESM").to_dict()],
        }
    return tr.to_dict()


def provider(esm_item: dict[str, Any]) -> dict[str, str] | None:
    """The status provider registered with patches: never raises; falls back to the last known status."""
    uuid = str(esm_item.get("UUID") or "")
    try:
        status = evaluate(esm_item)
        return status or None
    except Exception:
        log.exception("esm-medic simulator failed for ESM %s; keeping its last known status", uuid)
        return dict(_LAST[uuid]) if uuid in _LAST else None


def evaluate_all() -> dict[str, dict[str, str]]:
    """uuid -> simulated status for every Kafka ESM in every account / region moto holds."""
    from moto.awslambda.models import lambda_backends
    from moto.awslambda_simple.models import lambda_simple_backends

    out: dict[str, dict[str, str]] = {}
    for backends in (lambda_simple_backends, lambda_backends):
        for account_id in list(backends.keys()):
            for region in list(backends[account_id].keys()):
                for uuid, obj in list(backends[account_id][region]._event_source_mappings.items()):
                    if uuid in out:
                        continue
                    status = evaluate(obj.get_configuration())
                    if status:
                        out[uuid] = status
    return out


def last_status(uuid: str) -> dict[str, str]:
    return dict(_LAST.get(uuid, {}))


def reset() -> None:
    """Forget everything: caches, the DNS table and SCRAM users (called when moto resets)."""
    with sim_state.lock:
        _CACHE.clear()
        _LAST.clear()
        sim_state.clear_tables()


_INSTALLED = False


def _install_change_hooks() -> None:
    from moto.core.base_backend import BackendDict
    from moto.core.responses import BaseResponse

    if getattr(BaseResponse.call_action, "_esm_medic_sim", False):
        return
    original = BaseResponse.call_action

    def call_action(self: Any) -> Any:
        result = original(self)
        try:
            status = result[0] if isinstance(result, tuple) and result else 200
            service = str(getattr(self, "service_name", "") or "")
            method = str(getattr(self, "method", "") or "").upper()
            # GETs of the REST APIs never mutate; ESM calls are tracked by fingerprint (and are the hot path)
            if (
                int(status) < 400
                and service in _WATCHED_SERVICES
                and method != "GET"
                and "/event-source-mappings" not in str(getattr(self, "path", ""))
                and _is_mutation(service, str(self._get_action()))
            ):
                sim_state.bump()
        except Exception:  # pragma: no cover - never break a moto call
            sim_state.bump()
        return result

    call_action._esm_medic_sim = True  # type: ignore[attr-defined]
    call_action.__wrapped__ = original  # type: ignore[attr-defined]
    BaseResponse.call_action = call_action  # type: ignore[method-assign]

    original_reset = BackendDict.reset.__func__  # type: ignore[attr-defined]

    def reset_all(cls: Any) -> None:
        original_reset(cls)
        reset()

    BackendDict.reset = classmethod(reset_all)  # type: ignore[method-assign,assignment]


def install() -> None:
    """Register the simulator as the ESM status provider of the sandbox patches (idempotent)."""
    global _INSTALLED
    from esm_medic_sandbox import patches

    _install_change_hooks()
    patches.set_status_provider(provider)
    _INSTALLED = True


def installed() -> bool:
    return _INSTALLED
