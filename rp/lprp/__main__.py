"""python -m lprp [--host 127.0.0.1] [--port 8080] [--rp-id localhost] [--db FILE]"""

import argparse
import logging

from .relying_party import RelyingParty
from .server import serve
from .store import JsonStore


def main() -> None:
    ap = argparse.ArgumentParser(prog="lprp", description="LocalPasskey demo relying party")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--rp-id", default="localhost")
    ap.add_argument("--rp-name", default="LocalPasskey demo site")
    ap.add_argument("--origin", help="default: http://RP_ID:PORT")
    ap.add_argument("--db", default="lprp-credentials.json", help="where users and credentials are kept")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s lprp %(levelname)s %(message)s")
    origin = a.origin or f"http://{a.rp_id}:{a.port}"
    rp = RelyingParty(a.rp_id, a.rp_name, origin, JsonStore(a.db))
    httpd = serve(rp, a.host, a.port)
    logging.info("serving %s (RP ID %s) on %s:%d, credentials in %s", origin, a.rp_id, a.host, a.port, a.db)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
