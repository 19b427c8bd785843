"""Where notifications go: a Slack incoming webhook, an SNS topic, local Markdown files, stdout.

Configuration (:class:`NotifySettings`, read from the environment by :meth:`NotifySettings.from_env`):

- ``ESM_MEDIC_SLACK_WEBHOOK_URL``: the webhook URL itself (``https://hooks.slack.com/...``), or a reference to
  where it is stored: an SSM SecureString parameter name (``/esm-medic/slack-webhook`` or ``ssm:<name>``) or a
  Secrets Manager secret (``secretsmanager:<name-or-arn>[#json-key]`` or a secret ARN). See :func:`resolve_secret`.
- ``ESM_MEDIC_SNS_TOPIC_ARN``: publish to this topic (through the :class:`~esm_medic.aws.Aws` adapter).
- ``ESM_MEDIC_TICKET_DIR``: the local file sink's folder (default ``.esm-medic/tickets``; ``/tmp/esm-medic/tickets``
  inside Lambda, whose code folder is read-only). Notifications go to its ``notifications/`` sub-folder.
- ``ESM_MEDIC_NOTIFY_SINKS``: optional explicit list (``slack,sns,file,stdout``). Default: every configured one of
  slack and sns, plus stdout when ``ESM_MEDIC_NOTIFY_STDOUT`` is true or nothing else is configured.

Every sink raises :class:`SinkError` on failure; :func:`esm_medic.notify.notify` turns those into result entries.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlparse

from esm_medic.config import coerce_settings
from esm_medic.notify.message import Message, render_slack, render_subject, render_text

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

DEFAULT_TICKET_DIR = ".esm-medic/tickets"
LAMBDA_TICKET_DIR = "/tmp/esm-medic/tickets"
SINK_NAMES = ("slack", "sns", "file", "stdout")
SNS_MESSAGE_MAX = 250_000  # SNS allows 256 KiB; leave room for the envelope
SECRET_CACHE_SECONDS = 300.0


class SinkError(RuntimeError):
    """A sink could not deliver. The message is safe to show (no secrets, no URLs with tokens)."""


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class NotifySettings:
    slack_webhook: str = ""  # URL, or a reference to an SSM parameter / secret that holds it
    sns_topic_arn: str = ""
    ticket_dir: str = ""  # "" -> default_ticket_dir()
    sinks: tuple[str, ...] | None = None  # explicit sink list; None -> automatic
    stdout: bool = False
    slack_timeout: float = 4.0  # read timeout per attempt (seconds)
    slack_retries: int = 2  # extra attempts after the first (429, 5xx, connection errors)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NotifySettings:
        e = os.environ if env is None else env
        raw_sinks = (e.get("ESM_MEDIC_NOTIFY_SINKS") or "").strip()
        sinks = tuple(s.strip().lower() for s in raw_sinks.split(",") if s.strip()) if raw_sinks else None
        return cls(
            slack_webhook=(e.get("ESM_MEDIC_SLACK_WEBHOOK_URL") or "").strip(),
            sns_topic_arn=(e.get("ESM_MEDIC_SNS_TOPIC_ARN") or "").strip(),
            ticket_dir=(e.get("ESM_MEDIC_TICKET_DIR") or "").strip(),
            sinks=sinks,
            stdout=_truthy(e.get("ESM_MEDIC_NOTIFY_STDOUT")),
            slack_timeout=float(e.get("ESM_MEDIC_SLACK_TIMEOUT") or 4.0),
            slack_retries=int(e.get("ESM_MEDIC_SLACK_RETRIES") or 2),
        )

    @classmethod
    def coerce(cls, obj: Any) -> NotifySettings:
        """Accept None (environment), a NotifySettings, a mapping or any object with matching attributes."""
        return coerce_settings(cls, obj, _normalise_sinks)

    def resolved_ticket_dir(self) -> Path:
        return Path(self.ticket_dir) if self.ticket_dir else default_ticket_dir()

    def sink_names(self) -> tuple[str, ...]:
        if self.sinks is not None:
            unknown = [s for s in self.sinks if s not in SINK_NAMES]
            if unknown:
                raise ValueError(f"unknown notification sink(s) {unknown}; known: {', '.join(SINK_NAMES)}")
            return tuple(dict.fromkeys(self.sinks))
        out = []
        if self.slack_webhook:
            out.append("slack")
        if self.sns_topic_arn:
            out.append("sns")
        if self.stdout or not out:
            out.append("stdout")
        return tuple(out)


def _normalise_sinks(values: dict[str, Any]) -> None:
    if "sinks" in values and values["sinks"] is not None:
        values["sinks"] = tuple(values["sinks"])


def default_ticket_dir() -> Path:
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return Path(LAMBDA_TICKET_DIR)
    return Path(DEFAULT_TICKET_DIR)


# ------------------------------------------------------------------------------------------------ secrets
def resolve_secret(aws: Aws | None, ref: str, *, max_age: float = SECRET_CACHE_SECONDS) -> str:
    """The value a reference points at, through Powertools Parameters (cached ``max_age`` seconds per container).

    - ``secretsmanager:<id>[#key]`` or ``arn:aws:secretsmanager:...[#key]``: Secrets Manager ``SecretString``
      (``#key`` picks one field of a JSON secret);
    - ``ssm:<name>``, ``arn:aws:ssm:...``, or any other name (``/esm-medic/slack-signing-secret``): an SSM
      parameter read with decryption (SecureString).

    Raises :class:`SinkError` with the error code (never the value) when it cannot be read.
    """
    from esm_medic.notify.providers.base import secrets_provider, ssm_provider

    ref = (ref or "").strip()
    if not ref:
        raise SinkError("empty secret reference")
    if aws is None:
        raise SinkError(f"cannot read {_describe_ref(ref)}: no AWS adapter")
    from esm_medic.aws import error_code

    age = max(0, int(max_age))
    try:
        if ref.startswith("secretsmanager:") or (ref.startswith("arn:") and ref.split(":")[2:3] == ["secretsmanager"]):
            secret_id, _, key = ref.removeprefix("secretsmanager:").partition("#")
            value = str(secrets_provider(aws).get(secret_id, max_age=age) or "")
            if key:
                try:
                    doc = json.loads(value)
                except json.JSONDecodeError as exc:
                    raise SinkError(f"{_describe_ref(ref)} is not JSON, cannot pick field {key!r}") from exc
                value = str(doc.get(key, "")) if isinstance(doc, dict) else ""
        else:
            value = str(ssm_provider(aws).get(ref.removeprefix("ssm:"), decrypt=True, max_age=age) or "")
    except SinkError:
        raise
    except Exception as exc:
        cause = exc.__cause__ or exc.__context__ or exc  # Powertools wraps the SDK error
        code = error_code(cause) or type(cause).__name__
        raise SinkError(f"cannot read {_describe_ref(ref)}: {code}") from None
    if not value:
        raise SinkError(f"{_describe_ref(ref)} is empty")
    return value


def clear_secret_cache() -> None:
    from esm_medic.notify.providers.base import clear_credentials_cache

    clear_credentials_cache()


def _describe_ref(ref: str) -> str:
    if "secretsmanager" in ref:
        return f"secret {ref.removeprefix('secretsmanager:').partition('#')[0]}"
    return f"SSM parameter {ref.removeprefix('ssm:')}"


# ------------------------------------------------------------------------------------------------ HTTP
_session_lock = threading.Lock()
_SESSION: Any = None


def http_session() -> Any:
    """The shared ``requests.Session`` (tests monkeypatch this function)."""
    global _SESSION
    with _session_lock:
        if _SESSION is None:
            import requests

            _SESSION = requests.Session()
        return _SESSION


def _safe_webhook_url(url: str) -> bool:
    parsed = urlparse(url)
    if parsed.scheme == "https" and parsed.hostname:
        return True
    return parsed.scheme == "http" and parsed.hostname in ("127.0.0.1", "localhost")


def post_json(
    url: str,
    payload: Mapping[str, Any],
    *,
    timeout: float,
    retries: int,
    what: str = "Slack",
    sleep: Any = None,
) -> Any:
    """POST JSON with a bounded retry on connection errors, timeouts, 429 and 5xx. Raises SinkError.

    The URL is never part of an error message (a webhook URL is a credential).
    """
    import requests

    if not _safe_webhook_url(url):
        raise SinkError(f"{what} URL is not an https URL")
    pause = sleep or time.sleep
    attempts = max(0, int(retries)) + 1
    last = ""
    for attempt in range(attempts):
        try:
            resp = http_session().post(url, json=dict(payload), timeout=(3.05, timeout))
        except requests.RequestException as exc:
            last = f"{what} request failed: {type(exc).__name__}"
        else:
            status = int(getattr(resp, "status_code", 0) or 0)
            if 200 <= status < 300:
                return resp
            body = str(getattr(resp, "text", "") or "")[:200]
            last = f"{what} answered HTTP {status}: {body}".strip()
            if status != 429 and status < 500:
                raise SinkError(last)  # 4xx: a retry will not help (bad URL, revoked webhook, bad payload)
            if attempt + 1 < attempts:
                retry_after = _retry_after(resp)
                if retry_after is not None:
                    pause(min(retry_after, 2.0))
                    continue
        if attempt + 1 < attempts:
            pause(min(0.25 * (2**attempt), 2.0))
    raise SinkError(last or f"{what} request failed")


def _retry_after(resp: Any) -> float | None:
    headers = getattr(resp, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


# ------------------------------------------------------------------------------------------------ sinks
class Sink(Protocol):
    name: str

    def send(self, msg: Message) -> str:
        """Deliver ``msg``; return a short receipt (message id, file path, ...). Raise SinkError on failure."""
        ...


class SlackSink:
    name = "slack"

    def __init__(self, aws: Aws | None, webhook: str, *, timeout: float = 4.0, retries: int = 2) -> None:
        self.aws = aws
        self.webhook = webhook
        self.timeout = timeout
        self.retries = retries

    def url(self) -> str:
        if self.webhook.startswith(("https://", "http://")):
            return self.webhook
        return resolve_secret(self.aws, self.webhook)

    def send(self, msg: Message) -> str:
        post_json(self.url(), render_slack(msg), timeout=self.timeout, retries=self.retries)
        return "ok"


class SnsSink:
    name = "sns"

    def __init__(self, aws: Aws | None, topic_arn: str) -> None:
        self.aws = aws
        self.topic_arn = topic_arn

    def send(self, msg: Message) -> str:
        if self.aws is None:
            raise SinkError("SNS: no AWS adapter")
        from esm_medic.aws import error_code, is_access_denied

        text = render_text(msg)
        if len(text) > SNS_MESSAGE_MAX:
            text = text[: SNS_MESSAGE_MAX - 20] + "\n… (truncated)\n"
        attrs = {"kind": {"DataType": "String", "StringValue": msg.kind}}
        if msg.uuid:
            attrs["esm_uuid"] = {"DataType": "String", "StringValue": msg.uuid}
        try:
            resp = self.aws.call(
                "sns",
                "publish",
                TopicArn=self.topic_arn,
                Subject=render_subject(msg),
                Message=text,
                MessageAttributes=attrs,
            )
        except Exception as exc:
            code = error_code(exc) or type(exc).__name__
            hint = " (the function's role needs sns:Publish on the topic)" if is_access_denied(exc) else ""
            raise SinkError(f"SNS publish failed: {code}{hint}") from exc
        return str(resp.get("MessageId", ""))


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(text: str, limit: int = 80) -> str:
    return (_UNSAFE.sub("-", text).strip("-") or "x")[:limit]


class FileSink:
    """Markdown files in a folder: notifications in ``notifications/``, tickets as ``<ticket-id>.md``."""

    name = "file"

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    def send(self, msg: Message) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{stamp}-{safe_filename(msg.kind)}-{safe_filename(msg.uuid or 'esm')[:36]}.md"
        path = self.directory / "notifications" / name
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render_text(msg), encoding="utf-8")
        except OSError as exc:
            raise SinkError(f"cannot write {path}: {exc.strerror or exc}") from exc
        return str(path)

    def ticket_path(self, ticket_id: str) -> Path:
        return self.directory / f"{safe_filename(ticket_id)}.md"

    def write_ticket(self, ticket_id: str, text: str) -> tuple[str, bool]:
        """Write ``<ticket_id>.md`` unless it exists; returns (path, created)."""
        path = self.ticket_path(ticket_id)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("x", encoding="utf-8") as fh:
                fh.write(text)
        except FileExistsError:
            return str(path), False
        except OSError as exc:
            raise SinkError(f"cannot write {path}: {exc.strerror or exc}") from exc
        return str(path), True


class StdoutSink:
    name = "stdout"

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream

    def send(self, msg: Message) -> str:
        stream = self.stream or sys.stdout
        stream.write(render_text(msg) + "\n")
        stream.flush()
        return "stdout"


def build_sinks(aws: Aws | None, settings: NotifySettings) -> tuple[list[Sink], list[dict[str, str]]]:
    """The configured sinks, plus errors for the ones that cannot even be built (e.g. missing configuration)."""
    sinks: list[Sink] = []
    errors: list[dict[str, str]] = []
    for name in settings.sink_names():
        if name == "slack":
            if not settings.slack_webhook:
                errors.append({"sink": "slack", "error": "ESM_MEDIC_SLACK_WEBHOOK_URL is not set"})
                continue
            sinks.append(
                SlackSink(aws, settings.slack_webhook, timeout=settings.slack_timeout, retries=settings.slack_retries)
            )
        elif name == "sns":
            if not settings.sns_topic_arn:
                errors.append({"sink": "sns", "error": "ESM_MEDIC_SNS_TOPIC_ARN is not set"})
                continue
            sinks.append(SnsSink(aws, settings.sns_topic_arn))
        elif name == "file":
            sinks.append(FileSink(settings.resolved_ticket_dir()))
        elif name == "stdout":
            sinks.append(StdoutSink())
    return sinks, errors
