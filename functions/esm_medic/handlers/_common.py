"""Shared Powertools setup of every esm-medic Lambda handler (workflow, notify / approval and detection handlers).

A handler module is thin::

    from esm_medic.handlers._common import lambda_entry, metrics

    @lambda_entry("classify", schema="classify")
    def handler(event, context):
        ...call logic in the package, return a small JSON-able dict...

:func:`lambda_entry` gives every handler the same behaviour:

- Powertools ``Logger(service="esm-medic")`` with the Lambda context injected and the correlation id set to the
  ESM uuid (``uuid`` at the top of the event, or ``input.uuid`` / ``state.uuid`` / ``detail.uuid``);
- Powertools ``Metrics(namespace="esm-medic")`` flushed as EMF after each call;
- input validation with a JSON Schema from ``esm_medic/schemas/<schema>.json`` (Powertools validation); a bad
  event raises :class:`InvalidInput` (the state machine does not retry it);
- errors mapped to the names the state machine retries: AWS throttling that outlived the adapter's own retries
  becomes :class:`Throttled`, connection failures and 5xx become :class:`Transient`;
- X-Ray tracing, created lazily (the xray SDK import costs ~250 ms): only when tracing is on, i.e. inside Lambda
  with active tracing (``_X_AMZN_TRACE_ID`` set) and ``POWERTOOLS_TRACE_DISABLED`` not true.

:func:`get_aws` returns one :class:`esm_medic.aws.Aws` per container (retry budget from
``ESM_MEDIC_AWS_MAX_ATTEMPTS``, else the caller's default: :data:`WORKFLOW_MAX_ATTEMPTS` for the workflow's tasks,
which Step Functions retries, else 8). :func:`idempotent_call` runs a side effect at most once per key with
Powertools idempotency on the IDEMPOTENCY table (``ESM_MEDIC_IDEMPOTENCY_TABLE``); the persistence layer is built
on first use so import time stays small.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

SERVICE = "esm-medic"
NAMESPACE = "esm-medic"
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
DEFAULT_IDEMPOTENCY_TTL = 24 * 3600

logger = Logger(service=SERVICE)
# a handler whose metrics all went out as single metrics leaves the shared set empty: that is not a problem
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

Handler = Callable[[Any, Any], Any]


# ---------------------------------------------------------------------------------------------- errors
class WorkflowError(Exception):
    """Base of the errors handlers raise on purpose; the class name is the Step Functions error name."""


class Throttled(WorkflowError):
    """AWS kept throttling after the adapter's retries; the state machine retries with backoff."""


class Transient(WorkflowError):
    """A temporary failure (connection reset, 5xx, endpoint timeout); the state machine retries it."""


class InvalidInput(WorkflowError):
    """The event does not match the handler's input schema; never retried."""


class PersistenceUnavailable(WorkflowError):
    """The idempotency store (a DynamoDB table, named in the message) cannot be read or written."""


#: errors the state machine routes to a normal path (join the running incident, ticket); logged without a trace
EXPECTED_ERRORS = frozenset({"RemediationInProgress", "LockConflict", "NotApplied", "Rejected"})

_TRANSIENT_NAMES = frozenset(
    {
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionError",
        "ProxyConnectionError",
    }
)
_TRANSIENT_CODES = frozenset(
    {"InternalError", "InternalFailure", "ServiceUnavailable", "ServiceUnavailableException", "RequestTimeout"}
)


def translate_error(exc: BaseException) -> BaseException:
    """The exception to raise to Step Functions for ``exc``: Throttled / Transient, or ``exc`` itself."""
    from esm_medic.aws import error_code, is_throttling

    if isinstance(exc, WorkflowError):
        return exc
    if is_throttling(exc) or getattr(exc, "throttled", False):
        return Throttled(f"{type(exc).__name__}: {exc}")
    cause = exc.__cause__
    if cause is not None and (is_throttling(cause) or getattr(cause, "throttled", False)):
        return Throttled(f"{type(exc).__name__}: {exc}")
    if type(exc).__name__ in _TRANSIENT_NAMES or error_code(exc) in _TRANSIENT_CODES:
        return Transient(f"{type(exc).__name__}: {exc}")
    return exc


# ---------------------------------------------------------------------------------------------- adapter
_AWS_LOCK = threading.Lock()
_AWS: dict[tuple[str, int], Aws] = {}


#: the workflow's tasks rely on Step Functions Retry (Throttled / Transient, with backoff), not on stacked SDK
#: retries: their adapter tries each call this often (``ESM_MEDIC_AWS_MAX_ATTEMPTS`` still overrides it)
WORKFLOW_MAX_ATTEMPTS = 2


def get_aws(default_attempts: int | None = None) -> Aws:
    """One adapter per container (per region / retry budget), reused across invocations. The budget is
    ``ESM_MEDIC_AWS_MAX_ATTEMPTS`` when set, else ``default_attempts`` (else the adapter's default)."""
    from esm_medic.aws import DEFAULT_MAX_ATTEMPTS, Aws

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    default = default_attempts or DEFAULT_MAX_ATTEMPTS
    try:
        attempts = int(os.environ.get("ESM_MEDIC_AWS_MAX_ATTEMPTS") or default)
    except ValueError:
        attempts = default
    key = (region, max(1, attempts))
    with _AWS_LOCK:
        aws = _AWS.get(key)
        if aws is None:
            aws = _AWS[key] = Aws(region=region, max_attempts=key[1])
        return aws


