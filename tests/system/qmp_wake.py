"""The hand that wakes the suspended laptop, for tests/system/run.sh.

    qmp_wake.py QMP_SOCKET EVENT_LOG

Connects to qemu's QMP socket, logs the guest's power events (SUSPEND,
WAKEUP, RESET, SHUTDOWN) with the time, and answers every SUSPEND with
`system_wakeup` two seconds later, as someone opening the lid would. Ends
when qemu closes the socket.
"""

import json
import socket
import sys
import time

sock_path, log_path = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX)
for _ in range(600):
    try:
        s.connect(sock_path)
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit(f"qmp_wake: no QMP socket at {sock_path}")
f = s.makefile("rw")


def send(cmd: str) -> None:
    f.write(json.dumps({"execute": cmd}) + "\n")
    f.flush()


def log(what: str) -> None:
    with open(log_path, "a") as out:
        out.write(f"{time.time():.3f} {what}\n")


f.readline()  # the greeting
send("qmp_capabilities")
for line in f:
    msg = json.loads(line)
    event = msg.get("event")
    if event:
        log(event)
    if event == "SUSPEND":
        time.sleep(2)
        send("system_wakeup")
        log("system_wakeup sent")
