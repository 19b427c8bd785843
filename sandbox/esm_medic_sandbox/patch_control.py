"""A control route under moto's ``/moto-api/`` so other processes can drive ESM status in a running sandbox.

Not a moto gap but our own addition. It is registered in ``moto.moto_api._internal.urls.url_paths``, so it
answers both on a ``ThreadedMotoServer`` (``http://127.0.0.1:<port>/moto-api/esm-medic/...``) and, in decorator
mode, at ``http://motoapi.amazonaws.com/moto-api/esm-medic/...``.

``/moto-api/esm-medic/esm-status``
    ``GET ?uuid=U``: ``{"UUID", "override", "item"}`` (the explicit overrides and the ESM as the API renders it).
    ``POST {"uuid": U, "state"?, "reason"?, "last_processing_result"?, "clear"?: bool}``: ``clear`` first drops
    every override, then the given fields are set (see ``patch_lambda.set_esm_status``); answers like GET.
    ``DELETE ?uuid=U``: drops every override of U.
    Unknown UUID: 404 ``{"error": ...}``; bad input (invalid JSON, unknown State): 400.
``/moto-api/esm-medic/health``
    ``GET``: ``{"status": "ok", "patches": [...], "inproc": bool, "delay_seconds": float}``; the CLI uses it to
    check a server is ours.
``/moto-api/esm-medic/delay``
    ``GET``: ``{"delay_seconds": float}``, how long the sandbox's transitional states last (:mod:`.timing`).
    ``POST {"seconds": float | null}``: set it in the server process (null: back to the environment / default).
"""

from __future__ import annotations

import json
import threading
from typing import Any
from urllib.parse import parse_qs, urlparse

from esm_medic_sandbox import patch_lambda

STATUS_PATH = "/moto-api/esm-medic/esm-status"
HEALTH_PATH = "/moto-api/esm-medic/health"
DELAY_PATH = "/moto-api/esm-medic/delay"

_APPLIED = False
_LOCK = threading.Lock()
_JSON = {"Content-Type": "application/json"}


def _reply(status: int, body: dict[str, Any]) -> tuple[int, dict[str, str], str]:
    return status, dict(_JSON), json.dumps(body, default=str)


def _request_body(request: Any) -> str:
    for attr in ("data", "body"):
        value = getattr(request, attr, None)
        if value:
            return value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else str(value)
    get_data = getattr(request, "get_data", None)
    if callable(get_data):
        data = get_data()
        return data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else str(data or "")
    return ""


def _view(uuid: str) -> tuple[int, dict[str, str], str]:
    esm = patch_lambda.find_esm(uuid)
    if esm is None:
        return _reply(404, {"error": f"no event source mapping with UUID {uuid}"})
    return _reply(
        200, {"UUID": uuid, "override": patch_lambda.get_esm_status_override(uuid), "item": esm.get_configuration()}
    )


def esm_status(request: Any, full_url: str, headers: Any) -> tuple[int, dict[str, str], str]:
    method = str(getattr(request, "method", "GET")).upper()
    query = {k: v[0] for k, v in parse_qs(urlparse(full_url).query).items()}
    if method == "GET":
        uuid = query.get("uuid", "")
        return _view(uuid) if uuid else _reply(400, {"error": "uuid query parameter is required"})
    if method == "DELETE":
        uuid = query.get("uuid", "")
        if not uuid:
            return _reply(400, {"error": "uuid query parameter is required"})
        if patch_lambda.find_esm(uuid) is None:
            return _reply(404, {"error": f"no event source mapping with UUID {uuid}"})
        patch_lambda.clear_esm_status(uuid)
        return _view(uuid)
    if method != "POST":
        return _reply(405, {"error": f"method {method} not allowed"})
    try:
        body = json.loads(_request_body(request) or "{}")
    except json.JSONDecodeError as exc:
        return _reply(400, {"error": f"body is not valid JSON: {exc}"})
    if not isinstance(body, dict) or not body.get("uuid"):
        return _reply(400, {"error": "body must be a JSON object with a uuid"})
    uuid = str(body["uuid"])
    if patch_lambda.find_esm(uuid) is None:
        return _reply(404, {"error": f"no event source mapping with UUID {uuid}"})
    fields = {k: body.get(k) for k in ("state", "reason", "last_processing_result")}
    for k, v in fields.items():
        if v is not None and not isinstance(v, str):
            return _reply(400, {"error": f"{k} must be a string"})
    if body.get("clear"):
        patch_lambda.clear_esm_status(uuid)
    try:
        patch_lambda.set_esm_status(
            uuid,
            state=fields["state"],
            reason=fields["reason"],
            last_processing_result=fields["last_processing_result"],
        )
    except ValueError as exc:
        return _reply(400, {"error": str(exc)})
    return _view(uuid)


def health(request: Any, full_url: str, headers: Any) -> tuple[int, dict[str, str], str]:
    from esm_medic_sandbox import inproc, patches, timing

    body = {
        "status": "ok",
        "patches": patches.applied(),
        "inproc": inproc.is_applied(),
        "delay_seconds": timing.delay(),
    }
    return _reply(200, body)


def delay(request: Any, full_url: str, headers: Any) -> tuple[int, dict[str, str], str]:
    from esm_medic_sandbox import timing

    if str(getattr(request, "method", "GET")).upper() == "POST":
        try:
            data = json.loads(_request_body(request) or "{}")
            seconds = data.get("seconds") if isinstance(data, dict) else "?"
            if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))):
                raise ValueError(seconds)
        except ValueError:
            return _reply(400, {"error": 'expected JSON {"seconds": <number> | null}'})
        timing.set_delay(None if seconds is None else float(seconds))
    return _reply(200, {"delay_seconds": timing.delay()})


def apply() -> None:
    global _APPLIED
    with _LOCK:
        if _APPLIED:
            return
        from moto.moto_api._internal import urls

        urls.url_paths["{0}" + STATUS_PATH] = esm_status
        urls.url_paths["{0}" + HEALTH_PATH] = health
        urls.url_paths["{0}" + DELAY_PATH] = delay
        _APPLIED = True
