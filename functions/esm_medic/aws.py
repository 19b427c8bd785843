"""The one door to AWS. Diagnosis, remediation, detection and handlers reach AWS only through here.

- one boto3 Session per ``Aws`` (profile / region resolution as the AWS CLI does it),
- an optional endpoint override (``endpoint_url=`` or the standard ``AWS_ENDPOINT_URL`` variable, which
  botocore honours by itself), used for the local sandbox,
- retries with backoff in botocore's ``standard`` mode (throttling and transient errors); ``max_attempts`` counts
  retries, so a request is tried at most ``1 + max_attempts`` times,
- per-operation call counting, so scans and benchmarks can report API calls,
- helpers that name error classes (access denied, throttled, not found, unsupported) without string
  matching scattered through the code.

boto3 is imported lazily: classification and the catalogue never pay for it.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from botocore.client import BaseClient

DEFAULT_MAX_ATTEMPTS = 8

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


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def error_message(exc: BaseException) -> str:
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


def is_unsupported(exc: BaseException) -> bool:
    """True when the endpoint does not implement the operation (moto gaps: NotImplementedError / HTTP 500)."""
    if isinstance(exc, NotImplementedError):
        return True
    code = error_code(exc)
    if code in ("NotImplemented", "InternalFailure", "500"):
        return True
    return type(exc).__name__ == "ResponseParserError"


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
    ) -> None:
        self._session = session
        self._region = region
        self._profile = profile
        self.endpoint_url = endpoint_url or None
        self.max_attempts = max_attempts
        self.calls: Counter[str] = Counter()
        self._clients: dict[str, BaseClient] = {}
        self._lock = threading.Lock()

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
                connect_timeout=5,
                read_timeout=30,
            )
            kwargs: dict[str, Any] = {"region_name": self.region, "config": cfg}
            if self.endpoint_url:
                kwargs["endpoint_url"] = self.endpoint_url
            client = self.session.client(service, **kwargs)
            client.meta.events.register("before-call.*.*", self._count)
            self._clients[service] = client
            return client

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


def to_attribute_values(item: Mapping[str, Any]) -> dict[str, Any]:
    """A plain mapping as DynamoDB AttributeValues (boto3's ``TypeSerializer``; numbers must be int or Decimal)."""
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    return {k: serializer.serialize(v) for k, v in item.items()}


def from_attribute_values(item: Mapping[str, Any]) -> dict[str, Any]:
    """DynamoDB AttributeValues as a plain dict (boto3's ``TypeDeserializer``; numbers come back as Decimal)."""
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    return {k: deserializer.deserialize(v) for k, v in item.items()}
