"""The README's quick start: the shipped egressd.yaml and policy.yaml, driven as the README shows.

The listeners are moved to 127.0.0.1:0 (3128 may be taken) and DNS to the test responder; everything else is
the shipped file. Only the denials are checked end to end: allowed names would need the real internet.
"""
import json
import os
import re
import shutil
import signal
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


class _ServedExample(unittest.TestCase):
    """Runs egressd on a copy of shipped example files, in a temporary directory, with DNS on the responder."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="egressd-example-")
        self.dns = DnsServer()
        self.proc = None
        self.events = []

    def start(self, config):
        self.config = config
        self.proc = subprocess.Popen([egressd_binary(), "run", "--config", config], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.stderr = harness.StderrWatch(self.proc)
        for _ in range(100):
            listening = [e for e in self.events if e.get("event") == "egressd.listening"]
            if listening:
                return [int(e["address"].rpartition(":")[2]) for e in listening]
            time.sleep(0.1)
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.stderr.check()
        self.fail("the shipped config did not start: %s" % "\n".join(self.stderr.lines))

    def _read(self):
        for raw in self.proc.stdout:
            try:
                self.events.append(json.loads(raw))
            except ValueError:
                pass

    def tearDown(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.reader.join(timeout=5)  # it ends at the end of egressd's output
            self.proc.stdout.close()
        self.dns.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.proc is not None:
            self.stderr.check()
            self.proc.stderr.close()

    def wait_events(self, match):
        # Events are flushed every 200 ms: give them a moment.
        for _ in range(50):
            found = [e for e in self.events if match(e)]
            if found:
                return found
            time.sleep(0.1)
        return []


class ExampleConfigTest(_ServedExample):
    def setUp(self):
        super().setUp()
        for name in ("policy.yaml", "approvers.passwd", "requesters.passwd"):
            shutil.copy(os.path.join(EXAMPLES, name), self.dir)
        with open(os.path.join(EXAMPLES, "egressd.yaml")) as f:
            text = f.read()
        text = re.sub(r"listeners:\n(  - .*\n)+", "listeners:\n  - 127.0.0.1:0\n", text)
        text = text.replace("servers: []", "servers: [127.0.0.1:%d]" % self.dns.port)
        config = os.path.join(self.dir, "egressd.yaml")
        with open(config, "w") as f:
            f.write(text)
        self.port = self.start(config)[0]

    def denials(self, reason):
        return self.wait_events(lambda e: e.get("event") == "egress.deny" and e.get("reason") == reason)

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


class ExampleMtlsTest(_ServedExample):
    """The README's client-certificate walk-through: egressd-certs, egressd-mtls.yaml, curl over an HTTPS proxy,
    revocation and SIGHUP. The PKI is made in the copy's pki/ as the README makes config/examples/pki/."""

    CERTS = os.path.join(ROOT, "certs", "egressd-certs")

    def setUp(self):
        super().setUp()
        shutil.copy(os.path.join(EXAMPLES, "policy.yaml"), self.dir)
        pki = os.path.join(self.dir, "pki")
        for args in (["ca", pki], ["server", pki, "proxy"],
                     ["client", pki, "batch", "--uri", "spiffe://example.org/ns/batch/sa/worker"]):
            out = subprocess.run([self.CERTS] + args, capture_output=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
        with open(os.path.join(EXAMPLES, "egressd-mtls.yaml")) as f:
            text = f.read()
        self.assertIn("127.0.0.1:3128", text)
        self.assertIn("address: 127.0.0.1:3129", text)
        text = text.replace("127.0.0.1:3128", "127.0.0.1:0").replace("address: 127.0.0.1:3129", "address: 127.0.0.1:0")
        text += "dns:\n  servers: [127.0.0.1:%d]\n" % self.dns.port
        config = os.path.join(self.dir, "egressd-mtls.yaml")
        with open(config, "w") as f:
            f.write(text)
        self.pki = pki
        self.plain_port, self.tls_port = self.start(config)

    def curl(self, url, cert=True):
        # localhost, as in the README: the server certificate names it (and 127.0.0.1, ::1).
        args = ["curl", "-sS", "-i", "--max-time", "10", "--proxy", "https://localhost:%d" % self.tls_port,
                "--proxy-cacert", os.path.join(self.pki, "ca.pem")]
        if cert:
            args += ["--proxy-cert", os.path.join(self.pki, "batch.pem"),
                     "--proxy-key", os.path.join(self.pki, "batch.key")]
        out = subprocess.run(args + [url], capture_output=True, timeout=20)
        head = out.stdout.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        status = int(head.split(" ", 2)[1]) if head.startswith("HTTP/") else 0
        reason = re.search(r"(?im)^x-egressd-reason: *(\S+)", head)
        return status, reason.group(1) if reason else None

    def test_the_listeners_say_what_they_are(self):
        tls = {e["address"]: e["tls"] for e in self.events if e.get("event") == "egressd.listening"}
        self.assertEqual(tls, {"127.0.0.1:%d" % self.plain_port: "off",
                               "127.0.0.1:%d" % self.tls_port: "client_certificate_required"})
        out = subprocess.run([egressd_binary(), "config", "check", self.config], capture_output=True, timeout=20)
        self.assertEqual(out.returncode, 0, out.stderr)

    def test_readme_walkthrough(self):
        self.assertEqual(self.curl("http://pastebin.com/"), (403, "explicit_deny"))
        denied = self.wait_events(lambda e: e.get("event") == "egress.deny" and e.get("reason") == "explicit_deny")
        self.assertEqual(len(denied), 1)
        self.assertEqual((denied[0]["client"], denied[0]["identity"], denied[0]["identity_source"]),
                         ("batch-jobs", "spiffe://example.org/ns/batch/sa/worker", "mtls"))
        # The batch-jobs identity may use the mirrors' ports only: the name phase says so before any DNS.
        self.assertEqual(self.curl("http://deb.debian.org:8080/"), (403, "port_not_allowed"))

        self.assertEqual(self.curl("http://pastebin.com/", cert=False), (0, None))
        self.assertEqual(len(self.wait_events(lambda e: e.get("reason") == "client_cert_missing")), 1)

        out = subprocess.run([self.CERTS, "revoke", self.pki, "batch"], capture_output=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        # The example watches its files, so the new CRL may already be in force; SIGHUP makes sure of it.
        self.proc.send_signal(signal.SIGHUP)
        reloads = self.wait_events(lambda e: e.get("event") == "egressd.reload" and e.get("trigger") == "SIGHUP")
        self.assertEqual(len(reloads), 1)
        self.assertEqual(self.curl("http://pastebin.com/"), (0, None))
        rejected = self.wait_events(lambda e: e.get("reason") == "client_cert_rejected")
        self.assertEqual(len(rejected), 1)
        self.assertEqual(rejected[0]["detail"], "certificate revoked")
        self.assertEqual(self.dns.names_seen(), [], "every request here is refused before DNS")


if __name__ == "__main__":
    unittest.main()
