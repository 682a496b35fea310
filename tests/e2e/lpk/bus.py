"""A session bus of the test's own (a real `dbus-daemon`) and a client of
the daemon's manager API on it, written with jeepney (not with the zbus the
daemon uses), so a wire-format mistake on one side is not mirrored on the other."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from jeepney import DBusAddress, HeaderFields, MatchRule, MessageType, new_method_call
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection

BUS_NAME = "org.localpasskey.LocalPasskey"
OBJECT_PATH = "/org/localpasskey/LocalPasskey"
INTERFACE = "org.localpasskey.Manager1"
MANAGER = DBusAddress(OBJECT_PATH, bus_name=BUS_NAME, interface=INTERFACE)

# Long enough for a prompt the person takes their time with (30 s by default).
CALL_TIMEOUT = 60

SESSION_POLICY = """
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>"""

# Every local user may connect: a bus set up more loosely than a session's,
# on which the daemon's own uid check is the only thing left.
OPEN_POLICY = """
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>"""


class DBusError(Exception):
    def __init__(self, name: str, text: str):
        super().__init__(f"{name}: {text}")
        self.name = name
        self.text = text


class SessionBus:
    """`dbus-daemon --nofork` with its own config and socket. With
    `open_to_all_users` the socket's directory is world-searchable and the
    policy lets any uid connect."""

    def __init__(self, open_to_all_users: bool = False):
        self.open = open_to_all_users
        self.dir = Path(tempfile.mkdtemp(prefix="lpk-bus-"))
        self.proc: subprocess.Popen | None = None
        self.address = ""

    def start(self) -> "SessionBus":
        exe = shutil.which("dbus-daemon")
        assert exe, "dbus-daemon is not installed (scripts/install-deps.sh installs it)"
        if self.open:
            os.chmod(self.dir, 0o711)
        config = self.dir / "bus.conf"
        config.write_text(
            "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
            " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
            "<busconfig>\n  <type>session</type>\n"
            f"  <listen>unix:path={self.dir / 'bus'}</listen>\n"
            "  <auth>EXTERNAL</auth>\n"
            f"{OPEN_POLICY if self.open else SESSION_POLICY}\n</busconfig>\n"
        )
        self.proc = subprocess.Popen(
            [exe, f"--config-file={config}", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        line = self.proc.stdout.readline().strip()
        assert line.startswith("unix:"), f"dbus-daemon printed no address: {line!r}"
        self.address = line
        if self.open:
            os.chmod(self.dir / "bus", 0o777)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def client(self) -> "Manager":
        return Manager(self.address)


class Manager:
    """The manager API as a program on the bus calls it."""

    def __init__(self, address: str):
        self.conn = open_dbus_connection(bus=address)
        self.signals = None

    def close(self) -> None:
        self.conn.close()

    def call(self, method: str, signature: str | None = None, *args, timeout: float = CALL_TIMEOUT):
        msg = new_method_call(MANAGER, method, signature, tuple(args))
        reply = self.conn.send_and_get_reply(msg, timeout=timeout)
        if reply.header.message_type == MessageType.error:
            name = reply.header.fields.get(HeaderFields.error_name, "?")
            text = reply.body[0] if reply.body else ""
            raise DBusError(name, text)
        return reply.body

    def introspect(self) -> str:
        msg = new_method_call(
            DBusAddress(OBJECT_PATH, bus_name=BUS_NAME, interface="org.freedesktop.DBus.Introspectable"),
            "Introspect",
        )
        return self.conn.send_and_get_reply(msg, timeout=10).body[0]

    def watch_signals(self) -> None:
        """Start collecting the manager's signals (call before the action)."""
        rule = MatchRule(type="signal", interface=INTERFACE, path=OBJECT_PATH)
        self.conn.send_and_get_reply(message_bus.AddMatch(rule), timeout=10)
        self.signals = self.conn.filter(rule, bufsize=1000)

    def next_signal(self, timeout: float = 10) -> tuple[str, tuple]:
        msg = self.conn.recv_until_filtered(self.signals.queue, timeout=timeout)
        return msg.header.fields[HeaderFields.member], msg.body

    def drain_signals(self, quiet: float = 1.0) -> list[tuple[str, tuple]]:
        """Every signal until none has come for `quiet` seconds."""
        out = []
        while True:
            try:
                out.append(self.next_signal(timeout=quiet))
            except TimeoutError:
                return out

    # ---- the methods, with plain Python values

    def info(self) -> dict:
        return plain(self.call("Info")[0])

    def passkeys(self) -> list[dict]:
        return [plain(d) for d in self.call("ListPasskeys")[0]]

    def delete(self, credential_id: str) -> None:
        self.call("DeletePasskey", "s", credential_id)

    def rename(self, credential_id: str, name: str, display: str) -> None:
        self.call("RenameUser", "sss", credential_id, name, display)

    def pin_status(self) -> dict:
        return plain(self.call("PinStatus")[0])

    def set_pin(self) -> None:
        self.call("SetPin")

    def change_pin(self) -> None:
        self.call("ChangePin")

    def health(self) -> list[dict]:
        return [plain(d) for d in self.call("Health")[0]]

    def activity(self, limit: int = 100) -> list[dict]:
        return [plain(d) for d in self.call("RecentActivity", "u", limit)[0]]


def plain(d: dict) -> dict:
    """a{sv} as jeepney gives it ({key: (signature, value)}) to {key: value}."""
    return {k: v[1] for k, v in d.items()}
