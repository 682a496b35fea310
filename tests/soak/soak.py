#!/usr/bin/env python3
"""Crash-safety and two-channel soak tests for LocalPasskey.

    soak.py crash    --kills N   [--seed S] [--json OUT]
    soak.py channels --seconds T [--seed S] [--json OUT]

`crash`: the real daemon with TPM custody on its own swtpm, driven by
python-fido2 over the UDP transport, is killed with SIGKILL at random moments
during a loop of registrations, assertions, deletions (`localpasskey delete`)
and wrong-PIN attempts, and restarted each time. After every restart:

- the PIN retry counter is not above the last value a client was told after a
  wrong PIN (a decrement that was acknowledged survives the kill);
- no credential whose deletion was acknowledged is listed or answers;
- a sample of the acknowledged credentials authenticates, checked by
  fido2.server, with a counter above the highest one ever acknowledged
  (and at the end: every acknowledged credential);
- `PRAGMA integrity_check` is ok.

`channels`: two clients on two CTAPHID channels of one daemon (software
custody): one sends slow requests (scripted presence delays) and cancels some,
the other keeps sending PINGs and CBOR requests; the busy one gets
CTAPHID_ERROR 0x06, cancel ends a request with CTAP2_ERR_KEEPALIVE_CANCEL,
and every answer arrives on the channel that asked, with that request's
payload — nothing lost, nothing crossed.

Both print their counts and exit non-zero on any violation. Helpers for the
UDP transport come from tests/e2e/lpk (imported, not copied).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
import lpk  # noqa: E402
from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction  # noqa: E402
from fido2.ctap import CtapError  # noqa: E402
from fido2.ctap2 import ClientPin, Ctap2  # noqa: E402
from fido2.server import Fido2Server  # noqa: E402

PIN = "246810"
WRONG_PIN = "000000"
RP_ID = "soak.example"
ORIGIN = f"https://{RP_ID}"


class Violation(AssertionError):
    pass


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise Violation(msg)


class Swtpm(lpk.Swtpm):
    """The e2e suite's swtpm (only a unix socket, in a 0700 directory), started
    at once, with the soak's dictionary-attack settings."""

    def __init__(self, workdir: Path):
        super().__init__(workdir / "swtpm")
        self.start()
        # 32 tries, one forgiven per second: the soak's wrong PINs must not
        # lock the TPM itself (that is tested in lp-tpm), only count.
        self.tool("tpm2_dictionarylockout", "-s", "-n", "32", "-t", "1", "-l", "10")

    def flush_all(self) -> None:
        """What the kernel resource manager does when a process dies: flush
        its transient objects and sessions. swtpm has no resource manager, so
        a SIGKILLed daemon would otherwise leave its handles loaded.
        SOAK_NO_FLUSH=1 skips it (to see what the daemon does then)."""
        if os.environ.get("SOAK_NO_FLUSH"):
            return
        super().flush_all()


class PinInteraction(UserInteraction):
    def request_pin(self, permissions, rp_id):
        return PIN

    def request_uv(self, permissions, rp_id):
        return True


def integrity_check(data_dir: Path) -> None:
    con = sqlite3.connect(str(data_dir / "credentials.sqlite3"), timeout=10)
    try:
        rows = con.execute("PRAGMA integrity_check").fetchall()
    finally:
        con.close()
    check(rows == [("ok",)], f"integrity_check: {rows}")


