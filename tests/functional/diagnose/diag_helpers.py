"""Helpers shared by the diagnosis tests (a plain module: the test directories are not packages)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator, Sequence
from typing import Any

READ_PREFIXES = ("Describe", "Get", "List", "Simulate")


def sandbox_resolver(host: str) -> Sequence[str]:
    """What DNS answers in the sandbox: the simulator's DNS table; anything else does not exist (NXDOMAIN)."""
    from esm_medic_sandbox import simulator

    ip = simulator.dns_table().get(host.lower().rstrip("."))
    if ip:
        return [ip]
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def mutating_calls(calls: dict[str, int]) -> list[str]:
    """Operations in an adapter call counter that are not reads."""
    return [op for op in calls if not op.split(":", 1)[1].startswith(READ_PREFIXES)]


class _Raw:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: object) -> Iterator[bytes]:
        yield self._data


def inject_error(aws: Any, service: str, operation: str, code: str, *, status: int = 400) -> list[int]:
    """Make every ``operation`` call of ``aws``'s ``service`` client fail with ``code`` as AWS would answer it:
    the response goes through botocore's real parsing and retry logic. Returns a list that grows by one per
    attempt (so a test can see the adapter's retries)."""
    from botocore.awsrequest import AWSResponse

    client = aws.client(service)
    model = client.meta.service_model
    op_name = client.meta.method_to_api_mapping[operation]
    headers: dict[str, str] = {}
    if model.protocol == "ec2":
        body = (
            f"<Response><Errors><Error><Code>{code}</Code><Message>injected</Message></Error></Errors>"
            "<RequestID>r-1</RequestID></Response>"
        )
    elif model.protocol == "query":
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>injected</Message></Error>"
            "<RequestId>r-1</RequestId></ErrorResponse>"
        )
    else:
        body = json.dumps({"__type": code, "message": "injected"})
        headers = {"x-amzn-ErrorType": code, "Content-Type": "application/x-amz-json-1.1"}
    attempts: list[int] = []

    def handler(request: Any, **_: Any) -> Any:
        attempts.append(1)
        return AWSResponse(request.url, status, headers, _Raw(body.encode()))

    client.meta.events.register_first(f"before-send.{model.service_id.hyphenize()}.{op_name}", handler)
    return attempts
