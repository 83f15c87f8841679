"""The systemd side of a host install: the unit as `cmake --install` writes it passes `systemd-analyze verify`
(and a broken copy does not), its hardening keeps systemd's exposure score low, egressd speaks sd_notify
(READY, RELOADING, STOPPING) to a NOTIFY_SOCKET, and SIGUSR1 reopens the event files after logrotate renamed
them. Needs systemd-analyze (Debian `systemd`) for the unit tests; the others need only the binary."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from host_support import BINARY, Process, denied_request, install

POLICY = """version: 1
groups:
  api:
    rules:
      - ports: [443]
        destinations: [allowed.example]
clients:
  default:
    groups: [api]
"""


def write_config(directory, logging="  stdout: true\n"):
    (directory / "policy.yaml").write_text(POLICY)
    config = directory / "egressd.yaml"
    config.write_text("version: 1\nlisteners: [127.0.0.1:0]\npolicy: policy.yaml\nworkers: 1\n"
                      "admin: {listen: 127.0.0.1:0}\nreload: {watch: false}\n"
                      "timeouts: {shutdown_grace: 5s}\nlogging:\n" + logging)
    return config


@unittest.skipIf(shutil.which("systemd-analyze") is None, "systemd-analyze is missing (apt-get install systemd)")
class UnitTest(unittest.TestCase):
    """The unit a `cmake --install` writes. Its ExecStart names the binary where the install put it; verify checks
    that path exists, so the copy verified here names the same binary inside the DESTDIR tree."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="egressd-unit-")
        cls.dest = Path(cls.tmp.name) / "dest"
        done = install(cls.dest)
        if done.returncode != 0:
            raise AssertionError("cmake --install failed:\n" + done.stdout + done.stderr)
        cls.installed = (cls.dest / "usr/local/lib/systemd/system/egressd.service").read_text()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def unit_in_destdir(self, text=None):
        text = self.installed if text is None else text
        self.assertIn("ExecStart=/usr/local/bin/egressd run --config /etc/egressd/egressd.yaml\n", text)
        return text.replace("ExecStart=/usr/local/bin/egressd", f"ExecStart={self.dest}/usr/local/bin/egressd")

    def verify(self, text, name="egressd.service"):
        directory = Path(self.tmp.name) / "verify" / name
        directory.mkdir(parents=True, exist_ok=True)
        unit = directory / name
        unit.write_text(text)
        # Documentation=man:... is checked too: against the man pages this install put in place.
        env = dict(os.environ, MANPATH=str(self.dest / "usr/local/share/man"), SYSTEMD_PAGER="", SYSTEMD_LOG_COLOR="0")
        return subprocess.run(["systemd-analyze", "verify", str(unit)], env=env, capture_output=True, text=True,
                              timeout=60)

    def test_installed_unit_verifies(self):
        result = self.verify(self.unit_in_destdir())
        # systemd 252 reports bad settings on stderr and still exits 0: silence is what passes.
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertEqual(result.stdout + result.stderr, "")

    def test_unit_settings(self):
        text = self.installed
        for line in ["Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "User=egressd", "StateDirectory=egressd",
                     "LogsDirectory=egressd", "ConfigurationDirectory=egressd", "NoNewPrivileges=yes",
                     "ProtectSystem=strict", "PrivateTmp=yes", "CapabilityBoundingSet=\n",
                     "SystemCallFilter=@system-service", "LimitNOFILE=65536"]:
            self.assertIn(line if line.endswith("\n") else line + "\n", text)
        stop = int(re.search(r"^TimeoutStopSec=(\d+)s$", text, re.M).group(1))
        # The shipped configuration's drain_delay + shutdown_grace must fit in the stop timeout.
        config = (Path(self.dest) / "etc/egressd/egressd.yaml").read_text()
        grace = int(re.search(r"^\s+shutdown_grace: (\d+)s", config, re.M).group(1))
        drain = int(re.search(r"^\s+drain_delay: (\d+)s", config, re.M).group(1))
        self.assertGreater(stop, grace + drain)

    def test_broken_units_are_refused(self):
        good = self.unit_in_destdir()
        broken = {
            "misspelled key": good.replace("ProtectSystem=strict", "ProtectSystm=strict"),
            "bad value": good.replace("Type=notify", "Type=notifyy"),
            "missing binary": good.replace("/usr/local/bin/egressd run", "/usr/local/bin/egressd-missing run"),
            "bad filter": good.replace("SystemCallFilter=@system-service", "SystemCallFilter=@no-such-set"),
            "missing man page": good.replace("man:egressd(8)", "man:egressd-nothing(8)"),
        }
        for what, text in broken.items():
            with self.subTest(what):
                self.assertNotEqual(text, good)
                result = self.verify(text, name="egressd.service")
                self.assertTrue(result.returncode != 0 or (result.stdout + result.stderr).strip(),
                                f"{what}: systemd-analyze verify said nothing")

    def test_hardening_exposure(self):
        unit = Path(self.tmp.name) / "security" / "egressd.service"
        unit.parent.mkdir(parents=True, exist_ok=True)
        unit.write_text(self.unit_in_destdir())
        # systemd's own exposure score, 0 (locked down) to 10; "OK" is below 4.5. The threshold is in tenths.
        result = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=20", "--no-pager",
                                 str(unit)], capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stdout[-3000:] + result.stderr)
        self.assertRegex(result.stdout, r"Overall exposure level for egressd.service: [01]\.\d")


