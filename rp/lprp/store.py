"""Users and credentials, kept like a real site keeps them.

One JSON file: ``{"users": {name: {...}}, "credentials": {id: {...}}}``.
Only public data is stored (the COSE public key, the sign count, the flags
seen at registration). Every change is written to a temporary file, synced
and renamed over the old one, so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any


class JsonStore:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        if self.path.exists():
            self._data = json.loads(self.path.read_text())
        else:
            self._data = {"users": {}, "credentials": {}}
            self._save()

    def _save(self) -> None:
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with open(tmp, "w") as f:
            json.dump(self._data, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    # ------------------------------------------------------------ users
    def user(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            u = self._data["users"].get(name)
            return dict(u) if u else None

    def user_by_handle(self, handle_b64: str) -> dict[str, Any] | None:
        with self._lock:
            for u in self._data["users"].values():
                if u["handle"] == handle_b64:
                    return dict(u)
        return None

    def add_user(self, name: str, handle_b64: str, display_name: str) -> dict[str, Any]:
        with self._lock:
            u = self._data["users"].setdefault(
                name, {"name": name, "handle": handle_b64, "display_name": display_name}
            )
            self._save()
            return dict(u)

    # ------------------------------------------------------ credentials
    def credentials(self, user_name: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            creds = [dict(c) for c in self._data["credentials"].values()]
        if user_name is not None:
            creds = [c for c in creds if c["user"] == user_name]
        return sorted(creds, key=lambda c: c["created"])

    def credential(self, cred_id_b64: str) -> dict[str, Any] | None:
        with self._lock:
            c = self._data["credentials"].get(cred_id_b64)
            return dict(c) if c else None

    def add_credential(self, cred: dict[str, Any]) -> None:
        with self._lock:
            if cred["id"] in self._data["credentials"]:
                raise ValueError("credential id already registered")
            self._data["credentials"][cred["id"]] = cred
            self._save()

    def update_credential(self, cred_id_b64: str, **changes: Any) -> None:
        with self._lock:
            self._data["credentials"][cred_id_b64].update(changes)
            self._save()

    def remove_credential(self, cred_id_b64: str) -> bool:
        with self._lock:
            gone = self._data["credentials"].pop(cred_id_b64, None) is not None
            self._save()
            return gone
