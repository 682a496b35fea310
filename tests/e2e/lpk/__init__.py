"""Helpers for the LocalPasskey end-to-end suite.

- `Swtpm`: one software TPM 2.0 (swtpm) behind a unix socket in a directory
  only its owner may open: no TCP port, no control channel other uids reach.
- `Daemon`: one `localpasskey run` process on a random loopback UDP port with
  its own data directory, a scripted presence file, TPM custody (its own
  swtpm) or the insecure software custody, and a PIN set through
  python-fido2's `ClientPin` unless a test asks for none.
- `UdpConnection`: a python-fido2 `CtapHidConnection` over the UDP simulation
  transport (one datagram = one raw 64-byte CTAPHID report), so that fido2's
  own `CtapHidDevice`, `Ctap2` and `Fido2Client` talk to the daemon for real.
- `HidrawConnection`: the same over a real kernel HID device (`/dev/hidrawN`
  made by `localpasskey run --transport uhid`), for the run of this suite
  inside the VM of tests/vm (`LPK_TRANSPORT=uhid`).
- `RawHid`: hand-made CTAPHID reports, for the framing and bad-input tests.
- `RelyingParty`: registers and authenticates through `Fido2Client` and checks
  every answer with two relying-party implementations nobody here wrote:
  `fido2.server.Fido2Server` and py_webauthn.
"""

from .common import *  # noqa: F401,F403
from .hid import *  # noqa: F401,F403
from .swtpm import *  # noqa: F401,F403
from .daemon import *  # noqa: F401,F403
from .bus import SessionBus, DBusError  # noqa: F401
from .rp import *  # noqa: F401,F403