class NotifyTest(unittest.TestCase):
    """sd_notify as systemd's Type=notify sees it: a datagram socket this test owns as NOTIFY_SOCKET."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="egressd-notify-")
        self.addCleanup(self.tmp.cleanup)
        self.socket_path = os.path.join(self.tmp.name, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(self.sock.close)
        self.sock.bind(self.socket_path)
        self.sock.settimeout(20.0)

    def next_state(self):
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            self.fail("no notification within 20 s")
        return dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)

    def test_ready_reloading_stopping(self):
        config = write_config(Path(self.tmp.name))
        env = dict(os.environ, NOTIFY_SOCKET=self.socket_path)
        process = Process([str(BINARY), "run", "--config", str(config)], env=env)
        self.addCleanup(process.stop)

        self.assertEqual(self.next_state(), {"READY": "1"})
        # READY comes once the proxy serves: the listener answers at once.
        status, _ = denied_request(process.listener_port())
        self.assertEqual(status, 403)

        for round_number in range(2):
            before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            process.signal(signal.SIGHUP)
            reloading = self.next_state()
            after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            self.assertEqual(reloading.get("RELOADING"), "1", reloading)
            # systemd 253+ matches the reload to its ExecReload= by this CLOCK_MONOTONIC stamp.
            self.assertTrue(before <= int(reloading["MONOTONIC_USEC"]) <= after, reloading)
            self.assertEqual(self.next_state(), {"READY": "1"})
            process.output.wait_for("egressd.reload", count=round_number + 1)

        process.signal(signal.SIGTERM)
        self.assertEqual(self.next_state(), {"STOPPING": "1"})
        self.assertEqual(process.stop(), 0)

    def test_failed_reload_still_ends_with_ready(self):
        config = write_config(Path(self.tmp.name))
        env = dict(os.environ, NOTIFY_SOCKET=self.socket_path)
        process = Process([str(BINARY), "run", "--config", str(config)], env=env)
        self.addCleanup(process.stop)
        self.assertEqual(self.next_state(), {"READY": "1"})

        (Path(self.tmp.name) / "policy.yaml").write_text("version: 1\nnot_a_key: 1\n")
        process.signal(signal.SIGHUP)
        self.assertEqual(self.next_state().get("RELOADING"), "1")
        # The old policy serves on: systemctl reload must return rather than wait for a READY that never comes.
        self.assertEqual(self.next_state(), {"READY": "1"})
        process.output.wait_for("egressd.reload_failed")
        self.assertEqual(process.proc.poll(), None)

    def test_without_notify_socket_nothing_is_sent(self):
        config = write_config(Path(self.tmp.name))
        env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        process = Process([str(BINARY), "run", "--config", str(config)], env=env)
        self.addCleanup(process.stop)
        process.listener_port()
        process.signal(signal.SIGHUP)
        process.output.wait_for("egressd.reload")
        self.assertEqual(process.stop(), 0)
        self.sock.settimeout(0.5)
        with self.assertRaises(socket.timeout):
            self.sock.recv(4096)


class LogReopenTest(unittest.TestCase):
    """logrotate's way: rename the files, then SIGUSR1. Lines written before the signal stay in the renamed file
    (also those written between the rename and the signal), later ones go to a new file at the configured path;
    none is lost or written twice."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="egressd-logs-")
        self.addCleanup(self.tmp.cleanup)
        self.dir = Path(self.tmp.name)

    @staticmethod
    def request_ids(path):
        # Between a rotation's rename and the new file's creation the path is briefly missing: exists() then
        # read_text() would race it.
        try:
            text = path.read_text()
        except FileNotFoundError:
            return []
        ids = []
        for line in text.splitlines():
            match = re.search(r'"event":"egress\.deny".*?"request_id":"([0-9a-f]+)"', line)
            if match:
                ids.append(match.group(1))
        return ids

    def wait_ids(self, path, wanted, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if set(wanted) <= set(self.request_ids(path)):
                return
            time.sleep(0.05)
        self.fail(f"{path.name}: missing {sorted(set(wanted) - set(self.request_ids(path)))}")

    def wait_for_last(self, current, rotated, request_id):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and request_id not in self.request_ids(current) + self.request_ids(rotated):
            time.sleep(0.05)

    def deny(self, port, count):
        ids = []
        for _ in range(count):
            status, request_id = denied_request(port)
            self.assertEqual(status, 403)
            self.assertTrue(request_id)
            ids.append(request_id)
        return ids

    def test_sigusr1_reopens_renamed_files(self):
        events, denials = self.dir / "events.log", self.dir / "deny.log"
        config = write_config(self.dir, logging=f"  stdout: true\n  file: {{path: {events}}}\n"
                                                f"  deny_file: {{path: {denials}}}\n")
        process = Process([str(BINARY), "run", "--config", str(config)])
        self.addCleanup(process.stop)
        port = process.listener_port()

        first = self.deny(port, 5)
        for path in (events, denials):
            self.wait_ids(path, first)
            path.rename(path.with_name(path.name + ".1"))
        # After the rename and before the signal, egressd still writes to the renamed file.
        between = self.deny(port, 3)
        for path in (events, denials):
            self.wait_ids(path.with_name(path.name + ".1"), between)

        process.signal(signal.SIGUSR1)
        # The signal is handled on egressd's control thread: until it has been, denials still go to the renamed
        # files. Deny one at a time until one lands in each new file (bounded), then the rest must all land there.
        probes = []
        for _ in range(50):
            probes += self.deny(port, 1)
            for path in (events, denials):
                self.wait_for_last(path, path.with_name(path.name + ".1"), probes[-1])
            if all(probes[-1] in self.request_ids(path) for path in (events, denials)):
                break
        after = self.deny(port, 4)
        for path in (events, denials):
            self.wait_ids(path, after)
            old = self.request_ids(path.with_name(path.name + ".1"))
            new = self.request_ids(path)
            self.assertEqual(old[:len(first + between)], first + between, path.name)
            self.assertEqual(old + new, first + between + probes + after, path.name)
            self.assertEqual(new[-len(after):], after, path.name)
            self.assertIn(probes[-1], new, path.name)

        # The signal is handled, not fatal, and repeats.
        process.signal(signal.SIGUSR1)
        again = self.deny(port, 2)
        self.wait_ids(events, again)
        self.assertEqual(self.request_ids(events)[-len(after + again):], after + again)
        self.assertEqual(process.stop(), 0)

    def test_own_rotation_still_works(self):
        events = self.dir / "events.log"
        config = write_config(self.dir, logging=f"  stdout: false\n"
                                                f"  file: {{path: {events}, max_bytes: 4096, max_files: 3}}\n")
        process = Process([str(BINARY), "run", "--config", str(config)])
        self.addCleanup(process.stop)
        port_file_wait = time.monotonic() + 20
        while time.monotonic() < port_file_wait and "egressd.listening" not in (events.read_text()
                                                                               if events.exists() else ""):
            time.sleep(0.05)
        listening = [line for line in events.read_text().splitlines() if "egressd.listening" in line]
        self.assertTrue(listening)
        port = int(re.search(r'"address":"127\.0\.0\.1:(\d+)"', listening[0]).group(1))

        # A deny event is about 450 bytes: a few dozen make several rotations of 4 KiB. Denied until the third
        # older file appears (how many fit depends on the events' sizes), bounded.
        rotated, oldest = self.dir / "events.1.log", self.dir / "events.3.log"
        ids = []
        deadline = time.monotonic() + 30
        while not oldest.exists() and len(ids) < 300 and time.monotonic() < deadline:
            ids += self.deny(port, 5)
            self.wait_for_last(events, rotated, ids[-1])
        # Rotated by size, keeping max_files older files. (A file may pass max_bytes by one write: a worker's batch
        # of events is written whole, after the rotation it caused.)
        self.assertTrue(rotated.exists())
        self.assertTrue(oldest.exists(), f"no {oldest.name} after {len(ids)} denials")
        # Two more rotations: the oldest file is dropped, never a fourth kept.
        ids += self.deny(port, 20)
        self.wait_for_last(events, rotated, ids[-1])
        self.assertFalse((self.dir / "events.4.log").exists())
        process.signal(signal.SIGUSR1)
        more = self.deny(port, 1)
        self.wait_ids(events, more)
        self.assertEqual(process.stop(), 0)


if __name__ == "__main__":
    unittest.main()
