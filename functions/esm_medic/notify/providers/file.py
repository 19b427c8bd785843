"""The file provider: ``<ticket-id>.md`` in the ticket folder (the sandbox, the CLI, and the last fallback).

open writes the file unless it exists; comment and resolve append a dated section; find_open reads the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from esm_medic.notify.providers.base import Opened, ProviderError, TicketDoc

RESOLVED_MARK = "## Resolved"


@dataclass
class FileProvider:
    directory: Path
    name: str = "file"

    def path(self, doc: TicketDoc) -> Path:
        from esm_medic.notify.sinks import safe_filename

        return Path(self.directory) / f"{safe_filename(doc.ticket_id)}.md"

    def open(self, doc: TicketDoc) -> Opened:
        path = self.path(doc)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("x", encoding="utf-8") as fh:
                fh.write(doc.body)
        except FileExistsError:
            pass
        except OSError as exc:
            raise ProviderError(self.name, f"cannot write {path}: {exc.strerror or exc}", retryable=True) from None
        return Opened(str(path), path.resolve().as_uri())

    def _append(self, ref: str, heading: str, text: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        try:
            with Path(ref).open("a", encoding="utf-8") as fh:
                fh.write(f"\n{heading} ({stamp})\n\n{text.strip()}\n")
        except OSError as exc:
            raise ProviderError(self.name, f"cannot append to {ref}: {exc.strerror or exc}", retryable=True) from None

    def comment(self, ref: str, doc: TicketDoc, text: str) -> None:
        self._append(ref, "## Update", text)

    def resolve(self, ref: str, doc: TicketDoc, text: str) -> None:
        self._append(ref, RESOLVED_MARK, text)

    def find_open(self, doc: TicketDoc) -> Opened | None:
        path = self.path(doc)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            return None
        return None if f"\n{RESOLVED_MARK} (" in text else Opened(str(path), path.resolve().as_uri())
