"""The offline policy tools on what a real egressd wrote: traffic through the proxy (allowed, denied, denied by
the deny list, and would-deny for the report-mode client), its event stream saved to a file, then
`egressd events summary` and `egressd policy replay` run as a user would run them, exit codes included."""

import json
import os
import subprocess
import tempfile
import unittest

import harness

harness.isolate_network()


def egressd(*args, stdin_text=None, timeout=30):
    """Runs the egressd binary with args (and stdin_text on its standard input); returns the CompletedProcess."""
    if stdin_text is None:
        return subprocess.run([harness.egressd_binary(), *args], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    return subprocess.run([harness.egressd_binary(), *args], capture_output=True, text=True, timeout=timeout,
                          input=stdin_text)


def make_traffic(case):
    """Through case.proxy: three allowed GETs to allowed.test and one to a.wild.test, two denials
    (no_matching_rule) and one deny-list denial for the tests client, one would-deny for the report-mode canary.
    Waits until every decision is in the stream, then saves the stream to a file; returns its path."""
    ok = [case.get(case.up_url()) for _ in range(3)]
    case.assertEqual([r.status for r in ok], [200, 200, 200])
    case.assertEqual(case.get(case.up_url("a.wild.test")).status, 200)
    for _ in range(2):
        case.assertEqual(case.get(case.up_url("denied.test")).status, 403)
    case.assertEqual(case.get(case.up_url("evil.test")).status, 403)
    with case.proxy.connect(source="127.0.0.4") as c:
        case.assertEqual(case.get(case.up_url("denied.test"), conn=c).status, 200)
    # Closes may come later; nothing reads them.
    case.assertEqual(len(case.proxy.wait_events(4, event="egress.allow", timeout=5.0)), 4)
    case.assertEqual(len(case.proxy.wait_events(3, event="egress.deny", timeout=5.0)), 3)
    case.proxy.wait_event(event="egress.would_deny")
    path = os.path.join(case.tmp.name, "events.log")
    with case.proxy.lock:
        lines = list(case.proxy.raw_lines)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def write_candidate(case, text):
    path = os.path.join(case.tmp.name, "candidate.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def without_allowed_test(case):
    """The test policy with allowed.test dropped from the upstream ports' rule."""
    text = case.policy_text()
    dropped = text.replace('["allowed.test", ".wild.test"', '[".wild.test"', 1)
    case.assertNotEqual(dropped, text)
    return dropped


class PolicyToolsTest(harness.ProxyTestCase):

    def setUp(self):
        super().setUp()
        self.events_path = make_traffic(self)

    def candidate(self, text):
        return write_candidate(self, text)

    def test_events_summary(self):
        r = egressd("events", "summary", self.events_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        port = self.upstream.port
        self.assertIn("4 allowed, 3 denied, 1 would deny", r.stdout)
        denied = r.stdout[r.stdout.index("Denied (egress.deny): 3"):r.stdout.index("Would deny")]
        rows = [line for line in denied.splitlines() if line.startswith("  ") and "COUNT" not in line]
        self.assertEqual(len(rows), 2, r.stdout)
        # Most frequent first.
        self.assertRegex(rows[0], r"^\s+2  tests\s+denied\.test:%d\s+no_matching_rule " % port)
        self.assertRegex(rows[1], r"^\s+1  tests\s+evil\.test:%d\s+explicit_deny " % port)
        self.assertRegex(r.stdout, r"1  canary\s+denied\.test:%d\s+no_matching_rule" % port)

        r = egressd("events", "summary", self.events_path, "--client", "canary", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["denied_total"], 0)
        self.assertEqual(doc["would_deny_total"], 1)
        self.assertEqual(doc["would_deny"][0]["host"], "denied.test")
        self.assertEqual(doc["would_deny"][0]["client"], "canary")

        # The events are from the last minutes: an hour back includes them all, a time ahead none.
        r = egressd("events", "summary", self.events_path, "--since", "1h", "--json")
        self.assertEqual(json.loads(r.stdout)["denied_total"], 3, r.stdout)
        r = egressd("events", "summary", self.events_path, "--since", "2999-01-01T00:00:00Z", "--json")
        self.assertEqual(json.loads(r.stdout)["denied_total"], 0, r.stdout)

        # "-" reads standard input, as in `tail -n 10000 events.log | egressd events summary -`.
        with open(self.events_path) as f:
            r = egressd("events", "summary", "-", "--json", stdin_text=f.read())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["denied_total"], 3, r.stdout)

        r = egressd("events", "summary", os.path.join(self.tmp.name, "missing.log"))
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("cannot open", r.stderr)

    def test_replay_of_the_same_policy_changes_nothing(self):
        r = egressd("policy", "replay", self.proxy.policy_path, "--events", self.events_path)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("replayed 8 decision(s) (4 allowed, 4 denied or would deny)", r.stdout)
        self.assertIn("Newly denied (allowed before): 0 decision(s)", r.stdout)
        self.assertIn("Newly allowed (denied before): 0 decision(s)", r.stdout)
        self.assertIn("ok: nothing allowed before would be denied", r.stdout)

    def test_replay_of_a_candidate_that_drops_a_destination_exits_4(self):
        dropped = without_allowed_test(self)
        r = egressd("policy", "replay", self.candidate(dropped), "--events", self.events_path)
        self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
        self.assertIn("Newly denied (allowed before): 3 decision(s), 1 row(s)", r.stdout)
        # port_not_allowed when the IPv6 echo rule names allowed.test on its own port.
        self.assertRegex(r.stdout, r"3  tests\s+allowed\.test:%d\s+allowed\s+"
                         r"deny \[(no_matching_rule|port_not_allowed)\]"
                         % self.upstream.port)
        self.assertNotIn("a.wild.test", r.stdout)
        self.assertIn("FAIL: 3 decision(s) allowed before would be denied", r.stdout)

        r = egressd("policy", "replay", self.candidate(dropped), "--events", self.events_path, "--json")
        self.assertEqual(r.returncode, 4, r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual([(row["client"], row["host"], row["port"], row["count"]) for row in doc["newly_denied"]],
                         [("tests", "allowed.test", self.upstream.port, 3)])

    def test_replay_of_a_candidate_that_opens_a_destination(self):
        text = self.policy_text()
        opened = text.replace('["allowed.test", ".wild.test"', '["allowed.test", "denied.test", ".wild.test"', 1)
        self.assertNotEqual(opened, text)
        r = egressd("policy", "replay", self.candidate(opened), "--events", self.events_path, "--json")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["newly_denied_total"], 0)
        # The tests client's two denials and the canary's would-deny.
        self.assertEqual(sorted((row["client"], row["host"], row["count"]) for row in doc["newly_allowed"]),
                         [("canary", "denied.test", 1), ("tests", "denied.test", 2)])

    def test_replay_of_an_invalid_candidate_exits_1(self):
        r = egressd("policy", "replay", self.candidate("version: 1\nmode: sometimes\n"), "--events",
                    self.events_path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("candidate.yaml:2:7: error:", r.stderr)


class PolicyToolsFormatsTest(harness.ProxyTestCase):
    """The same traffic logged as ECS or OCSF summarizes and replays exactly as egressd's own format does."""

    def check_format(self, fmt):
        d = tempfile.mkdtemp(dir=self.tmp.name)
        self.proxy = harness.Egressd(d, self.policy_text(), self.dns.port, {"logging": {"format": fmt}})
        self.addCleanup(self._stop_proxy, self.proxy)
        events = make_traffic(self)
        with open(events) as f:
            first = json.loads(f.readline())
        self.assertIn("class_uid" if fmt == "ocsf" else "@timestamp", first)

        r = egressd("events", "summary", events, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        doc = json.loads(r.stdout)
        self.assertEqual((doc["unreadable"], doc["allowed"], doc["denied_total"], doc["would_deny_total"]),
                         (0, 4, 3, 1), r.stdout)
        port = self.upstream.port
        self.assertEqual([(row["client"], row["host"], row["port"], row["reason"], row["count"])
                          for row in doc["denied"]],
                         [("tests", "denied.test", port, "no_matching_rule", 2),
                          ("tests", "evil.test", port, "explicit_deny", 1)])

        r = egressd("policy", "replay", self.proxy.policy_path, "--events", events)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("replayed 8 decision(s) (4 allowed, 4 denied or would deny)", r.stdout)

        r = egressd("policy", "replay", write_candidate(self, without_allowed_test(self)), "--events", events,
                    "--json")
        self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual([(row["client"], row["host"], row["port"], row["count"]) for row in doc["newly_denied"]],
                         [("tests", "allowed.test", port, 3)])

    def test_ecs(self):
        self.check_format("ecs")

    def test_ocsf(self):
        self.check_format("ocsf")


if __name__ == "__main__":
    unittest.main()