#: the member role each workflow step acts with (a member account's ESM): the read-only steps use the diagnosis
#: role; the steps that change or re-check after a change use the remediation role, which also holds the read
#: actions (the engine re-plans from live state and records before / after with the same credentials)
STEP_PURPOSE = {
    "classify": "diagnosis",
    "diagnose": "diagnosis",
    "decide": "diagnosis",
    "remediate": "remediation",
    "verify": "remediation",
    "rollback": "remediation",
}


def payload_account(event: Any) -> str | None:
    """The account of the ESM a workflow payload is about (:func:`esm_medic.accounts.account_of_payload`)."""
    from esm_medic.accounts import account_of_payload

    return account_of_payload(event)


def aws_for_step(event: Any, step: str, default_attempts: int | None = WORKFLOW_MAX_ATTEMPTS) -> Aws:
    """The adapter a workflow step uses for the payload's ESM: the container's adapter for the install's own
    account (or none named), else the member account's role for the step (:data:`STEP_PURPOSE`), assumed through
    it. A member that cannot be assumed raises ``AccountAccessError`` (the workflow records it and opens a ticket);
    an account outside ``ESM_MEDIC_MEMBER_ACCOUNTS`` raises ``AccountConfigError``."""
    central = get_aws(default_attempts)
    account = payload_account(event)
    if not account:
        return central
    from esm_medic.accounts import aws_for

    aws = aws_for(central, account, STEP_PURPOSE.get(step, "diagnosis"))
    if aws is not central:
        logger.append_keys(account=account)
    return aws


def reset_aws() -> None:
    """Forget cached adapters (tests that change the environment between sandboxes)."""
    with _AWS_LOCK:
        _AWS.clear()


# ---------------------------------------------------------------------------------------------- validation
@functools.lru_cache(maxsize=64)
def load_schema(name: str) -> dict[str, Any]:
    path = SCHEMA_DIR / f"{name}.json"
    with path.open(encoding="utf-8") as fh:
        schema: dict[str, Any] = json.load(fh)
    return schema


def validate_input(event: Any, schema_name: str) -> dict[str, Any]:
    """Validate ``event`` against ``schemas/<schema_name>.json`` (esm_medic.validation); InvalidInput if not."""
    from esm_medic.validation import first_error

    if not isinstance(event, dict):
        raise InvalidInput(f"{schema_name}: the event must be a JSON object, got {type(event).__name__}")
    problem = first_error(load_schema(schema_name), event, root="<event>")
    if problem is not None:
        raise InvalidInput(f"{schema_name}: invalid input at {problem}")
    return event


# ---------------------------------------------------------------------------------------------- tracing
_TRACER: Any = None
_TRACER_LOCK = threading.Lock()


def tracing_enabled() -> bool:
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    return bool(os.environ.get("_X_AMZN_TRACE_ID")) and bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


def get_tracer() -> Any:
    """The Powertools Tracer, created on first use (None when tracing is off)."""
    global _TRACER
    if not tracing_enabled():
        return None
    with _TRACER_LOCK:
        if _TRACER is None:
            try:
                from aws_lambda_powertools import Tracer

                _TRACER = Tracer(service=SERVICE)
            except ImportError as exc:  # tracing is an aid, never a reason to fail the handler
                logger.warning("tracing disabled: the X-Ray SDK is not installed (%s)", exc)
                os.environ["POWERTOOLS_TRACE_DISABLED"] = "true"
                return None
        return _TRACER


# ---------------------------------------------------------------------------------------------- metrics
def count(name: str, value: float = 1, *, unit: MetricUnit = MetricUnit.Count, **dimensions: str) -> None:
    """The one way handlers emit a metric (PascalCase name; a Count unless ``unit`` says otherwise).

    Without dimensions it joins the invocation's shared metric set (dimension ``service`` only; what the alarms
    read). With ``dimensions`` (e.g. ``step="network"``) it is its own metric set (Powertools ``single_metric``),
    so no dimension leaks onto any other metric. A metric never fails the handler."""
    dims = {dim: str(val)[:250] for dim, val in dimensions.items() if val}
    try:
        if not dims:
            metrics.add_metric(name=name, unit=unit, value=value)
            return
        if is_metrics_disabled():
            return
        with single_metric(
            name=name, unit=unit, value=value, namespace=NAMESPACE, default_dimensions={"service": SERVICE, **dims}
        ):
            pass
    except Exception as exc:  # e.g. a value Powertools refuses: log it, never fail the request
        logger.warning("metric not emitted", extra={"metric": name, "reason": type(exc).__name__})


