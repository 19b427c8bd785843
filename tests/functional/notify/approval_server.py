"""Serve the approval function URL handler over real HTTP on 127.0.0.1, the way Lambda would call it.

A tiny ``http.server`` adapter turns each request into a function URL event (payload 2.0) and the handler's answer
back into an HTTP response. With ``auth="AWS_IAM"`` it plays Lambda's part: a request whose SigV4 signature (checked
with botocore against a table of known test credentials) does not verify gets 403, and a verified one reaches the
handler with ``requestContext.authorizer.iam.userArn`` set to that credential's principal.
"""

from __future__ import annotations

import base64
import calendar
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from esm_medic.handlers import approval_http

_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
    r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$"
)


class LambdaContext:
    function_name = "approval_http"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:approval_http"
    aws_request_id = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 3000


def _verify_sigv4(
    method: str, host: str, target: str, headers: dict[str, str], body: bytes, keys: dict[str, tuple[str, str]]
) -> str:
    """The principal ARN of a correctly SigV4-signed request, else ''."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    m = _AUTH.match(headers.get("authorization", ""))
    if not m or m.group(1) not in keys or m.group(4) != "lambda":
        return ""
    akid, _, region, service, signed, signature = m.groups()
    secret, arn = keys[akid]
    names = signed.split(";")
    if "host" not in names or "x-amz-date" not in names:
        return ""
    amz_date = headers.get("x-amz-date", "")
    try:
        skew = abs(time.time() - calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ")))
    except ValueError:
        return ""
    if skew > 300:
        return ""
    request = AWSRequest(
        method=method,
        url=f"http://{host}{target}",
        data=body,
        headers={n: headers.get(n, "") for n in names if n != "host"},
    )
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(akid, secret), service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    return arn if expected == signature else ""


def make_event(method: str, target: str, headers: dict[str, str], body: bytes, iam_arn: str) -> dict[str, Any]:
    parts = urlsplit(target)
    query: dict[str, str] = {}
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        query[k] = f"{query[k]},{v}" if k in query else v  # function URLs join repeated parameters with commas
    ctx: dict[str, Any] = {
        "accountId": "123456789012",
        "apiId": "local",
        "domainName": headers.get("host", "127.0.0.1"),
        "domainPrefix": "local",
        "http": {
            "method": method,
            "path": parts.path,
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": f"local-{time.monotonic_ns()}",
        "routeKey": "$default",
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
        "timeEpoch": int(time.time() * 1000),
    }
    if iam_arn:
        ctx["authorizer"] = {"iam": {"userArn": iam_arn, "callerId": "AIDALOCAL", "accountId": "123456789012"}}
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "queryStringParameters": query or None,
        "headers": headers,
        "requestContext": ctx,
        "body": base64.b64encode(body).decode() if body else None,
        "isBase64Encoded": bool(body),
    }


class ApprovalServer:
    """``with serve() as server: server.url`` -> the handler on http://127.0.0.1:<port>."""

    def __init__(self, auth: str = "NONE", keys: dict[str, tuple[str, str]] | None = None) -> None:
        self.auth = auth
        self.keys = dict(keys or {})
        self.events: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                arn = ""
                if outer.auth == "AWS_IAM":
                    arn = _verify_sigv4(self.command, headers.get("host", ""), self.path, headers, body, outer.keys)
                    if not arn:
                        self._write(403, {"Content-Type": "application/json"}, b'{"Message":"Forbidden"}')
                        return
                event = make_event(self.command, self.path, headers, body, arn)
                outer.events.append(event)
                resp = approval_http.handler(event, LambdaContext())
                out = resp.get("body") or ""
                data = base64.b64decode(out) if resp.get("isBase64Encoded") else str(out).encode()
                self._write(int(resp["statusCode"]), dict(resp.get("headers") or {}), data)

            def _write(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_HEAD = do_DELETE = do_PUT = _serve

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def methods(self) -> list[str]:
        return [e["requestContext"]["http"]["method"] for e in self.events]


@contextmanager
def serve(auth: str = "NONE", keys: dict[str, tuple[str, str]] | None = None) -> Iterator[ApprovalServer]:
    server = ApprovalServer(auth, keys)
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        thread.join(timeout=5)
