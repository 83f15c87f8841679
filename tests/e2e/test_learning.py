"""Learning a policy, the round trip with the real binary: a client with no groups runs in report mode while it
reaches several destinations (names, a family of sibling names, a tunnel, an IP literal, and a name on the deny
list); `egressd policy suggest` turns the recorded events into a policy; `egressd policy check` accepts it; `egressd
policy replay` shows it allows what was seen; loaded with SIGHUP, it lets the same requests through in enforce
mode and refuses a destination never seen, and the deny list still wins.
"""

import json
import os
import subprocess

import harness

harness.isolate_network()

LEARNER = "127.0.0.5"  # the learning client's source address
SIBLINGS = ["s%d.svc.test" % i for i in range(1, 6)]  # five names under one parent: collapsed to "*.svc.test"
UNSEEN_SIBLING = "s9.svc.test"  # never asked for while learning, yet inside the collapsed pattern


class LearningRoundTrip(harness.ProxyTestCase):
    def dns_records(self):
        records = harness.default_records()
        for name in SIBLINGS + [UNSEEN_SIBLING]:
            records[name] = {"A": ["127.0.0.1"], "ttl": 60}
        return records

    def policy_text(self):
        ports = harness._yaml_list(self.web_ports())
        return f"""version: 1
mode: enforce
address_guard:
  except: [loopback]        # the test's destinations all live on loopback
groups:
  web:
    rules:
      - ports: {ports}
        destinations: [allowed.test]
clients:
  tests:
    sources: [127.0.0.1/32]
    groups: [web]
  learner:
    description: a new workload, learning what it needs
    sources: [{LEARNER}/32]
    groups: []
    mode: report
deny:
  - description: the deny list wins, in report mode too
    destinations: [evil.test]
"""

    # -- the binary's commands ----------------------------------------------------------------------------
    def egressd(self, *args):
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        return subprocess.run([harness.egressd_binary(), *args], capture_output=True, timeout=60, env=env, text=True)

    # -- requests from the learning client ----------------------------------------------------------------
    def fetch(self, host, port=None):
        with self.proxy.connect(source=LEARNER, timeout=5) as c:
            return self.get(self.up_url(host, port=port), conn=c)

    def tunnel(self, authority):
        """CONNECT authority (the echo server); the response, and for a 200 the echo checked."""
        with self.proxy.connect(source=LEARNER, timeout=5) as c:
            c.send("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority))
            resp = c.read_response(method="CONNECT")
            if resp.status == 200:
                payload = b"learned tunnel\n"
                c.send(payload)
                self.assertEqual(c.recv_exact(len(payload), timeout=5), payload)
            return resp

    def traffic(self):
        """What the learning client does: (kind, target) pairs, every one of them answered 200 in report mode."""
        up, echo = self.upstream.port, self.echo.port
        return ([("GET", "allowed.test")] + [("GET", name) for name in SIBLINGS] +
                [("CONNECT", "allowed.test:%d" % echo), ("CONNECT", "127.0.0.1:%d" % echo)]), up

    def run_traffic(self):
        requests, _ = self.traffic()
        for kind, target in requests:
            resp = self.fetch(target) if kind == "GET" else self.tunnel(target)
            self.assertEqual(resp.status, 200, "%s %s: %r" % (kind, target, resp))
        return len(requests)

    def record_learning(self):
        """Runs the traffic, plus a request to a denied name, in report mode; returns the events file."""
        count = self.run_traffic()
        resp = self.fetch("evil.test")
        self.assertEqual(resp.status, 200, "report mode lets it through: %r" % resp)
        # One decision per request; a CONNECT logs its name phase and its tunnel phase, both under its id.
        self.proxy.wait_event(event="egress.would_deny", host="evil.test", timeout=10)
        decisions = self.proxy.events(event="egress.would_deny", client="learner")
        self.assertEqual(len({e["request_id"] for e in decisions}), count + 1, self.proxy.dump_events())
        reasons = sorted({e["reason"] for e in decisions})
        self.assertEqual(reasons, ["explicit_deny", "no_matching_rule"], decisions)
        # The events file, as `egressd run > events.log` writes it (operational egressd.* lines included).
        path = os.path.join(self.tmp.name, "events.log")
        with self.proxy.lock:
            lines = list(self.proxy.raw_lines)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def suggest(self, events):
        result = self.egressd("policy", "suggest", "--events", events, "--policy", self.proxy.policy_path,
                              "--client", "learner")
        self.assertEqual(result.returncode, 0, result.stderr)
        learned = os.path.join(self.tmp.name, "learned.yaml")
        with open(learned, "w") as f:
            f.write(result.stdout)
        return learned, result.stdout

    def test_suggested_policy_checks_replays_and_enforces_what_was_seen(self):
        events = self.record_learning()
        learned, text = self.suggest(events)

        # What was suggested: exact names, the collapsed siblings, the literal; never the denied name.
        for destination in ['"allowed.test"', '"*.svc.test"', '"127.0.0.1/32"']:
            self.assertIn("- %s" % destination, text)
        self.assertNotIn('- "evil.test"', text)
        self.assertNotIn('- "s1.svc.test"', text)
        self.assertIn("sources: [%s/32]" % LEARNER, text)  # copied from the current policy
        self.assertIn("groups: [learned-learner]", text)
        self.assertIn("destinations: [evil.test]", text)  # the deny list, copied
        self.assertIn("1 decision(s) with reason explicit_deny", text)

        check = self.egressd("policy", "check", learned)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assertIn("valid", check.stdout)

        # Replayed against the recorded decisions: nothing allowed before is denied, and every suggested
        # observation is newly allowed; the denied name stays denied.
        replay = self.egressd("policy", "replay", learned, "--events", events, "--client", "learner", "--json")
        self.assertEqual(replay.returncode, 0, replay.stdout + replay.stderr)
        report = json.loads(replay.stdout)
        newly_allowed = {(row["host"], row["port"]) for row in report["newly_allowed"]}
        requests, up = self.traffic()
        for kind, target in requests:
            host, port = (target, up) if kind == "GET" else (target.rsplit(":", 1)[0], int(target.rsplit(":", 1)[1]))
            self.assertIn((host, port), newly_allowed, report)
        self.assertNotIn(("evil.test", up), newly_allowed, report)

        # Enforced: the learned policy replaces the current one.
        with open(learned) as f:
            self.proxy.write_policy(f.read())
        reload = self.proxy.sighup_reload()
        self.assertEqual(reload["event"], "egressd.reload", reload)
        mark = self.proxy.event_count()
        self.run_traffic()
        allowed = self.proxy.wait_events(len(requests), event="egress.allow", client="learner", timeout=10)
        self.assertGreaterEqual(len(allowed), len(requests), self.proxy.dump_events())
        self.assertTrue(all(e["mode"] == "enforce" for e in allowed), allowed)

        # A sibling never seen is inside the collapsed pattern; anything else never seen is refused.
        resp = self.fetch(UNSEEN_SIBLING)
        self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)
        for host, port, reason in [("other.test", None, "no_matching_rule"),
                                   ("allowed.test", self.other.port, "port_not_allowed"),
                                   ("evil.test", None, "explicit_deny")]:
            resp = self.fetch(host, port)
            self.assertEqual((resp.status, resp.header("X-Egressd-Reason")), (403, reason), resp)
            ev = self.proxy.wait_for_event("egress.deny", host=host, after=mark)
            self.assertEqual((ev["client"], ev["reason"]), ("learner", reason), ev)
        resp = self.tunnel("127.0.0.1:%d" % self.other.port)
        self.assertEqual((resp.status, resp.header("X-Egressd-Reason")), (403, "port_not_allowed"), resp)


if __name__ == "__main__":
    import unittest

    unittest.main()
