"""The HTTP edge of the demo site: one page and a small JSON API.

    GET  /                          the page (static/index.html + app.js)
    GET  /api/state                 RP ID, origin, the stored credentials
    POST /api/register/begin        {"username"}            -> {"ceremony", "publicKey"}
    POST /api/register/finish       {"ceremony", "credential"} -> what the site sees
    POST /api/authenticate/begin    {"username"?}           -> {"ceremony", "publicKey"}
    POST /api/authenticate/finish   {"ceremony", "credential"} -> what the site sees

A refused response answers 400 with {"error": "..."}; the site never trusts
the browser: everything is checked in relying_party.
"""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .relying_party import CeremonyError, RelyingParty

STATIC = Path(__file__).resolve().parent.parent / "static"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css"}
log = logging.getLogger("lprp")


def make_handler(rp: RelyingParty):
    class Handler(BaseHTTPRequestHandler):
        server_version = "lprp/1"

        def log_message(self, fmt, *args):
            log.info("%s %s", self.address_string(), fmt % args)

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, obj) -> None:
            self._send(status, json.dumps(obj, indent=1).encode(), "application/json")

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path == "/api/state":
                return self._json(200, rp.summary())
            name = "index.html" if path == "/" else path.lstrip("/")
            f = (STATIC / name).resolve()
            if f.parent != STATIC or not f.is_file():
                return self._json(404, {"error": "not found"})
            self._send(200, f.read_bytes(), TYPES.get(f.suffix, "application/octet-stream"))

        def do_POST(self):
            routes = {
                "/api/register/begin": lambda b: rp.register_begin(b.get("username", ""), b.get("displayName")),
                "/api/register/finish": lambda b: rp.register_finish(b["ceremony"], b["credential"]),
                "/api/authenticate/begin": lambda b: rp.authenticate_begin(b.get("username")),
                "/api/authenticate/finish": lambda b: rp.authenticate_finish(b["ceremony"], b["credential"]),
            }
            fn = routes.get(self.path)
            if fn is None:
                return self._json(404, {"error": "not found"})
            try:
                n = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(n) or b"{}")
                result = fn(body)
            except (CeremonyError, KeyError, ValueError) as e:
                log.warning("%s refused: %s", self.path, e)
                return self._json(400, {"error": str(e)})
            except Exception as e:  # a bug here must still answer, never drop the connection
                log.exception("%s failed", self.path)
                return self._json(500, {"error": f"server error: {type(e).__name__}: {e}"})
            log.info("%s ok: %s", self.path, json.dumps(result)[:300])
            self._json(200, result)

    return Handler


def serve(rp: RelyingParty, host: str, port: int) -> ThreadingHTTPServer:
    httpd = ThreadingHTTPServer((host, port), make_handler(rp))
    return httpd
