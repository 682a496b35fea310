"""python-fido2 as a desktop user's program, for tests/system.

    fido2_client.py register CRED_FILE      # a resident passkey, UV required
    fido2_client.py sign-in CRED_FILE       # sign in with it, discoverable

Runs as the logged-in user against whatever hidraw node python-fido2 finds
named LocalPasskey (it lists only the nodes this user may open). Every answer
is checked by fido2.server (the relying party's side): signature, RP ID hash,
UV=1, BE=0, BS=0, our AAGUID. CRED_FILE keeps the credential's public data
(what a relying party stores) between runs, across reboots and reinstalls.
Prints one line of JSON; exits non-zero on any failure.
"""

import json
import os
import sys
from pathlib import Path

from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.hid import CtapHidDevice
from fido2.server import Fido2Server
from fido2.webauthn import AttestedCredentialData

AAGUID = "cb8a205c984c4e7e98eb5800f04355ef"
RP = {"id": "system.localpasskey.test", "name": "LocalPasskey system test"}
ORIGIN = "https://system.localpasskey.test"


class Person(UserInteraction):
    """The PIN the person types when the platform asks for it."""

    def __init__(self):
        self.asked = []

    def request_pin(self, permissions, rp_id):
        self.asked.append("client-pin")
        return Path(os.environ["LPK_PERSON_PIN_FILE"]).read_text().strip()

    def request_uv(self, permissions, rp_id):
        self.asked.append("built-in-uv")
        return True


def device():
    devs = [d for d in CtapHidDevice.list_devices() if d.descriptor.product_name == "LocalPasskey"]
    if len(devs) != 1:
        raise SystemExit(f"expected one LocalPasskey device, python-fido2 lists {[d.descriptor for d in devs]}")
    return devs[0]


def main():
    action, cred_file = sys.argv[1], Path(sys.argv[2])
    dev = device()
    person = Person()
    client = Fido2Client(dev, DefaultClientDataCollector(ORIGIN), user_interaction=person)
    server = Fido2Server(RP, attestation="direct")
    if action == "register":
        user = {"id": os.urandom(16), "name": "alice", "displayName": "Alice"}
        opts, state = server.register_begin(user, resident_key_requirement="required", user_verification="required")
        auth = server.register_complete(state, client.make_credential(opts.public_key))
        cd = auth.credential_data
        assert cd.aaguid.hex() == AAGUID, cd.aaguid.hex()
        assert auth.is_user_verified() and not auth.flags & 0x18, f"flags {auth.flags:#x}"
        cred_file.write_text(json.dumps({"cred": bytes(cd).hex(), "user": user["id"].hex()}))
        out = {"registered": cd.credential_id.hex()[:16], "flags": auth.flags}
    elif action == "sign-in":
        saved = json.loads(cred_file.read_text())
        cd = AttestedCredentialData(bytes.fromhex(saved["cred"]))
        opts, state = server.authenticate_begin(user_verification="required")
        resp = client.get_assertion(opts.public_key).get_response(0)
        server.authenticate_complete(state, [cd], resp)
        assert resp.response.user_handle.hex() == saved["user"], "another account answered"
        flags = resp.response.authenticator_data.flags
        assert flags & 0x04 and not flags & 0x18, f"flags {flags:#x}"
        out = {"signed_in": cd.credential_id.hex()[:16], "counter": resp.response.authenticator_data.counter,
               "flags": flags}
    else:
        raise SystemExit(f"unknown action {action}")
    out["verification"] = person.asked
    print(json.dumps(out))
    dev.close()


if __name__ == "__main__":
    main()
