"""Start-up: a bad configuration or policy never serves; a listener that cannot bind stops start-up."""

import os
import socket
import subprocess
import tempfile
import unittest

import harness

harness.isolate_network()


class StartupTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="egressd-e2e-")
        self.addCleanup(self.tmp.cleanup)

    def run_egressd(self, config, policy):
        with open(os.path.join(self.tmp.name, "policy.yaml"), "w") as f:
            f.write(policy)
        path = os.path.join(self.tmp.name, "egressd.yaml")
        with open(path, "w") as f:
            f.write(config)
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        # A process that starts serving despite a bad configuration is killed by the timeout and fails.
        return subprocess.run([harness.egressd_binary(), "run", "--config", path], capture_output=True, timeout=10,
                              env=env, stdin=subprocess.DEVNULL)

    GOOD_POLICY = "version: 1\nclients:\n  c:\n    sources: [127.0.0.1/32]\n    groups: []\n"

    def config(self, listener="127.0.0.1:0", extra=""):
        return ('version: 1\nlisteners: ["%s"]\npolicy: policy.yaml\nworkers: 1\n'
                'dns:\n  servers: ["127.0.0.1:9"]\n%s' % (listener, extra))

    def test_invalid_policy(self):
        policy = "version: 1\nclients:\n  c:\n    sources: [10.0.0.1/8]\n    groups: [nope]\n"
        r = self.run_egressd(self.config(), policy)
        self.assertEqual(r.returncode, 1, r)
        self.assertNotIn(b"egressd.listening", r.stdout)
        err = r.stderr.decode()
        self.assertIn("policy.yaml:", err)
        self.assertRegex(err, r"policy\.yaml:\d+:\d+: error")

    def test_unknown_config_key(self):
        r = self.run_egressd(self.config(extra="limits:\n  max_hed_bytes: 10\n"), self.GOOD_POLICY)
        self.assertEqual(r.returncode, 1, r)
        self.assertNotIn(b"egressd.listening", r.stdout)
        self.assertRegex(r.stderr.decode(), r"egressd\.yaml:\d+:\d+: error.*max_hed_bytes")

    def test_listener_in_use(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)  # no SO_REUSEPORT: egressd cannot join this port
        try:
            r = self.run_egressd(self.config(listener="127.0.0.1:%d" % s.getsockname()[1]), self.GOOD_POLICY)
        finally:
            s.close()
        self.assertNotEqual(r.returncode, 0, r)
        self.assertNotIn(b"egressd.listening", r.stdout)
        self.assertIn(b"cannot", r.stderr)


if __name__ == "__main__":
    unittest.main()
