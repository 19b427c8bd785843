"""The one door to AWS. Diagnosis, remediation, detection and handlers reach AWS only through here.

- one boto3 Session per ``Aws`` (profile / region resolution as the AWS CLI does it),
- an optional endpoint override (``endpoint_url=`` or the standard ``AWS_ENDPOINT_URL`` variable, which
  botocore honours by itself), used for the local sandbox,
- retries with backoff in botocore's ``standard`` mode (throttling and transient errors); ``max_attempts`` counts
  retries, so a request is tried at most ``1 + max_attempts`` times. Each caller picks a named budget (below),
- DynamoDB items (de)serialised with boto3's own ``TypeSerializer`` / ``TypeDeserializer`` (:func:`to_item`,
  :func:`from_item`, :func:`to_value`),
- per-operation call counting, so scans and benchmarks can report API calls,
- helpers that name error classes (access denied, throttled, not found, unsupported) without string
  matching scattered through the code.

boto3 is imported lazily: classification and the catalogue never pay for it.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from botocore.client import BaseClient

# ---------------------------------------------------------------------------------------------- retry budgets
#: Retries per AWS call, by caller. Pass one as ``Aws(max_attempts=aws.RETRIES_...)``.
#:
#: - ``RETRIES_INTERACTIVE``: a person or Slack is waiting (the approval page; Slack wants an answer within 3 s).
#:   One retry, with short timeouts: ``Aws(max_attempts=RETRIES_INTERACTIVE, timeouts=INTERACTIVE_TIMEOUTS)``
#:   (or :meth:`Aws.interactive`): an answer "try again" beats a late one.
#: - ``RETRIES_WORKFLOW_TASK``: a Step Functions task. The state machine's own ``Retry`` (with backoff) covers
#:   throttling and transient errors; retrying long inside the Lambda as well would multiply the two.
#: - ``RETRIES_STANDARD``: the CLI, the sweeper and other batch callers, with no one waiting on a deadline.
RETRIES_INTERACTIVE = 1
RETRIES_WORKFLOW_TASK = 2
RETRIES_STANDARD = 8
DEFAULT_MAX_ATTEMPTS = RETRIES_STANDARD
#: (connect, read) timeouts in seconds: the default, and for interactive callers
STANDARD_TIMEOUTS = (5.0, 30.0)
INTERACTIVE_TIMEOUTS = (1.0, 2.0)

ACCESS_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "Client.UnauthorizedOperation",
        "UnauthorizedException",
        "AuthorizationError",
        "NotAuthorized",
        "KMSAccessDeniedException",
    }
)
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "SlowDown",
        "EC2ThrottledException",
    }
)
NOT_FOUND_SUFFIXES = ("NotFound", "NotFoundException", ".NotFound", "NoSuchEntity", "ResourceNotFoundException")


def cause(exc: BaseException) -> BaseException:
    """The AWS error behind a Powertools ``GetParameterError`` (which wraps it), else ``exc`` itself."""
    if type(exc).__name__ == "GetParameterError":
        inner = exc.__cause__ or exc.__context__
        if inner is not None:
            return inner
    return exc


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    response = getattr(cause(exc), "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def error_message(exc: BaseException) -> str:
    exc = cause(exc)
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Message", ""))
    return str(exc)


def is_access_denied(exc: BaseException) -> bool:
    code = error_code(exc)
    return code in ACCESS_DENIED_CODES or code.endswith(("AccessDenied", "AccessDeniedException"))


def is_throttling(exc: BaseException) -> bool:
    return error_code(exc) in THROTTLING_CODES


def is_not_found(exc: BaseException) -> bool:
    code = error_code(exc)
    return any(code.endswith(s) for s in NOT_FOUND_SUFFIXES)


def is_conditional_check_failed(exc: BaseException) -> bool:
    """A DynamoDB write whose ConditionExpression did not hold (someone else got there first)."""
    return error_code(exc) == "ConditionalCheckFailedException"


#: codes AWS itself uses for "this operation is not implemented here"
NOT_IMPLEMENTED_CODES = frozenset({"NotImplemented", "NotImplementedException", "501"})
#: the pages moto's server (werkzeug) answers with for an action it does not implement: an unhandled
#: NotImplementedError becomes a generic HTML 500, an unknown REST route an HTML 404. AWS never serves these.
_MOTO_SERVER_PAGES = (
    "The server encountered an internal error and was unable to complete your request",
    "The requested URL was not found on the server",
)


def is_unsupported(exc: BaseException) -> bool:
    """True only for a genuine "not implemented" answer: ``NotImplementedError`` (moto in process), an AWS
    ``NotImplemented`` / HTTP 501, or the HTML error page moto's server sends for an unimplemented action (which
    botocore surfaces as a ClientError with code ``500`` / ``404``, or as a ResponseParserError for XML services).
    An AWS ``InternalFailure`` or a persistent HTTP 500 is an error, never "unsupported"."""
    if isinstance(exc, NotImplementedError):
        return True
    if error_code(exc) in NOT_IMPLEMENTED_CODES:
        return True
    text = error_message(exc) if getattr(exc, "response", None) is not None else str(exc)
    return "<html" in text.lower() and any(page in text for page in _MOTO_SERVER_PAGES)


class Aws:
    """Clients for one account/region, with retries, an optional endpoint and call counting.

    Thread-safe for client creation; boto3 clients themselves are thread-safe.
    """

    def __init__(
        self,
        region: str | None = None,
        profile: str | None = None,
        endpoint_url: str | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        session: Any = None,
        timeouts: tuple[float, float] | None = None,
    ) -> None:
        self._session = session
        self._region = region
        self._profile = profile
        self.endpoint_url = endpoint_url or None
        self.max_attempts = max_attempts
        self.timeouts = timeouts or STANDARD_TIMEOUTS
        self.calls: Counter[str] = Counter()
        self._clients: dict[str, BaseClient] = {}
        self._providers: dict[str, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def interactive(cls, **kwargs: Any) -> Aws:
        """An adapter for callers with a person waiting: the interactive retry budget and short timeouts."""
        kwargs.setdefault("max_attempts", RETRIES_INTERACTIVE)
        kwargs.setdefault("timeouts", INTERACTIVE_TIMEOUTS)
        return cls(**kwargs)

    # ------------------------------------------------------------------ session / clients
    @property
    def session(self) -> Any:
        if self._session is None:
            import boto3

            self._session = boto3.Session(profile_name=self._profile, region_name=self._region)
        return self._session

    @property
    def region(self) -> str:
        return str(
            self._region
            or self.session.region_name
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or "us-east-1"
        )

    def client(self, service: str) -> BaseClient:
        with self._lock:
            cached = self._clients.get(service)
            if cached is not None:
                return cached
            from botocore.config import Config

            cfg = Config(
                retries={"mode": "standard", "max_attempts": self.max_attempts},
                user_agent_extra="esm-medic",
                connect_timeout=self.timeouts[0],
                read_timeout=self.timeouts[1],
            )
            kwargs: dict[str, Any] = {"region_name": self.region, "config": cfg}
            if self.endpoint_url:
                kwargs["endpoint_url"] = self.endpoint_url
            client = self.session.client(service, **kwargs)
            client.meta.events.register("before-call.*.*", self._count)
            self._clients[service] = client
            return client

    # ------------------------------------------------------------------ Powertools Parameters
    def parameters(self) -> Any:
        """A Powertools ``SSMProvider`` over this adapter's SSM client (retries, endpoint and call counting
        included). Its cache lives as long as the adapter; pass ``max_age`` per read."""
        return self._provider("ssm")

    def secrets(self) -> Any:
        """A Powertools ``SecretsProvider`` over this adapter's Secrets Manager client (same rules)."""
        return self._provider("secretsmanager")

    def _provider(self, service: str) -> Any:
        cached = self._providers.get(service)
        if cached is not None:
            return cached
        from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider

        kind = SSMProvider if service == "ssm" else SecretsProvider
        provider = kind(boto3_client=self.client(service))
        with self._lock:
            return self._providers.setdefault(service, provider)

    def _count(self, model: Any = None, **_: Any) -> None:
        if model is not None:
            self.calls[f"{model.service_model.service_name}:{model.name}"] += 1

    # ------------------------------------------------------------------ calls
    def call(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        """Call ``operation`` (snake_case boto3 method name) on ``service``; returns the response dict."""
        method = getattr(self.client(service), operation)
        result: dict[str, Any] = method(**params)
        return result

    def conditional(self, service: str, operation: str, **params: Any) -> bool:
        """A conditional write: True when it happened, False when its condition did not hold; other errors raise."""
        try:
            self.call(service, operation, **params)
        except Exception as exc:
            if is_conditional_check_failed(exc):
                return False
            raise
        return True

    def paginate(self, service: str, operation: str, result_key: str, **params: Any) -> Iterator[Any]:
        """Yield every item of ``result_key`` across pages, using boto3's paginator when there is one."""
        client = self.client(service)
        if client.can_paginate(operation):
            for page in client.get_paginator(operation).paginate(**params):
                yield from page.get(result_key) or []
            return
        token_in, token_out = "NextToken", "NextToken"
        if service == "lambda":
            token_in, token_out = "Marker", "NextMarker"
        while True:
            page = getattr(client, operation)(**params)
            yield from page.get(result_key) or []
            token = page.get(token_out)
            if not token:
                return
            params = {**params, token_in: token}

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def reset_counts(self) -> None:
        self.calls.clear()

    def account_id(self) -> str:
        return str(self.call("sts", "get_caller_identity")["Account"])

    @classmethod
    def from_credentials(
        cls,
        fetch: Callable[[], dict[str, str]],
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        deferred: bool = False,
    ) -> Aws:
        """An adapter bound to explicit temporary credentials (see :func:`refreshing_session`)."""
        return cls(
            region=region,
            endpoint_url=endpoint_url,
            max_attempts=max_attempts,
            session=refreshing_session(fetch, region, deferred=deferred),
        )


def refreshing_session(
    fetch: Callable[[], dict[str, str]], region: str | None, *, deferred: bool = False, method: str = "assume-role"
) -> Any:
    """A boto3 Session on credentials that renew themselves. ``fetch()`` returns ``access_key``, ``secret_key``,
    ``token`` and ``expiry_time`` (ISO 8601). It is called now (``deferred``: on the first request instead) and
    again by botocore, under botocore's own lock, shortly before the credentials expire; its exceptions propagate
    to the caller of the request."""
    import boto3
    import botocore.session
    from botocore.credentials import DeferredRefreshableCredentials, RefreshableCredentials

    credentials: RefreshableCredentials
    if deferred:
        credentials = DeferredRefreshableCredentials(refresh_using=fetch, method=method)
    else:
        credentials = RefreshableCredentials.create_from_metadata(metadata=fetch(), refresh_using=fetch, method=method)
    core = botocore.session.get_session()
    core._credentials = credentials  # botocore has no public setter for refreshable credentials
    return boto3.Session(botocore_session=core, region_name=region)


# ------------------------------------------------------------------ DynamoDB items and signed HTTP
def _exact(v: Any) -> Any:
    """A value TypeSerializer accepts: floats as exact decimals, tuples as lists, unknown types as their text."""
    from decimal import Decimal

    if isinstance(v, float):
        return Decimal(repr(v))
    if isinstance(v, Mapping):
        return {str(k): _exact(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_exact(x) for x in v]
    if v is None or isinstance(v, str | int | bool | bytes | Decimal | set | frozenset):
        return v
    return str(v)  # datetimes, enums, paths: their text


def to_value(value: Any) -> dict[str, Any]:
    """One Python value as a DynamoDB AttributeValue (boto3's ``TypeSerializer``)."""
    from boto3.dynamodb.types import TypeSerializer

    return dict(TypeSerializer().serialize(_exact(value)))


def to_attribute_values(item: Mapping[str, Any]) -> dict[str, Any]:
    """A plain dict as a DynamoDB item (boto3's ``TypeSerializer``); sets stay sets, floats become exact decimals,
    None becomes NULL."""
    return {str(k): to_value(v) for k, v in item.items()}


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    """Like :func:`to_attribute_values`, leaving out None values (absent attributes rather than NULLs)."""
    return to_attribute_values({k: v for k, v in values.items() if v is not None})


def from_attribute_values(raw: Any) -> dict[str, Any]:
    """A DynamoDB item as plain Python (``TypeDeserializer``): integral numbers as int, others as float, sets as
    sorted lists."""
    from decimal import Decimal

    from boto3.dynamodb.types import TypeDeserializer

    de = TypeDeserializer()

    def plain(v: Any) -> Any:
        if isinstance(v, Decimal):
            return int(v) if v == v.to_integral_value() else float(v)
        if isinstance(v, set | frozenset):
            return sorted(plain(x) for x in v)
        if isinstance(v, list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {str(k): plain(de.deserialize(v)) for k, v in (raw or {}).items()}


from_item = from_attribute_values


def signed_request(
    aws: Aws,
    method: str,
    url: str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    service: str = "lambda",
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """Send one HTTP request signed with SigV4 by the caller's own credentials (e.g. to a Lambda function URL
    whose auth type is ``AWS_IAM``). Returns (status, body); raises ``RuntimeError`` without credentials."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.httpsession import URLLib3Session

    creds = aws.session.get_credentials()
    if creds is None:
        raise RuntimeError("no AWS credentials found (set a profile or AWS_* variables)")
    request = AWSRequest(method=method.upper(), url=url, data=body, headers=dict(headers or {}))
    SigV4Auth(creds.get_frozen_credentials(), service, aws.region).add_auth(request)
    response = URLLib3Session(timeout=timeout).send(request.prepare())
    return int(response.status_code), bytes(response.content or b"")
