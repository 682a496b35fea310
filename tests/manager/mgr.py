"""Helpers for the manager tests: a private session bus, the accessibility
bus on it, a private X server, the real `localpasskey-manager`, and a small
AT-SPI driver that finds widgets by role and name as a screen reader does.

Nothing here fakes a part: the bus is a real `dbus-daemon --session` with its
own configuration and address, the accessibility bus is at-spi2-core's own
launcher and registry on it, GTK draws on Xvfb, and the app's widgets are
reached through the accessibility tree, never by screen coordinates.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "test-output" / "manager"

# pyatspi and gi come from Debian (python3-pyatspi), not from the venv.
if "/usr/lib/python3/dist-packages" not in sys.path:
    sys.path.append("/usr/lib/python3/dist-packages")

TOOLS = ("Xvfb", "dbus-daemon", "import", "xdotool")
A11Y_LAUNCHER = Path("/usr/libexec/at-spi-bus-launcher")
A11Y_REGISTRY = Path("/usr/libexec/at-spi2-registryd")


def manager_binary() -> Path:
    b = Path(os.environ.get("LOCALPASSKEY_MANAGER_BIN", REPO / "target/debug/localpasskey-manager"))
    return b if b.is_absolute() else REPO / b


def missing_tools() -> list[str]:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    missing += [str(p) for p in (A11Y_LAUNCHER, A11Y_REGISTRY) if not p.exists()]
    try:
        import pyatspi  # noqa: F401
    except ImportError:
        missing.append("python3-pyatspi")
    return missing


def wait_for(what: str, check, timeout: float = 20.0, interval: float = 0.05):
    """Polls `check` until it returns something true, which is returned."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception as e:  # a widget may vanish while it is read
            if isinstance(e, AssertionError):
                raise
            last_error = e
        if time.monotonic() > deadline:
            extra = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}{extra}")
        time.sleep(interval)