class CrashSoak:
    def __init__(self, workdir: Path, seed: int):
        self.rng = random.Random(seed)
        self.workdir = workdir
        self.data = workdir / "data"
        self.script = workdir / "presence.txt"
        self.script.write_text("")
        self.tpm = Swtpm(workdir)
        self.proc: subprocess.Popen | None = None
        self.port = lpk.Daemon._free_port()
        self.server = Fido2Server({"id": RP_ID, "name": "Soak"}, attestation="none")
        # credential id -> [AttestedCredentialData, highest acknowledged counter]
        self.known: dict[bytes, list] = {}
        self.deleted: set[bytes] = set()
        self.retries_ceiling: int | None = None  # after an acknowledged wrong PIN
        self.wrong_in_a_row = 0
        self.n = dict(kills=0, restarts=0, registrations=0, assertions=0, deletions=0,
                      wrong_pins=0, retries_checked_after_kill=0, checks=0, interrupted=0, startup_ms=[])

    # ---- daemon

    def start(self) -> None:
        log = open(self.workdir / "daemon.log", "ab")
        env = dict(os.environ, TSS2_LOG="all+none", LOCALPASSKEY_LOG="warn", NO_COLOR="1")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [str(lpk.binary()), "run", "--transport", "udp", "--listen", f"127.0.0.1:{self.port}",
             "--data-dir", str(self.data), "--custody", "tpm", "--tpm", self.tpm.tcti,
             "--presence", f"script:{self.script}", "--script-pin", PIN],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
        )
        raw = lpk.RawHid(self.port)
        try:
            while time.monotonic() - t0 < 20:
                check(self.proc.poll() is None, f"daemon exited {self.proc.returncode}; see daemon.log")
                try:
                    raw.init()
                    break
                except (AssertionError, ConnectionRefusedError, OSError):
                    time.sleep(0.02)
            else:
                raise Violation("daemon did not answer INIT within 20 s")
        finally:
            raw.close()
        self.n["startup_ms"].append((time.monotonic() - t0) * 1000)
        self.n["restarts"] += 1

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.n["kills"] += 1
        self.tpm.flush_all()

    def device(self):
        return lpk.hid_device(self.port, read_timeout=2.0, call_limit=20.0)

    def client(self, dev) -> Fido2Client:
        return Fido2Client(dev, DefaultClientDataCollector(ORIGIN), user_interaction=PinInteraction())

    # ---- operations (each returns only once the daemon acknowledged it)

    def register(self, dev) -> None:
        # From here on the right PIN may reach the authenticator (and reset
        # the retries), acknowledged or not.
        self.retries_ceiling = None
        self.wrong_in_a_row = 0
        user = {"id": os.urandom(16), "name": "soak", "displayName": "Soak"}
        options, state = self.server.register_begin(
            user, resident_key_requirement=self.rng.choice(["required", "discouraged"]),
            user_verification="required")
        response = self.client(dev).make_credential(options.public_key)
        auth_data = self.server.register_complete(state, response)
        cd = auth_data.credential_data
        check(cd.credential_id not in self.known, "a credential id came back twice")
        self.known[cd.credential_id] = [cd, auth_data.counter]
        self.n["registrations"] += 1

    def authenticate(self, dev, cred_id: bytes) -> None:
        self.retries_ceiling = None  # see register()
        self.wrong_in_a_row = 0
        cd, ceiling = self.known[cred_id]
        options, state = self.server.authenticate_begin([cd], user_verification="required")
        selection = self.client(dev).get_assertion(options.public_key)
        response = selection.get_response(0)
        check(response.raw_id == cred_id, "another credential answered")
        self.server.authenticate_complete(state, [cd], response)
        counter = response.response.authenticator_data.counter
        check(counter > ceiling, f"counter of {cred_id.hex()[:16]} went from {ceiling} to {counter}")
        self.known[cred_id][1] = counter
        self.n["assertions"] += 1

    def delete(self) -> None:
        if not self.known:
            return
        cred_id = self.rng.choice(list(self.known))
        r = lpk.run_cli("delete", "--data-dir", str(self.data), cred_id.hex()[:16])
        check(r.returncode == 0, f"delete failed: {r.stderr}")
        del self.known[cred_id]
        self.deleted.add(cred_id)
        self.n["deletions"] += 1

    def wrong_pin(self, dev) -> None:
        cp = ClientPin(Ctap2(dev))
        try:
            cp.get_pin_token(WRONG_PIN, ClientPin.PERMISSION.GET_ASSERTION, RP_ID)
            raise Violation("a wrong PIN was accepted")
        except CtapError as e:
            check(e.code in (CtapError.ERR.PIN_INVALID, CtapError.ERR.PIN_AUTH_BLOCKED),
                  f"wrong PIN answered {e.code!r}")
        retries, _ = cp.get_pin_retries()
        self.retries_ceiling = retries
        self.wrong_in_a_row += 1
        self.n["wrong_pins"] += 1

    # ---- invariants after a restart

    def verify(self, sample: int | None) -> None:
        dev = self.device()
        try:
            cp = ClientPin(Ctap2(dev))
            retries, _ = cp.get_pin_retries()
            if self.retries_ceiling is not None:
                self.n["retries_checked_after_kill"] += 1
                check(retries <= self.retries_ceiling,
                      f"PIN retries went back up from {self.retries_ceiling} to {retries} across a kill")
            listed = {bytes.fromhex(c["credential_id"]) for c in json.loads(
                lpk.run_cli("list", "--json", "--data-dir", str(self.data)).stdout)}
            back = listed & self.deleted
            check(not back, f"deleted credentials came back: {[c.hex()[:16] for c in back]}")
            missing = set(self.known) - listed
            check(not missing, f"acknowledged credentials lost: {[c.hex()[:16] for c in missing]}")
            ids = list(self.known)
            if sample is not None:
                ids = self.rng.sample(ids, min(sample, len(ids)))
            for cred_id in ids:
                self.authenticate(dev, cred_id)
            # A deleted credential does not answer either.
            if self.deleted:
                gone = self.rng.choice(list(self.deleted))
                c2 = Ctap2(dev)
                try:
                    c2.get_assertion(RP_ID, os.urandom(32), allow_list=[{"type": "public-key", "id": gone}])
                    raise Violation("a deleted credential answered")
                except CtapError as e:
                    # Without a token the daemon asks for one first: either way, no answer.
                    check(e.code in (CtapError.ERR.NO_CREDENTIALS, CtapError.ERR.PUAT_REQUIRED),
                          f"deleted credential: {e.code!r}")
            self.n["checks"] += 1
        finally:
            dev.close()

    # ---- the loop

    def cycle(self) -> None:
        deadline = self.rng.uniform(0.0, 1.0)
        killer = threading.Timer(deadline, lambda: self.proc.send_signal(signal.SIGKILL))
        dev = self.device()
        killer.start()
        try:
            while self.proc.poll() is None:
                r = self.rng.random()
                if r < 0.35 or not self.known:
                    self.register(dev)
                elif r < 0.75:
                    self.authenticate(dev, self.rng.choice(list(self.known)))
                elif r < 0.88:
                    self.delete()
                elif self.wrong_in_a_row < 2:
                    self.wrong_pin(dev)
                    if self.rng.random() < 0.5:
                        # Nothing else until the kill: the next start must
                        # still show the decrement.
                        self.proc.wait(5)
        except Violation:
            raise
        except Exception:
            # The kill landed mid-request: that request was never acknowledged.
            self.n["interrupted"] += 1
        finally:
            killer.cancel()
            dev.close()
        self.proc.wait(10)
        self.n["kills"] += 1
        self.tpm.flush_all()

    def run(self, kills: int) -> dict:
        t0 = time.monotonic()
        self.start()
        dev = self.device()
        ClientPin(Ctap2(dev)).set_pin(PIN)
        dev.close()
        while self.n["kills"] < kills:
            self.cycle()
            integrity_check(self.data)
            self.start()
            self.verify(sample=2)
        self.verify(sample=None)
        integrity_check(self.data)
        self.proc.terminate()
        self.proc.wait(10)
        s = sorted(self.n.pop("startup_ms"))
        self.n.update(
            acknowledged_alive=len(self.known), deleted=len(self.deleted),
            startup_ms_p50=round(s[len(s) // 2], 1), startup_ms_max=round(s[-1], 1),
            seconds=round(time.monotonic() - t0, 1),
        )
        return self.n

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        self.tpm.stop()


# --------------------------------------------------------------------------
# Two channels
# --------------------------------------------------------------------------


def channels(workdir: Path, seconds: float, seed: int) -> dict:
    rng = random.Random(seed)
    d = lpk.Daemon(workdir, presence_timeout_ms=2000, script_pin=PIN, pin=None)
    d.start()
    n = dict(slow=0, slow_ok=0, busy_seen_slow=0, cancelled=0, busy_seen=0, pings=0, cbor=0, errors=0)
    stop = threading.Event()
    failures: list[str] = []
    try:
        # The slow channel's requests ask our prompt for the PIN; set one first.
        dev = d.device()
        ClientPin(Ctap2(dev)).set_pin(PIN)
        dev.close()

        def slow():
            raw = lpk.RawHid(d.port)
            cid = raw.init()
            try:
                while not stop.is_set():
                    n["slow"] += 1
                    cancel = rng.random() < 0.3
                    d.presence("wait" if cancel else f"delay {rng.randint(50, 400)}")
                    # GetAssertion without a token: built-in UV, i.e. our prompt.
                    params = bytes.fromhex("a2") + b"\x01" + lpk_text(RP_ID) + b"\x02\x58\x20" + os.urandom(32)
                    while True:
                        raw.send_message(cid, lpk.HID_CBOR, bytes([0x02]) + params)
                        if cancel:
                            time.sleep(rng.uniform(0.05, 0.3))
                            raw.send(lpk.RawHid.init_packet(cid, lpk.HID_CANCEL, 0))
                        cmd, data = raw.read_message(cid, timeout=10)
                        if (cmd, data) != (lpk.HID_ERROR, bytes([lpk.ERR_CHANNEL_BUSY])):
                            break
                        # The other channel's request is running: ours was
                        # refused whole (the script line is still queued).
                        n["busy_seen_slow"] += 1
                        time.sleep(0.01)
                    if cmd != lpk.HID_CBOR:
                        failures.append(f"slow channel: answer cmd 0x{cmd:02x} {data.hex()}")
                        continue
                    if cancel:
                        if data[0] != 0x2D:
                            failures.append(f"cancelled request answered 0x{data[0]:02x}")
                        n["cancelled"] += 1
                    else:
                        # No credential for the RP: the answer after the prompt.
                        if data[0] != 0x2E:
                            failures.append(f"slow request answered 0x{data[0]:02x}")
                        n["slow_ok"] += 1
            except Exception as e:  # noqa: BLE001
                failures.append(f"slow channel: {e!r}")
            finally:
                raw.close()

        def busy():
            raw = lpk.RawHid(d.port)
            cid = raw.init()
            try:
                while not stop.is_set():
                    if rng.random() < 0.7:
                        payload = os.urandom(rng.randint(1, 300))
                        want = (lpk.HID_PING, payload)
                        raw.send_message(cid, lpk.HID_PING, payload)
                    else:
                        payload = bytes([0x04])  # GetInfo
                        want = None
                        raw.send_message(cid, lpk.HID_CBOR, payload)
                    cmd, data = raw.read_message(cid, timeout=10)
                    if cmd == lpk.HID_ERROR:
                        if data != bytes([lpk.ERR_CHANNEL_BUSY]):
                            failures.append(f"busy channel: CTAPHID_ERROR {data.hex()}")
                        n["busy_seen"] += 1
                        time.sleep(0.01)
                        continue
                    if want is not None:
                        if (cmd, data) != want:
                            failures.append("PING answered with another payload")
                        n["pings"] += 1
                    else:
                        if cmd != lpk.HID_CBOR or data[:1] != b"\x00":
                            failures.append(f"GetInfo answered {cmd:02x} {data[:4].hex()}")
                        n["cbor"] += 1
            except Exception as e:  # noqa: BLE001
                failures.append(f"busy channel: {e!r}")
            finally:
                raw.close()

        threads = [threading.Thread(target=slow), threading.Thread(target=busy)]
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join(30)
        n["errors"] = len(failures)
        n["seconds"] = seconds
        lpk.assert_alive(d)
        if failures:
            raise Violation("; ".join(failures[:10]))
        check(n["busy_seen"] > 0, "the busy channel never saw CTAPHID_ERROR busy")
        check(n["cancelled"] > 0 or seconds < 5, "no request was cancelled")
        return n
    finally:
        d.stop()


def lpk_text(s: str) -> bytes:
    b = s.encode()
    assert len(b) < 24
    return bytes([0x60 + len(b)]) + b


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["crash", "channels"])
    ap.add_argument("--kills", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    random.seed(seed)
    workdir = Path(tempfile.mkdtemp(prefix=f"lp-soak-{a.mode}-"))
    print(f"soak {a.mode}: seed {seed}, work dir {workdir}", flush=True)
    ok = False
    try:
        if a.mode == "crash":
            soak = CrashSoak(workdir, seed)
            try:
                result = soak.run(a.kills)
            finally:
                soak.close()
        else:
            result = channels(workdir, a.seconds, seed)
        result["seed"] = seed
        print(json.dumps(result, indent=1))
        if a.json:
            a.json.write_text(json.dumps(result, indent=1) + "\n")
        ok = True
        return 0
    except Violation as e:
        print(f"VIOLATION: {e}", file=sys.stderr)
        return 1
    finally:
        if ok and not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work dir kept: {workdir}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
