"""A minimal Slack Web API served on 127.0.0.1 for tests and local runs: answers ``chat.postMessage`` /
``chat.update`` like Slack (``ok``, ``channel``, ``ts``) or from a script (status, body, headers, delay), and records
every call. Point ``ESM_MEDIC_SLACK_API_URL`` at :attr:`FakeSlack.url`."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeSlack:
    """A minimal Slack Web API: answers from a script, records every call (thread-safe enough for tests)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.script: list[tuple[int, dict[str, Any], dict[str, str], float]] = []
        self.count = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = {"raw": raw.decode(errors="replace")}
                record: dict[str, Any] = {
                    "method": self.path.rsplit("/", 1)[-1],
                    "body": body,
                    "auth": self.headers["Authorization"],
                }
                outer.calls.append(record)
                status, answer, headers, delay = outer.script.pop(0) if outer.script else (200, {}, {}, 0.0)
                time.sleep(delay)
                if status == 200 and not answer:
                    outer.count += 1
                    ts = body.get("ts") or f"{outer.count}.000100"  # chat.update answers with the message's ts
                    answer = {"ok": True, "channel": body.get("channel", "C1"), "ts": ts}
                record["status"], record["answer"] = status, answer
                data = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def methods(self) -> list[str]:
        return [c["method"] for c in self.calls]

    def messages(self) -> dict[str, dict[str, Any]]:
        """Each posted message as it stands now (``ts`` -> the last ``text`` / ``blocks`` posted or updated);
        thread replies are not messages of their own here."""
        out: dict[str, dict[str, Any]] = {}
        for call in list(self.calls):
            body, answer = call["body"], call.get("answer") or {}
            if call["method"] == "chat.postMessage" and not body.get("thread_ts") and answer.get("ok"):
                out[str(answer["ts"])] = dict(body)
            elif call["method"] == "chat.update" and body.get("ts") in out:
                out[body["ts"]] = {**out[body["ts"]], **body}
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