def _read_line(fd: int, proc: subprocess.Popen, what: str, timeout: float = 20.0) -> str:
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"{what} did not start")
        chunk = os.read(fd, 256)
        if not chunk:
            break
        data += chunk
    os.close(fd)
    return data.decode().strip()


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Xvfb:
    def __init__(self, width: int = 1024, height: int = 800):
        r, w = os.pipe()
        self.proc = subprocess.Popen(
            ["Xvfb", "-displayfd", str(w), "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp", "-noreset"],
            pass_fds=(w,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(w)
        self.display = f":{int(_read_line(r, self.proc, 'Xvfb'))}"

    def stop(self) -> None:
        _stop(self.proc)


def has_owner(bus_address: str, name: str) -> bool:
    r = subprocess.run(
        ["dbus-send", f"--bus={bus_address}", "--print-reply", "--dest=org.freedesktop.DBus",
         "/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner", f"string:{name}"],
        capture_output=True, text=True, timeout=10,
    )
    return r.returncode == 0 and "boolean true" in r.stdout


class Desktop:
    """Xvfb, a session bus (the e2e suite's lpk.SessionBus: a real
    `dbus-daemon --session` with its own configuration and address) and the
    accessibility bus on it: what a desktop session gives an app. `env` is
    what its clients need."""

    def __init__(self, workdir: Path, session_bus):
        self.workdir = Path(workdir)
        self.x = Xvfb()
        self.bus = session_bus
        runtime = self.workdir / "runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        env = {k: v for k, v in os.environ.items()
               if k not in ("WAYLAND_DISPLAY", "GTK_A11Y", "NO_AT_BRIDGE", "AT_SPI_BUS_ADDRESS")}
        # XDG_RUNTIME_DIR: the accessibility bus's socket in a directory of
        # this run's own, not in a shared ~/.cache/at-spi.
        env.update(DISPLAY=self.x.display, GDK_BACKEND="x11", DBUS_SESSION_BUS_ADDRESS=self.bus.address,
                   XDG_RUNTIME_DIR=str(runtime), GSETTINGS_BACKEND="memory", NO_COLOR="1")
        self.env = env
        self.a11y_log = self.workdir / "at-spi-bus-launcher.log"
        with open(self.a11y_log, "wb") as log:
            self.a11y = subprocess.Popen(
                [str(A11Y_LAUNCHER), "--launch-immediately"],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )
        wait_for("the accessibility bus (org.a11y.Bus) on the session bus",
                 lambda: has_owner(self.bus.address, "org.a11y.Bus"))
        # pyatspi (libatspi) finds the accessibility bus through the session
        # bus of its own environment, read when it is first imported.
        os.environ["DBUS_SESSION_BUS_ADDRESS"] = self.bus.address
        os.environ["DISPLAY"] = self.x.display
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
        os.environ.pop("AT_SPI_BUS_ADDRESS", None)
        import pyatspi
        self.atspi = pyatspi
        wait_for("the accessibility registry", lambda: pyatspi.Registry.getDesktop(0) is not None)

    def app(self, pid: int):
        """The accessible application of process `pid` (several runs of the
        app may be on this desktop at once)."""
        desktop = self.atspi.Registry.getDesktop(0)
        for i in range(desktop.childCount):
            a = desktop.getChildAtIndex(i)
            try:
                if a is not None and a.get_process_id() == pid:
                    return a
            except Exception:
                continue
        return None

    def screenshot(self, name: str) -> Path:
        OUT.mkdir(parents=True, exist_ok=True)
        path = OUT / f"{name}.png"
        subprocess.run(["import", "-window", "root", str(path)], env=self.env, check=True, timeout=30,
                       capture_output=True)
        return path

    def keys(self, title: str, *keys: str) -> None:
        """Presses keys in a window, as a keyboard does (XTEST); with no
        window manager here, the window is given the focus first."""
        r = subprocess.run(["xdotool", "search", "--name", f"^{title}$", "windowfocus", "--sync",
                            "key", "--delay", "80", *keys], env=self.env, capture_output=True, text=True,
                           timeout=20)
        assert r.returncode == 0, f"xdotool key failed: {r.stderr}"

    def stop(self) -> None:
        _stop(self.a11y)
        self.x.stop()


def same_name(actual: str, wanted: str) -> bool:
    """GTK 4.8 names a button by its accessible label followed by the text
    of its content ("Retry Retry"): either form is the same name."""
    return actual == wanted or actual.startswith(wanted + " ")


class Ui:
    """The app's accessibility tree, read the way a screen reader reads it.

    Only widgets on screen count: GTK keeps hidden copies of some widgets
    (a squeezer's other child, a stack's other pages) in the tree, and a
    person cannot press what they cannot see. GTK 4.8 sets STATE_SHOWING on
    windows only, so a widget counts as on screen when it is VISIBLE (the
    app marks the pages its stacks do not show as hidden) and its Component
    extents have an area (a squeezer's unused child is 0x0); nothing is
    ever clicked by its position.
    """

    def __init__(self, desktop: Desktop, app, proc: subprocess.Popen | None = None):
        self.desktop = desktop
        self.atspi = desktop.atspi
        self.app = app
        self.proc = proc
        # No cache: nothing here runs libatspi's main loop, so cached names
        # and children would never learn of the app's changes.
        try:
            from gi.repository import Atspi
            app.set_cache_mask(Atspi.Cache.NONE)
        except Exception:
            pass

    def _showing(self, acc) -> bool:
        try:
            ifaces = acc.get_interfaces()
            if not acc.getState().contains(self.atspi.STATE_VISIBLE):
                return False
        except Exception:
            return False
        if "Component" not in ifaces:
            return True  # e.g. a GtkStackPage: its child decides
        try:
            e = acc.queryComponent().getExtents(1)  # window coordinates
        except Exception:
            return False
        return e.width > 0 and e.height > 0

    def walk(self, root=None):
        """Every showing accessible under `root` (default: every window)."""
        root = root or self.app
        stack = [root]
        while stack:
            acc = stack.pop()
            yield acc
            try:
                n = acc.childCount
            except Exception:
                continue
            children = []
            for i in range(n):
                try:
                    c = acc.getChildAtIndex(i)
                except Exception:
                    c = None
                if c is not None and (acc is self.app or self._showing(c)):
                    children.append(c)
            stack.extend(reversed(children))

    def all(self, role: str | None = None, name=None, root=None) -> list:
        """`name`: exact text, or a callable on the name."""
        found = []
        for acc in self.walk(root):
            try:
                if role is not None and acc.getRoleName() != role:
                    continue
                n = acc.name or ""
            except Exception:
                continue
            if name is None or (name(n) if callable(name) else same_name(n, name)):
                found.append(acc)
        return found

    def check_alive(self) -> None:
        """A crash of the app is said as such, not as a widget that never came."""
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"localpasskey-manager died: exit status {self.proc.returncode}"
                                 " (negative: killed by that signal)")

    def find(self, role: str | None, name, root=None, timeout: float = 20.0):
        try:
            return wait_for(f"a showing {role or 'widget'} named {name!r}",
                            lambda: (self.all(role, name, root) or [None])[0], timeout)
        except AssertionError as e:
            self.check_alive()
            raise AssertionError(f"{e}; on screen: {self.outline(root)}") from None

    def outline(self, root=None) -> str:
        """The named widgets on screen, for a failure's message."""
        out = []
        for acc in self.walk(root):
            try:
                if acc.name and acc.getRoleName() not in ("label", "filler", "panel"):
                    out.append(f"{acc.getRoleName()} {acc.name!r}")
            except Exception:
                continue
        return "; ".join(out)

    def gone(self, role: str | None, name, root=None, timeout: float = 20.0) -> None:
        wait_for(f"no showing {role or 'widget'} named {name!r}",
                 lambda: not self.all(role, name, root), timeout)

    def texts(self, root=None) -> list[str]:
        """The text of every showing label, in reading order."""
        return [a.name for a in self.all("label", root=root) if a.name]

    def has_text(self, text: str, root=None) -> bool:
        return any(text in t for t in self.texts(root))

    def wait_text(self, text: str, root=None, timeout: float = 20.0) -> None:
        wait_for(f"a label with {text!r}", lambda: self.has_text(text, root), timeout)

    def toasts(self) -> list[str]:
        """The texts of the toasts on screen. Each is an AdwToastWidget, a
        child of the toast overlay a few levels under the window, beside the
        window's content; only those are read, never the content: a toast
        lasts five seconds, and on a loaded machine a walk of a whole page
        takes longer than that, so a toast shown during one walk is gone
        before the next."""
        window = next(w for w in self.windows() if w is not None and w.getRoleName() == "frame")
        texts = []
        level = [window]
        for _ in range(4):
            below = []
            for acc in level:
                for i in range(acc.childCount):
                    child = acc.getChildAtIndex(i)
                    if child is None:
                        continue
                    if child.name == "AdwToastWidget":
                        texts += self.texts(child)
                    else:
                        below.append(child)
            level = below
        return texts

    def wait_toast(self, text: str, timeout: float = 20.0) -> None:
        seen: set[str] = set()

        def shown() -> bool:
            now = self.toasts()
            seen.update(now)
            return text in now

        try:
            wait_for(f"a toast saying {text!r}", shown, timeout, interval=0.02)
        except AssertionError as e:
            self.check_alive()
            window = next(w for w in self.windows() if w is not None and w.getRoleName() == "frame")
            def tree(a, d=0):
                out = [("  " * d) + f"{a.getRoleName()} {a.name!r}"]
                if d < 3:
                    for i in range(a.childCount):
                        out += tree(a.getChildAtIndex(i), d + 1)
                return out
            raise AssertionError(f"{e}; toasts seen meanwhile: {sorted(seen)}; " + "\n".join(tree(window))) from None

    def press(self, acc) -> None:
        """Activates a button through its accessible action, as a screen
        reader or a switch device does."""
        action = acc.queryAction()
        names = [action.getName(i) for i in range(action.nActions)]
        index = names.index("click") if "click" in names else 0
        assert action.nActions > 0, f"{acc.getRoleName()} {acc.name!r} has no action"
        action.doAction(index)

    def press_button(self, name, root=None, role: str = "push button", timeout: float = 20.0) -> None:
        self.press(self.find(role, name, root, timeout))

    def windows(self) -> list:
        try:
            return [self.app.getChildAtIndex(i) for i in range(self.app.childCount)]
        except Exception:
            self.check_alive()
            raise

    def window(self, name: str, timeout: float = 20.0):
        return wait_for(f"a window named {name!r}",
                        lambda: next((w for w in self.windows() if w is not None and w.name == name
                                      and self._showing(w)), None), timeout)


    def dialogs(self) -> list:
        return [w for w in self.windows() if w is not None and w.getRoleName() == "dialog" and self._showing(w)]

    def dialog(self, timeout: float = 20.0):
        """The dialog on screen (an AdwMessageDialog's window has no name)."""
        return wait_for("a dialog", lambda: (self.dialogs() or [None])[0], timeout)

    def no_dialog(self, timeout: float = 20.0) -> None:
        wait_for("no dialog on screen", lambda: not self.dialogs(), timeout)