def correlation_id(event: Any) -> str | None:
    """The ESM uuid of a workflow / detection event, wherever it sits."""
    if not isinstance(event, Mapping):
        return None
    for holder in (event, event.get("input"), event.get("state"), event.get("detail"), event.get("context")):
        if isinstance(holder, Mapping):
            value = holder.get("uuid")
            if isinstance(value, str) and value:
                return value
    return None


# ---------------------------------------------------------------------------------------------- entry
def lambda_entry(name: str, *, schema: str | None = None) -> Callable[[Handler], Handler]:
    """Wrap a handler with logging, metrics, validation, lazy tracing and error mapping (see module doc)."""

    def deco(fn: Handler) -> Handler:
        @functools.wraps(fn)
        def run(event: Any, context: Any) -> Any:
            metrics.clear_metrics()  # no dimension left over from an earlier invocation (e.g. metrics disabled)
            logger.set_correlation_id(correlation_id(event))
            logger.append_keys(handler=name)
            started = time.perf_counter()
            try:
                if schema:
                    validate_input(event, schema)
                tracer = get_tracer()
                if tracer is not None:

                    def traced(ev: Any, ctx: Any) -> Any:
                        tracer.put_annotation(key="uuid", value=correlation_id(ev) or "")
                        return fn(ev, ctx)

                    result = tracer.capture_lambda_handler(traced, capture_response=False)(event, context)
                else:
                    result = fn(event, context)
            except Exception as exc:
                mapped = translate_error(exc)
                count("HandlerErrors", 1, handler=name, error=type(mapped).__name__)
                if type(mapped).__name__ in EXPECTED_ERRORS:  # a routed outcome, not a fault
                    logger.info("handler %s: %s: %s", name, type(mapped).__name__, mapped)
                else:
                    logger.exception("handler %s failed: %s", name, type(mapped).__name__)
                if mapped is exc:
                    raise
                raise mapped from exc
            if isinstance(result, dict) and "elapsed_ms" in result and result["elapsed_ms"] is None:
                result["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 1)
            return result

        wrapped = logger.inject_lambda_context(log_event=False, clear_state=True)(run)
        return metrics.log_metrics(wrapped)

    return deco


# ---------------------------------------------------------------------------------------------- idempotency
_IDEM_LOCK = threading.Lock()
_IDEM: dict[tuple[str, int, str, str], tuple[Callable[..., Any], Any]] = {}


def idempotent_call(
    name: str,
    fn: Callable[[dict[str, Any]], dict[str, Any]],
    request: dict[str, Any],
    *,
    key_jmespath: str,
    context: Any = None,
    ttl_seconds: int | None = None,
) -> dict[str, Any]:
    """Run ``fn(request)`` at most once per idempotency key (JMESPath ``key_jmespath`` over ``request``).

    A repeated call with the same key returns the stored result without running ``fn`` (Powertools idempotency,
    DynamoDB persistence on the IDEMPOTENCY table). A call that raised is not stored, so a retry runs again.
    """
    from esm_medic.tables import IDEMPOTENCY

    ttl = ttl_seconds or int(os.environ.get("ESM_MEDIC_IDEMPOTENCY_TTL_SECONDS") or DEFAULT_IDEMPOTENCY_TTL)
    table = IDEMPOTENCY.name
    key = (name, id(fn), table, key_jmespath)
    with _IDEM_LOCK:
        cached = _IDEM.get(key)
        if cached is None:
            from aws_lambda_powertools.utilities.idempotency import (
                DynamoDBPersistenceLayer,
                IdempotencyConfig,
                idempotent_function,
            )

            config = IdempotencyConfig(
                event_key_jmespath=key_jmespath,
                raise_on_no_idempotency_key=True,
                expires_after_seconds=ttl,
                use_local_cache=False,
            )
            store = DynamoDBPersistenceLayer(table_name=table)

            def _run(*, request: dict[str, Any]) -> dict[str, Any]:
                return fn(request)

            _run.__qualname__ = f"{name}_once"
            wrapped = idempotent_function(
                data_keyword_argument="request", persistence_store=store, config=config, key_prefix=name
            )(_run)
            cached = _IDEM[key] = (wrapped, config)
    wrapped, config = cached
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        config.register_lambda_context(context)
    # imported here: the idempotency package pulls in boto3 (~170 ms measured), which most handlers never need
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyPersistenceLayerError

    try:
        result: dict[str, Any] = wrapped(request=request)
    except IdempotencyPersistenceLayerError as exc:
        from esm_medic.aws import error_code, is_throttling

        cause = exc.__cause__
        code = error_code(cause) if cause is not None else ""
        if cause is not None and is_throttling(cause):
            raise Throttled(f"{name}: the idempotency table {table!r} is throttled: {exc}") from exc
        what = "does not exist" if code == "ResourceNotFoundException" else f"cannot be used ({code or exc})"
        raise PersistenceUnavailable(
            f"{name}: the idempotency table {table!r} ({IDEMPOTENCY.env}) {what}: {exc}"
        ) from exc
    return result


def reset_idempotency() -> None:
    """Forget the cached idempotent wrappers (tests that recreate tables)."""
    with _IDEM_LOCK:
        _IDEM.clear()
