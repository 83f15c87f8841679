"""What the host-installation tests share: where the build is, an install into a DESTDIR, and an egressd process
whose events are read from its standard output (listeners on port 0, so tests can run in parallel)."""

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

SOURCE_DIR = Path(os.environ.get("EGRESSD_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BUILD_DIR = Path(os.environ.get("EGRESSD_BUILD_DIR", SOURCE_DIR / "build" / "ci"))
BINARY = Path(os.environ.get("EGRESSD_BINARY", BUILD_DIR / "proxy" / "egressd"))
TEST_ROOTFS = Path(os.environ.get("EGRESSD_TEST_ROOTFS", SOURCE_DIR / "build" / "rootfs"))

MAN_PAGES = {"egressd.8": "man8", "egressd.yaml.5": "man5", "egressd-policy.5": "man5"}


def install(destdir, prefix="/usr/local"):
    """`cmake --install` of this build into destdir; returns the completed process (the caller checks it)."""
    env = dict(os.environ, DESTDIR=str(destdir))
    return subprocess.run(["cmake", "--install", str(BUILD_DIR), "--prefix", prefix], env=env, capture_output=True,
                          text=True, timeout=120)


class EventStream:
    """Reads a process's standard output line by line on a thread, keeping the JSON events."""

    def __init__(self, stream):
        self.events = []
        self.lines = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream):
        for line in stream:
            with self._lock:
                self.lines.append(line)
                try:
                    self.events.append(json.loads(line))
                except ValueError:
                    pass

    def join(self, timeout=10.0):
        self._thread.join(timeout)

    def wait_for(self, kind, count=1, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = [e for e in self.events if e.get("event") == kind]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        with self._lock:
            seen = "".join(self.lines[-20:])
        raise AssertionError(f"no {count} {kind} event(s) within {timeout}s; output so far:\n{seen}")


class Process:
    """egressd started with argv; stops it by its PID (SIGTERM, then SIGKILL) when the test ends."""

    def __init__(self, argv, env=None, cwd=None):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                     cwd=cwd)
        self.output = EventStream(self.proc.stdout)

    def listener_port(self, timeout=20.0):
        self.output.wait_for("egressd.start", timeout=timeout)
        listening = self.output.wait_for("egressd.listening", timeout=1)[0]
        return int(listening["address"].rsplit(":", 1)[1])

    def signal(self, number):
        self.proc.send_signal(number)

    def stop(self, timeout=30.0):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.output.join()
        if not self.proc.stdout.closed:
            self.proc.stdout.close()
        return self.proc.returncode


def denied_request(port, host="blocked.example", timeout=10.0):
    """A plain-HTTP request no policy rule allows: egressd answers 403 itself, before any DNS or upstream.
    Returns (status, request id)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET http://{host}/ HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in data and time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    status = int(head[0].split(" ")[1])
    request_id = ""
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "x-egressd-request-id":
            request_id = value.strip()
    return status, request_id