class Manager:
    """One run of the real app on `desktop`. `config_dir` is its
    XDG_CONFIG_HOME (where it remembers that the backup advice was shown)."""

    def __init__(self, desktop: Desktop, config_dir: Path, first_run: bool = False):
        self.desktop = desktop
        self.config_dir = Path(config_dir)
        self.marker = self.config_dir / "localpasskey-manager" / "backup-advice-seen"
        if not first_run:
            self.marker.parent.mkdir(parents=True, exist_ok=True)
            self.marker.write_text("")
        self.log = desktop.workdir / f"manager-{time.monotonic_ns()}.log"
        # MALLOC_PERTURB_: glibc fills freed memory with a pattern, so a
        # use-after-free in the app or its libraries (libadwaita 1.2 had one
        # in its toasts) crashes every time instead of once in a while.
        env = dict(desktop.env, XDG_CONFIG_HOME=str(self.config_dir), MALLOC_PERTURB_="165")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([str(manager_binary())], env=env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
        app = wait_for("localpasskey-manager in the accessibility tree",
                       lambda: self._alive() and desktop.app(self.proc.pid))
        self.ui = Ui(desktop, app, self.proc)
        self.window = self.ui.window("LocalPasskey")

    def _alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"localpasskey-manager exited {self.proc.returncode}:\n{self.stderr()}")
        return True

    def stderr(self) -> str:
        text = self.log.read_text(errors="replace")
        # GTK's harmless note for every position an AT asks for under X11.
        return "\n".join(l for l in text.splitlines() if "Screen coordinates not supported" not in l
                         and l.strip())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Its accessible application must leave the registry before the next.
        wait_for("the app to leave the accessibility tree",
                 lambda: self.desktop.app(self.proc.pid) is None, timeout=10)
