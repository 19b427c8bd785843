"""What every ticket provider shares: the ticket document, the error that carries the provider's answer, the
HTTP call with a small in-call retry budget, and provider credentials read from Secrets Manager.

A provider implements four operations (:class:`TicketProvider`): ``open``, ``comment``, ``resolve`` and
``find_open`` (by root-cause fingerprint). A failure raises :class:`ProviderError` with the HTTP status, the
provider's answer (redacted, cut) and ``Retry-After``; the outbox records it and retries later with backoff.
Waits longer than ``max_wait`` seconds are never slept in the call: they are left to the outbox.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Protocol

from esm_medic.notify.redact import redact_text

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

ANSWER_MAX = 500
SECRET_MAX_AGE = 300  # seconds Powertools Parameters keeps a provider credential in memory


@dataclass
class TicketDoc:
    """One ticket as every provider sees it. ``body`` is Markdown (runbook, diagnosis, plan); no secret values."""

    fingerprint: str  # ESM + root cause: the dedup key (Jira/GitHub label, ServiceNow correlation_id, PD dedup_key)
    ticket_id: str
    uuid: str
    title: str
    body: str
    severity: str = "error"
    function: str = ""
    entry: str = ""
    project: str = ""  # routing override: Jira project, ServiceNow assignment group, GitHub repo (owner/name)
    labels: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"esm-medic-{self.fingerprint}"


@dataclass
class Opened:
    ref: str  # the provider's id: Jira key, ServiceNow sys_id, GitHub issue number, PagerDuty dedup_key, path
    url: str = ""


class ProviderError(RuntimeError):
    """A provider call failed. ``answer`` is what the provider said (redacted); safe to log and store."""

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        status: int | None = None,
        answer: str = "",
        retry_after: float | None = None,
        retryable: bool = True,
    ) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.status = status
        self.answer = answer
        self.retry_after = retry_after
        self.retryable = retryable

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"provider": self.provider, "error": str(self), "retryable": self.retryable}
        if self.status is not None:
            out["status"] = self.status
        if self.answer:
            out["answer"] = self.answer
        if self.retry_after is not None:
            out["retry_after"] = self.retry_after
        return out


class TicketProvider(Protocol):
    name: str

    def open(self, doc: TicketDoc) -> Opened: ...

    def comment(self, ref: str, doc: TicketDoc, text: str) -> None: ...

    def resolve(self, ref: str, doc: TicketDoc, text: str) -> None: ...

    def find_open(self, doc: TicketDoc) -> Opened | None: ...


# ------------------------------------------------------------------------------------------------ credentials
_SECRET_PROVIDERS: dict[int, tuple[Any, Any]] = {}
_SECRET_LOCK = threading.Lock()


def secrets_provider(aws: Aws) -> Any:
    """A Powertools ``SecretsProvider`` on the adapter's client (its cache lives as long as the container)."""
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    client = aws.client("secretsmanager")
    with _SECRET_LOCK:
        hit = _SECRET_PROVIDERS.get(id(client))
        if hit is None or hit[0] is not client:  # an id can be reused by a later client
            hit = _SECRET_PROVIDERS[id(client)] = (client, SecretsProvider(boto3_client=client))
        return hit[1]


_SSM_PROVIDERS: dict[int, tuple[Any, Any]] = {}


def ssm_provider(aws: Aws) -> Any:
    """A Powertools ``SSMProvider`` on the adapter's client (cached like :func:`secrets_provider`)."""
    from aws_lambda_powertools.utilities.parameters import SSMProvider

    client = aws.client("ssm")
    with _SECRET_LOCK:
        hit = _SSM_PROVIDERS.get(id(client))
        if hit is None or hit[0] is not client:
            hit = _SSM_PROVIDERS[id(client)] = (client, SSMProvider(boto3_client=client))
        return hit[1]


def clear_credentials_cache() -> None:
    with _SECRET_LOCK:
        for _, prov in (*_SECRET_PROVIDERS.values(), *_SSM_PROVIDERS.values()):
            prov.clear_cache()


