"""The README's quick start: the shipped egressd.yaml and policy.yaml, driven as the README shows.

The listeners are moved to 127.0.0.1:0 (3128 may be taken) and DNS to the test responder; everything else is
the shipped file. Only the denials are checked end to end: allowed names would need the real internet.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

import harness
from harness import DnsServer, egressd_binary

harness.isolate_network()

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLES = os.path.join(ROOT, "config", "examples")


class ExampleConfigTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="egressd-example-")
        self.dns = DnsServer()
        shutil.copy(os.path.join(EXAMPLES, "policy.yaml"), self.dir)
        with open(os.path.join(EXAMPLES, "egressd.yaml")) as f:
            text = f.read()
        text = re.sub(r"listeners:\n(  - .*\n)+", "listeners:\n  - 127.0.0.1:0\n", text)
        text = text.replace("servers: []", "servers: [127.0.0.1:%d]" % self.dns.port)
        self.config = os.path.join(self.dir, "egressd.yaml")
        with open(self.config, "w") as f:
            f.write(text)
        self.events = []
        self.proc = subprocess.Popen([egressd_binary(), "run", "--config", self.config], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        threading.Thread(target=self._read, daemon=True).start()
        self.port = None
        for _ in range(100):
            listening = [e for e in self.events if e.get("event") == "egressd.listening"]
            if listening:
                self.port = int(listening[0]["address"].rpartition(":")[2])
                break
            time.sleep(0.1)
        if self.port is None:
            self.proc.kill()
            self.fail("the shipped config did not start: %s" % self.proc.communicate(timeout=10)[1])

    def _read(self):
        for raw in self.proc.stdout:
            try:
                self.events.append(json.loads(raw))
            except ValueError:
                pass

    def tearDown(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.dns.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def denials(self, reason):
        # Events are flushed every 200 ms: give them a moment.
        for _ in range(50):
            found = [e for e in self.events if e.get("event") == "egress.deny" and e.get("reason") == reason]
            if found:
                return found
            time.sleep(0.1)
        return []

    def curl(self, url):
        out = subprocess.run(["curl", "-sS", "-i", "--max-time", "10", "-x", "http://127.0.0.1:%d" % self.port, url],
                             capture_output=True, timeout=20)
        head = out.stdout.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        status = int(head.split(" ", 2)[1]) if head.startswith("HTTP/") else 0
        reason = re.search(r"(?im)^x-egressd-reason: *(\S+)", head)
        return status, reason.group(1) if reason else None

    def test_the_shipped_config_checks(self):
        out = subprocess.run([egressd_binary(), "config", "check", os.path.join(EXAMPLES, "egressd.yaml")],
                             capture_output=True, timeout=20)
        self.assertEqual(out.returncode, 0, out.stderr)

    def test_readme_denials(self):
        self.assertEqual(self.curl("http://example.com/"), (403, "no_matching_rule"))
        self.assertEqual(self.curl("http://pastebin.com/"), (403, "explicit_deny"))
        self.assertEqual(self.curl("http://deb.debian.org:8080/"), (403, "port_not_allowed"))
        for reason in ("no_matching_rule", "explicit_deny", "port_not_allowed"):
            events = self.denials(reason)
            self.assertEqual(len(events), 1, reason)
            self.assertEqual(events[0]["client"], "local-trial")


if __name__ == "__main__":
    unittest.main()
