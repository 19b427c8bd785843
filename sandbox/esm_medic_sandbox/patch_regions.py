"""Unknown regions answered as AWS answers them.

moto gap and what we do: a request signed for a region moto does not know (``xx-fake-1``, a typo such as
``us-est-1``) reaches a backend lookup that raises ``KeyError``; the sandbox answered HTTP 500, which clients report
as an unsupported operation. AWS refuses such a request at the front door: the credential scope names a region the
endpoint does not serve. The sandbox now answers HTTP 400 ``InvalidSignatureException`` with AWS's text
("Credential should be scoped to a valid region, not '<region>'."), in the service's own protocol (JSON or XML).
"""

from __future__ import annotations

import json
import threading
from typing import Any

_APPLIED = False
_LOCK = threading.Lock()
CODE = "InvalidSignatureException"


def message(region: str) -> str:
    return f"Credential should be scoped to a valid region, not '{region}'."


def _signing_service(headers: Any) -> str:
    auth = str((headers or {}).get("Authorization") or (headers or {}).get("authorization") or "")
    scope = auth.partition("Credential=")[2].split(",", 1)[0].split("/")
    return scope[3] if len(scope) > 3 else ""


def error_response(response: Any, region: str) -> tuple[int, dict[str, str], str]:
    """The 400 an AWS front door gives, shaped for the caller's protocol (JSON, EC2 XML or query/REST XML)."""
    from xml.sax.saxutils import escape

    headers = getattr(response, "headers", None) or {}
    content_type = str(headers.get("Content-Type") or headers.get("content-type") or "")
    path = str(getattr(response, "path", "") or "/")
    service = _signing_service(headers)
    text = message(region)
    is_json = "json" in content_type or "X-Amz-Target" in headers or (path not in ("", "/") and service != "route53")
    if is_json:
        body = json.dumps({"__type": CODE, "message": text})
        return 400, {"Content-Type": "application/json", "x-amzn-ErrorType": CODE, "status": "400"}, body
    if service == "ec2":
        body = (
            f"<Response><Errors><Error><Code>{CODE}</Code><Message>{escape(text)}</Message></Error></Errors>"
            "<RequestID>esm-medic-sandbox</RequestID></Response>"
        )
    else:
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{CODE}</Code><Message>{escape(text)}</Message></Error>"
            "<RequestId>esm-medic-sandbox</RequestId></ErrorResponse>"
        )
    return 400, {"Content-Type": "text/xml", "status": "400"}, body


def apply() -> None:
    global _APPLIED
    with _LOCK:
        if _APPLIED:
            return
        from moto.core.responses import BaseResponse

        original = BaseResponse.call_action

        def call_action(self: Any) -> Any:
            try:
                return original(self)
            except KeyError as exc:
                region = str(getattr(self, "region", "") or "")
                if not region or exc.args[:1] != (region,):
                    raise
                return error_response(self, region)

        call_action.__wrapped__ = original  # type: ignore[attr-defined]
        BaseResponse.call_action = call_action  # type: ignore[method-assign]
        _APPLIED = True