def read_credentials(aws: Aws | None, provider: str, secret_id: str, keys: tuple[str, ...]) -> dict[str, str]:
    """The JSON secret ``secret_id`` (cached by Powertools Parameters); raises ProviderError naming missing keys.

    Neither the value nor any part of it is ever put into an error or a log line.
    """
    if not secret_id:
        raise ProviderError(provider, "no credentials secret configured", retryable=False)
    if aws is None:
        raise ProviderError(provider, f"cannot read secret {secret_id}: no AWS adapter", retryable=False)
    from esm_medic.aws import error_code

    try:
        value = secrets_provider(aws).get(secret_id, transform="json", max_age=SECRET_MAX_AGE)
    except Exception as exc:
        cause = exc.__cause__ or exc.__context__ or exc  # Powertools wraps the SDK error
        code = error_code(cause) or type(cause).__name__
        raise ProviderError(provider, f"cannot read secret {secret_id}: {code}", retryable=True) from None
    if not isinstance(value, Mapping):
        raise ProviderError(provider, f"secret {secret_id} is not a JSON object", retryable=False)
    missing = [k for k in keys if not value.get(k)]
    if missing:
        raise ProviderError(provider, f"secret {secret_id} lacks {', '.join(missing)}", retryable=False)
    return {k: str(value[k]) for k in keys}


# ------------------------------------------------------------------------------------------------ HTTP
_SESSION: Any = None
_SESSION_LOCK = threading.Lock()


def session() -> Any:
    global _SESSION
    with _SESSION_LOCK:
        if _SESSION is None:
            import requests

            _SESSION = requests.Session()
            _SESSION.headers["User-Agent"] = "esm-medic"
        return _SESSION


def retry_after_seconds(headers: Any) -> float | None:
    """``Retry-After`` as seconds (a number or an HTTP date); None when absent or unreadable."""
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        pass
    try:
        return max(0.0, parsedate_to_datetime(str(value)).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


@dataclass
class Http:
    """One provider's HTTP settings: timeouts and the in-call retry budget (the outbox does the long retries)."""

    provider: str
    timeout: float = 10.0
    attempts: int = 2
    max_wait: float = 2.0
    sleep: Callable[[float], None] = time.sleep

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        import requests

        err: ProviderError | None = None
        for attempt in range(max(1, self.attempts)):
            try:
                resp = session().request(method, url, timeout=(3.05, self.timeout), **kwargs)
            except requests.Timeout:  # not retried in the call: a second wait is the outbox's job
                raise ProviderError(self.provider, f"timed out after {self.timeout:g}s", retryable=True) from None
            except requests.RequestException as exc:
                err = ProviderError(self.provider, f"request failed: {type(exc).__name__}", retryable=True)
            else:
                status = int(resp.status_code)
                if 200 <= status < 300:
                    return resp
                answer = redact_text(" ".join(str(resp.text or "").split()))[:ANSWER_MAX]
                retryable = status in (408, 409, 425, 429) or status >= 500
                err = ProviderError(
                    self.provider,
                    f"HTTP {status} on {method} {_path(url)}",
                    status=status,
                    answer=answer,
                    retry_after=retry_after_seconds(resp.headers),
                    retryable=retryable,
                )
                if not retryable:
                    raise err
            if attempt + 1 < self.attempts:
                wait = err.retry_after if err.retry_after is not None else min(0.5 * 2**attempt, self.max_wait)
                if wait > self.max_wait:
                    raise err  # a long Retry-After is the outbox's job, not a sleeping Lambda's
                self.sleep(wait)
        assert err is not None
        raise err


def _path(url: str) -> str:
    """The URL without scheme, host and query (names the endpoint; never a token in a query string)."""
    rest = url.split("://", 1)[-1]
    return "/" + rest.partition("/")[2].partition("?")[0]


def project_for(value: str, provider: str) -> str:
    """The routed project for one provider: ``jira=OPS;github=acme/ops`` picks per provider; a plain value
    applies to every provider (a GitHub repo must contain a ``/``)."""
    value = (value or "").strip()
    if "=" not in value:
        return value if provider != "github" or "/" in value else ""
    for part in value.replace(",", ";").split(";"):
        name, _, proj = part.partition("=")
        if name.strip().lower() == provider:
            return proj.strip()
    return ""
