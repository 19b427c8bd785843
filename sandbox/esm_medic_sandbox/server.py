"""A patched moto server in this process, for other processes (the CLI, the CDK CLI, a demo) to talk to.

``serve()`` applies every sandbox patch and the in-process Lambda dispatcher, switches moto's config to
``stepfunctions.execute_state_machine=True`` / ``lambda.use_docker=False`` process-wide, starts a
``ThreadedMotoServer`` on ``host:port`` (port 0 = a free port) and sets, process-wide:

- ``MOTO_PORT`` = the port: moto's Step Functions interpreter calls ``http://localhost:$MOTO_PORT`` for its
  Task states when it is not under ``mock_aws``;
- ``AWS_ENDPOINT_URL`` = ``http://<host>:<port>``: so the in-process Lambda handlers' own boto3 calls reach the
  same server.

Other processes set ``AWS_ENDPOINT_URL=http://<host>:<port>`` (and any fake credentials). ESM status is driven
through the control route ``/moto-api/esm-medic/esm-status`` (see :mod:`.patch_control`), or
``esm-medic sandbox set-status``; :func:`set_status_remote` is the client side.

``stop(server)`` shuts the server down, restores the variables ``serve`` changed and resets moto's backends.
"""

from __future__ import annotations

import json
import os
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from esm_medic_sandbox.patch_control import HEALTH_PATH, STATUS_PATH

_LOCK = threading.Lock()
_SAVED: dict[int, dict[str, str | None]] = {}


def _enable_config() -> None:
    from moto.core.config import default_user_config

    default_user_config["stepfunctions"] = {
        **default_user_config.get("stepfunctions", {}),
        "execute_state_machine": True,
    }
    default_user_config["lambda"] = {**default_user_config.get("lambda", {}), "use_docker": False}


def serve(port: int = 0, host: str = "127.0.0.1", *, verbose: bool = False) -> tuple[Any, int]:
    """Start a patched ThreadedMotoServer; returns (server, actual port). Bind to 127.0.0.1 unless told."""
    from moto.server import ThreadedMotoServer

    from esm_medic_sandbox import inproc, patches

    patches.apply()
    inproc.apply()
    _enable_config()
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=verbose)
    server.start()
    actual_port = int(server.get_host_and_port()[1])
    url_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    with _LOCK:
        _SAVED[id(server)] = {k: os.environ.get(k) for k in ("MOTO_PORT", "AWS_ENDPOINT_URL")}
        os.environ["MOTO_PORT"] = str(actual_port)
        os.environ["AWS_ENDPOINT_URL"] = f"http://{url_host}:{actual_port}"
    return server, actual_port


_SCOPE = re.compile(r"Credential=[^/,]+/\d{8}/([a-z0-9-]+)/dynamodb/")


def provision_per_region(server: Any, provision: Callable[[str], None]) -> None:
    """Call ``provision(region)`` once per region, before the first DynamoDB request signed for that region is
    served (what a deployment in every region would have created). Wraps the server's WSGI app; the provisioning
    requests themselves pass straight through (the region is marked first)."""
    inner = server._server.app
    seen: set[str] = set()
    lock = threading.Lock()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        match = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        if match:
            region = match.group(1)
            with lock:
                first = region not in seen
                seen.add(region)
            if first:
                provision(region)
        return inner(environ, start_response)

    server._server.app = app


def stop(server: Any, *, reset: bool = True) -> None:
    """Stop a server from :func:`serve`, restore MOTO_PORT / AWS_ENDPOINT_URL and (``reset``) forget every moto
    resource, ESM status override and the status provider, so the next ``serve`` starts empty."""
    try:
        server.stop()
        if reset:
            from moto.moto_api._internal.models import moto_api_backend

            from esm_medic_sandbox import patches

            moto_api_backend.reset()
            patches.reset_status()
    finally:
        with _LOCK:
            saved = _SAVED.pop(id(server), {})
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


# ---------------------------------------------------------------------------------------------- client side
class ControlError(RuntimeError):
    """The sandbox server refused a control request (``status`` = HTTP status, 0 if unreachable)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def _request(url: str, method: str, body: dict[str, Any] | None = None, timeout: float = 10.0) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return dict(json.loads(resp.read().decode() or "{}"))
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace")
        try:
            message = json.loads(text).get("error") or text
        except (json.JSONDecodeError, AttributeError):
            message = text or str(exc)
        if exc.code == 404 and not text.lstrip().startswith("{"):
            message = f"{url} is not an esm-medic sandbox server (no control route)"
        raise ControlError(str(message), exc.code) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ControlError(f"cannot reach the sandbox at {url}: {getattr(exc, 'reason', exc)}") from exc


def set_status_remote(
    endpoint_url: str,
    uuid: str,
    *,
    state: str | None = None,
    reason: str | None = None,
    last_processing_result: str | None = None,
    clear: bool = False,
) -> dict[str, Any]:
    """POST to a running sandbox's control route; returns ``{"UUID", "override", "item"}``."""
    body: dict[str, Any] = {"uuid": uuid, "clear": clear}
    for key, value in (("state", state), ("reason", reason), ("last_processing_result", last_processing_result)):
        if value is not None:
            body[key] = value
    return _request(endpoint_url.rstrip("/") + STATUS_PATH, "POST", body)


def get_status_remote(endpoint_url: str, uuid: str) -> dict[str, Any]:
    from urllib.parse import quote

    return _request(f"{endpoint_url.rstrip('/')}{STATUS_PATH}?uuid={quote(uuid)}", "GET")


def health_remote(endpoint_url: str, timeout: float = 2.0) -> dict[str, Any]:
    return _request(endpoint_url.rstrip("/") + HEALTH_PATH, "GET", timeout=timeout)
