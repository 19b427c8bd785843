"""The demo's output: plain text with ANSI colours only on a terminal (:class:`Out`), and the live step lines read
from an execution's history (:class:`StepPrinter`)."""

from __future__ import annotations

import json
from typing import IO, Any

from esm_medic.workflow.payloads import DiagnosisResult, NotificationResult, TicketResult


# ---------------------------------------------------------------------------------------------- output
class Out:
    """Plain text, with ANSI colours only on a terminal; silent in quiet / JSON mode except where asked."""

    def __init__(self, stream: IO[str], *, color: bool, verbose: bool, silent: bool = False) -> None:
        self.stream = stream
        self.color = color
        self.verbose = verbose
        self.silent = silent
        enc = (getattr(stream, "encoding", None) or "ascii").lower()
        self.unicode = "utf" in enc
        self.ok_mark = "✓" if self.unicode else "ok"
        self.bad_mark = "✗" if self.unicode else "XX"
        self.dots = "…" if self.unicode else "..."

    def c(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def line(self, text: str = "", *, always: bool = False) -> None:
        """Print in normal mode; ``always`` also in quiet mode; never in JSON mode (``silent``)."""
        if self.silent:
            return
        if self.verbose or always:
            self.stream.write(text + "\n")
            self.stream.flush()

    def step(self, label: str, text: str, ms: float | None, *, ok: bool = True) -> None:
        mark = self.c(self.ok_mark, "32") if ok else self.c(self.bad_mark, "31")
        timing = self.c(f"{ms:7.0f} ms", "2") if ms is not None else " " * 10
        self.line(f"  {mark} {label:<10} {timing}  {text}")

    def detail(self, text: str) -> None:
        self.line(self.c(f"               {text}", "2"))


def clip(text: Any, n: int = 96) -> str:
    s = " ".join(str(text or "").split())
    return s if len(s) <= n else s[: n - 3] + "..."


# ---------------------------------------------------------------------------------------------- live steps
class StepPrinter:
    """Follows an execution's history and prints each finished state of interest once, with its duration."""

    def __init__(self, out: Out, workflow: Any, arn: str) -> None:
        self.out = out
        self.workflow = workflow
        self.arn = arn
        self.seen = 0
        self.entered: dict[str, float] = {}
        self.steps: list[dict[str, Any]] = []
        self.approval_printed = False

    def _restart_states(self, action_id: str, uuid: str) -> str:
        """The ESM states the restart waited through (Disabling -> Disabled ...), from its audit row."""
        if not action_id or not uuid:
            return ""
        try:
            rows = self.workflow.audit(uuid)
        except Exception:  # the audit is a detail of the demo output, never a reason to fail it
            return ""
        for row in rows:
            details = row.get("details") or {}
            if row.get("action_id") == action_id and row.get("status") == "restarted" and isinstance(details, dict):
                seen = [str(details.get("initial_state") or "")]
                seen += [str(x) for x in details.get("states") or []]
                seen.append(str(details.get("final_state") or ""))
                return " -> ".join(dict.fromkeys(x for x in seen if x))
        return ""

    def poll(self) -> None:
        events = self.workflow.history(self.arn)
        for ev in events[self.seen :]:
            self._event(ev)
        self.seen = len(events)

    def _event(self, ev: dict[str, Any]) -> None:
        etype = str(ev.get("type") or "")
        ts = ev["timestamp"].timestamp()
        if etype.endswith("StateEntered"):
            name = ev["stateEnteredEventDetails"]["name"]
            self.entered[name] = ts
            if name == "RequestApproval":
                self.out.step("approval", f"requested {self.out.dots} waiting for a human", None)
        elif etype.endswith("StateExited"):
            d = ev["stateExitedEventDetails"]
            name = d["name"]
            ms = (ts - self.entered.pop(name, ts)) * 1000
            try:
                state = json.loads(d.get("output") or "{}")
            except ValueError:
                state = {}
            self._exited(name, state, ms)

    def _record(self, label: str, text: str, ms: float | None, ok: bool = True) -> None:
        self.steps.append({"step": label, "text": text, "ms": None if ms is None else round(ms, 1), "ok": ok})
        self.out.step(label, text, ms, ok=ok)

    def _exited(self, name: str, s: dict[str, Any], ms: float) -> None:
        out = self.out
        if name == "Classify":
            c = s.get("classification") or {}
            self._record("classify", f"{c.get('entry')} (failed set-up step: {c.get('step')})", ms)
        elif name == "Diagnose":
            diagnosis = DiagnosisResult.from_dict(s.get("diagnosis") or {})
            if diagnosis.healthy:
                self._record("diagnose", "the ESM is healthy now (the event was stale)", ms)
            else:
                rc = diagnosis.root_cause
                self._record("diagnose", f"{rc.get('id')}: {clip(rc.get('summary'), 90)}", ms)
        elif name == "Decide":
            d = s.get("decision") or {}
            plan = d.get("plan") or {}
            self._record("plan", f"{d.get('fix')} -> route {d.get('route')} (mode {d.get('mode')})", ms)
            for line in (plan.get("diff") or [])[:4]:
                out.detail(clip(line, 100))
            cost = plan.get("cost") or {}
            if cost.get("monthly_usd") is not None:
                out.detail(f"estimated cost: ~${cost['monthly_usd']}/month")
            if d.get("route") in ("ticket", "notify", "skip"):
                out.detail(clip(d.get("reason"), 110))
        elif name == "RequestApproval":
            a = s.get("approval") or {}
            who = a.get("approver") or "?"
            verdict = "approved" if a.get("approved") else "declined"
            self._record("approval", f"{verdict} by {who}", ms)
        elif name == "Remediate":
            r = s.get("action_record") or {}
            restarted = "; ESM polling restarted (disable / enable)" if r.get("restarted") else ""
            self._record("apply", f"{r.get('status')} {r.get('action')} ({r.get('action_id')}){restarted}", ms)
            for kind, ids in (r.get("created") or {}).items():
                if ids:
                    out.detail(f"created {kind}: {', '.join(map(str, ids))[:100]}")
            states = self._restart_states(str(r.get("action_id") or ""), str(s.get("uuid") or r.get("uuid") or ""))
            if states:
                out.detail(f"ESM states seen while restarting: {states}")
        elif name == "Verify":
            v = s.get("verification") or {}
            st = v.get("status") or {}
            good = bool(v.get("recovered"))
            self._record(
                "verify",
                f"attempt {v.get('attempts')}: {st.get('State')}, {clip(st.get('LastProcessingResult'), 70)}",
                ms,
                ok=good or not v.get("exhausted"),
            )
        elif name == "Rollback":
            self._record("rollback", clip((s.get("rollback") or {}).get("reason"), 110), ms)
        elif name == "NotifyRecovered":
            n = NotificationResult.from_dict((s.get("notification") or {}).get("result") or {})
            self._record("notify", f"'recovered' sent to {', '.join(n.sent) or 'no sink'}", ms)
        elif name == "NotifyOnly":
            self._record("notify", "reported; nothing changed", ms)
        elif name == "Ticket":
            t = TicketResult.from_dict(s.get("ticket") or {})
            self._record("ticket", f"{t.ticket_id} -> {t.location}", ms)
        elif name in ("Record", "RecordFailure"):
            rec = s.get("recorded") or {}
            self._record("outcome", f"{rec.get('outcome')} (recorded in the STATE and AUDIT tables)", ms)
