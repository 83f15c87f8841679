"""The alert stream, end to end: the real egressd with `alerts:` sinks posting to loopback receivers and to a real
Prometheus Alertmanager (Debian's prometheus-alertmanager).

A burst of denials for one (client, host, port, reason) is one alert, then one summary with the count when the
dedup window closes; another key is another alert; a webhook's body is signed with its secret file's key, re-read
on reload. A sink answering 500 gets retries, its failures and drops are counted on /metrics, and the proxy keeps
answering meanwhile. Alertmanager accepts the payload: the alert shows up in its API with our labels. Mistakes in
the alert settings that only the loader can find (unreadable secret files, unknown reason codes) stop
`egressd config check` with the configuration's file:line:column.
"""

import hashlib
import hmac
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.request

import harness

harness.isolate_network()

SECRET = "e2e-alert-secret-0123456789"
BURST = 300
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


def alerts_yaml(*sinks):
    """An alerts section for egressd.yaml (extra_yaml): one list item per dict, values as JSON (valid YAML)."""
    lines = ["alerts:"]
    for sink in sinks:
        first = True
        for k, v in sink.items():
            lines.append("  %s %s: %s" % ("-" if first else " ", k, json.dumps(v)))
            first = False
    return "\n".join(lines) + "\n"


def bodies(posts):
    return [json.loads(p["body"]) for p in posts]


def alerts_samples(proxy):
    """{(sink, outcome): value} of egressd_alerts_total, and {sink: value} of egressd_alert_queue."""
    _, samples = proxy.metrics()
    totals = {(l.get("sink"), l.get("outcome")): v for n, l, v in samples if n == "egressd_alerts_total"}
    queues = {l.get("sink"): v for n, l, v in samples if n == "egressd_alert_queue"}
    return totals, queues


class AlertTestCase(harness.ProxyTestCase):
    """egressd with the sinks of sinks() (called before the proxy starts); helpers to cause denials."""

    def sinks(self):
        raise NotImplementedError

    def extra_yaml(self):
        return alerts_yaml(*self.sinks())

    def setUp(self):
        self.files = tempfile.mkdtemp(prefix="egressd-alerts-")
        self.addCleanup(shutil.rmtree, self.files, True)
        super().setUp()

    def deny_burst(self, host, port, count):
        """count denied GETs for host:port on one keep-alive connection; each must be a 403."""
        url = "http://%s:%d/x" % (host, port)
        request = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (url, host, port)).encode()
        with self.proxy.connect() as c:
            for _ in range(count):
                c.send(request)
                resp = c.read_response()
                self.assertEqual(resp.status, 403, resp)

    def wait_metric(self, pred, timeout):
        """Polls /metrics until pred(totals, queues) holds (bounded); returns the last (totals, queues)."""
        deadline = time.monotonic() + timeout
        for _ in range(10000):
            totals, queues = alerts_samples(self.proxy)
            if pred(totals, queues) or time.monotonic() > deadline:
                return totals, queues
            time.sleep(0.2)
        return alerts_samples(self.proxy)


class AlertWebhookTest(AlertTestCase):
    """A signed webhook sink with a 5 s dedup window, and a second, unsigned one that takes only would_deny."""

    def setUp(self):
        self.hook = harness.WebhookReceiver()
        self.addCleanup(self.hook.stop)
        self.quiet = harness.WebhookReceiver()
        self.addCleanup(self.quiet.stop)
        super().setUp()

    def sinks(self):
        self.secret_file = os.path.join(self.files, "alert.secret")
        with open(self.secret_file, "w") as f:
            f.write(SECRET + "\n")
        return ({"webhook": self.hook.url, "name": "security-hook", "secret_file": self.secret_file, "dedup": "5s",
                 "severity": {"explicit_deny": "medium"}},
                {"webhook": self.quiet.url, "verdicts": ["would_deny"]})

    def assert_signed(self, post, secret=SECRET):
        h = post["headers"]
        self.assertEqual(h.get("content-type"), "application/json", h)
        ts = h.get("x-egressd-timestamp") or ""
        self.assertRegex(ts, r"^[0-9]+$", h)
        mac = hmac.new(secret.encode(), ts.encode() + b"." + post["body"], hashlib.sha256).hexdigest()
        self.assertEqual(h.get("x-egressd-signature"), "sha256=" + mac, h)

    def is_type(self, kind, port=None):
        def pred(p):
            b = json.loads(p["body"])
            return b["type"] == kind and (port is None or b.get("port") == port)
        return pred

    def test_a_burst_is_one_alert_then_one_summary(self):
        port = self.upstream.port
        self.deny_burst("evil.test", port, BURST)
        alerts = self.hook.wait_posts(1, pred=self.is_type("alert"), timeout=10)
        self.assertEqual(len(alerts), 1, bodies(self.hook.posts))
        alert = json.loads(alerts[0]["body"])
        self.assertEqual((alert["verdict"], alert["client"], alert["host"], alert["port"], alert["reason"]),
                         ("deny", "tests", "evil.test", port, "explicit_deny"), alert)
        self.assertEqual(alert["severity"], "medium", alert)  # the configured one, over the default high
        self.assertEqual(alert["window_seconds"], 5, alert)
        self.assertTrue(alert["instance"], alert)
        self.assert_signed(alerts[0])
        # The window closes 5 s after the first denial: one summary counts the rest of the burst.
        summaries = self.hook.wait_posts(1, pred=self.is_type("summary"), timeout=15)
        self.assertEqual(len(summaries), 1, bodies(self.hook.posts))
        summary = json.loads(summaries[0]["body"])
        self.assertEqual((summary["client"], summary["host"], summary["port"], summary["reason"]),
                         ("tests", "evil.test", port, "explicit_deny"), summary)
        self.assertEqual(alert["count"] + summary["count"], BURST, (alert, summary))
        self.assert_signed(summaries[0])
        # Nothing more for that burst: still one alert and one summary a moment later.
        time.sleep(1.0)
        self.assertEqual(len([p for p in self.hook.posts if self.is_type("alert")(p)]), 1, bodies(self.hook.posts))
        self.assertEqual(len([p for p in self.hook.posts if self.is_type("summary")(p)]), 1, bodies(self.hook.posts))
        # Enforced denials are not what the second sink asked for.
        self.assertEqual(self.quiet.posts, [])

    def test_two_keys_are_two_alerts(self):
        self.deny_burst("evil.test", self.upstream.port, 20)
        self.deny_burst("evil.test", self.other.port, 20)
        self.deny_burst("nowhere.test", self.upstream.port, 20)
        posts = self.hook.wait_posts(3, pred=self.is_type("alert"), timeout=10)
        keys = sorted((b["host"], b["port"], b["reason"]) for b in bodies(posts))
        self.assertEqual(keys, sorted([("evil.test", self.upstream.port, "explicit_deny"),
                                       ("evil.test", self.other.port, "explicit_deny"),
                                       ("nowhere.test", self.upstream.port, "no_matching_rule")]),
                         bodies(self.hook.posts))
        for p in posts:
            self.assert_signed(p)

    def test_report_mode_denials_go_to_the_would_deny_sink(self):
        # 127.0.0.4 is the client "canary", in report mode: its request to the denied name passes, logged as
        # would_deny.
        with self.proxy.connect(source="127.0.0.4") as c:
            c.send("GET %s HTTP/1.1\r\nHost: evil.test\r\n\r\n" % self.up_url(host="evil.test"))
            self.assertEqual(c.read_response().status, 200)
        posts = self.quiet.wait_posts(1, timeout=10)
        self.assertEqual(len(posts), 1, posts)
        body = json.loads(posts[0]["body"])
        self.assertEqual((body["verdict"], body["client"], body["host"], body["reason"]),
                         ("would_deny", "canary", "evil.test", "explicit_deny"), body)
        self.assertNotIn("x-egressd-signature", posts[0]["headers"])
        self.assertEqual([b for b in bodies(self.hook.posts) if b.get("client") == "canary"], [])

    def test_a_reload_re_reads_the_secret(self):
        self.deny_burst("evil.test", self.upstream.port, 1)
        first = self.hook.wait_posts(1, pred=self.is_type("alert"), timeout=10)
        self.assertEqual(len(first), 1, bodies(self.hook.posts))
        self.assert_signed(first[0])
        rotated = "rotated-alert-secret-9876543210"
        with open(self.secret_file, "w") as f:
            f.write(rotated + "\n")
        ev = self.proxy.sighup_reload()
        self.assertEqual(ev["event"], "egressd.reload", ev)
        self.assertEqual(ev["restart_needed"], [], ev)
        self.deny_burst("evil.test", self.other.port, 1)
        second = self.hook.wait_posts(1, pred=self.is_type("alert", port=self.other.port), timeout=10)
        self.assertEqual(len(second), 1, bodies(self.hook.posts))
        self.assert_signed(second[0], secret=rotated)
        # An unreadable secret fails the reload, and the running secret stays.
        os.remove(self.secret_file)
        ev = self.proxy.sighup_reload()
        self.assertEqual(ev["event"], "egressd.reload_failed", ev)
        self.assertTrue(any(self.secret_file in e and "cannot read the secret file" in e for e in ev["errors"]), ev)

    def test_metrics_show_every_sink_and_outcome(self):
        self.deny_burst("evil.test", self.upstream.port, 5)
        totals, queues = self.wait_metric(lambda t, q: t.get(("security-hook", "delivered"), 0) >= 1, timeout=10)
        outcomes = ("alert", "summary", "delivered", "failed", "retried", "dropped", "suppressed", "rate_limited")
        for sink in ("security-hook", "webhook-2"):
            for outcome in outcomes:
                self.assertIn((sink, outcome), totals, totals)
            self.assertIn(sink, queues, queues)
        self.assertEqual(totals[("security-hook", "alert")], 1, totals)
        self.assertEqual(totals[("security-hook", "delivered")], 1, totals)
        self.assertEqual(totals[("security-hook", "suppressed")], 4, totals)
        self.assertEqual(totals[("webhook-2", "alert")], 0, totals)
        text, _ = self.proxy.metrics()
        check = harness.promtool_check(text)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)


class AlertFailingSinkTest(AlertTestCase):
    """A sink that answers 500 to everything, with room for one delivery in its queue."""

    def setUp(self):
        self.hook = harness.WebhookReceiver(statuses=[500] * 100000)
        self.addCleanup(self.hook.stop)
        super().setUp()

    def sinks(self):
        return ({"webhook": self.hook.url, "name": "down", "queue": 1},)

    def test_retries_failures_and_drops_are_counted_while_the_proxy_serves(self):
        # Six keys, six alerts: one in the sender's hands, one queued, the others dropped.
        for host in ("evil.test", "nowhere.test", "a.nowhere.test", "b.nowhere.test", "c.nowhere.test",
                     "d.nowhere.test"):
            self.deny_burst(host, self.upstream.port, 3)
        # The proxy answers as usual while the sink fails: every allowed request is served.
        served = 0
        deadline = time.monotonic() + 60
        totals = {}
        for _ in range(1000):
            resp = self.get(self.up_url())
            self.assertEqual(resp.status, 200, resp)
            served += 1
            totals, _ = alerts_samples(self.proxy)
            if totals.get(("down", "failed"), 0) >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        self.assertGreaterEqual(totals.get(("down", "alert"), 0), 6, totals)
        self.assertGreaterEqual(totals.get(("down", "retried"), 0), 1, totals)
        self.assertGreaterEqual(totals.get(("down", "failed"), 0), 1, totals)
        self.assertGreaterEqual(totals.get(("down", "dropped"), 0), 1, totals)
        self.assertEqual(totals.get(("down", "delivered"), 0), 0, totals)
        self.assertGreater(served, 1)
        self.assertGreaterEqual(len(self.hook.posts), 2, "the sink saw no retry")
        # Still serving after all that.
        self.assertEqual(self.get(self.up_url()).status, 200)
        self.deny_burst("evil.test", self.upstream.port, 1)


def alertmanager_missing():
    return not os.path.exists(ALERTMANAGER)


class Alertmanager:
    """A real Alertmanager on a free loopback port: no clustering, storage in a temporary directory, a route
    to a receiver that sends nothing anywhere."""

    def __init__(self, directory):
        config = os.path.join(directory, "alertmanager.yml")
        with open(config, "w") as f:
            f.write('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
        storage = os.path.join(directory, "data")
        os.mkdir(storage)
        self.log = open(os.path.join(directory, "alertmanager.log"), "wb")
        self.proc = None
        for _ in range(5):
            self.port = harness.free_port()
            self.url = "http://127.0.0.1:%d" % self.port
            self.proc = subprocess.Popen(
                [ALERTMANAGER, "--config.file=" + config, "--storage.path=" + storage,
                 "--web.listen-address=127.0.0.1:%d" % self.port, "--cluster.listen-address=", "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
            if self._wait_ready(20.0):
                return
            self.stop()
        output = self.output()
        self.log.close()
        raise AssertionError("Alertmanager never became ready:\n" + output)

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        for _ in range(1000):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                return False
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def alerts(self):
        with urllib.request.urlopen(self.url + "/api/v2/alerts", timeout=5) as resp:
            return json.loads(resp.read())

    def output(self):
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read().decode("utf-8", "replace")[-4000:]

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def close(self):
        self.stop()
        self.log.close()


@unittest.skipIf(alertmanager_missing() and not os.environ.get("CI"),
                 "prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)")
class AlertmanagerTest(AlertTestCase):
    """An alertmanager sink pointed at a real Alertmanager."""

    def setUp(self):
        if alertmanager_missing():
            self.fail("%s is missing: CI must install prometheus-alertmanager (scripts/bootstrap)" % ALERTMANAGER)
        self.am_dir = tempfile.mkdtemp(prefix="egressd-am-")
        self.addCleanup(shutil.rmtree, self.am_dir, True)
        self.am = Alertmanager(self.am_dir)
        self.addCleanup(self.am.close)
        super().setUp()

    def sinks(self):
        return ({"alertmanager": self.am.url, "name": "am"},)

    def test_alertmanager_accepts_the_alert(self):
        port = self.upstream.port
        self.deny_burst("evil.test", port, 3)
        deadline = time.monotonic() + 20
        found = []
        for _ in range(200):
            found = [a for a in self.am.alerts() if a["labels"].get("alertname") == "EgressDenied"]
            if found or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(len(found), 1, "no EgressDenied alert in Alertmanager\n" + self.am.output())
        labels = found[0]["labels"]
        self.assertEqual((labels.get("client"), labels.get("host"), labels.get("port"), labels.get("reason")),
                         ("tests", "evil.test", str(port), "explicit_deny"), labels)
        self.assertEqual(labels.get("verdict"), "deny", labels)
        self.assertEqual(labels.get("severity"), "high", labels)
        self.assertTrue(labels.get("instance"), labels)
        self.assertEqual(found[0]["status"]["state"], "active", found[0])
        self.assertTrue(found[0]["annotations"].get("summary"), found[0])
        totals, _ = self.wait_metric(lambda t, q: t.get(("am", "delivered"), 0) >= 1, timeout=10)
        self.assertEqual(totals.get(("am", "delivered")), 1, totals)
        self.assertEqual(totals.get(("am", "failed")), 0, totals)


POLICY = """version: 1
groups:
  web:
    rules:
      - ports: [80]
        destinations: [example.test]
clients:
  all:
    sources: [127.0.0.1/32]
    groups: [web]
"""


class AlertConfigCheckTest(unittest.TestCase):
    """What only the loader can find is reported by `egressd config check`, with the setting's position."""

    def check(self, alerts):
        d = tempfile.mkdtemp(prefix="egressd-alerts-check-")
        self.addCleanup(shutil.rmtree, d, True)
        with open(os.path.join(d, "policy.yaml"), "w") as f:
            f.write(POLICY)
        path = os.path.join(d, "egressd.yaml")
        with open(path, "w") as f:
            f.write("version: 1\npolicy: policy.yaml\nadmin: off\n" + alerts)
        proc = subprocess.run([harness.egressd_binary(), "config", "check", path], capture_output=True, timeout=30,
                              cwd=d)
        return d, path, proc.returncode, (proc.stdout + proc.stderr).decode()

    def test_good_settings_pass(self):
        d = tempfile.mkdtemp(prefix="egressd-alerts-secret-")
        self.addCleanup(shutil.rmtree, d, True)
        secret = os.path.join(d, "s")
        with open(secret, "w") as f:
            f.write(SECRET)
        _, _, rc, out = self.check(alerts_yaml({"webhook": "http://127.0.0.1:9/x", "secret_file": secret,
                                                "reasons": ["explicit_deny", "proxy_auth_failed"],
                                                "severity": {"dns_nxdomain": "low"}}))
        self.assertEqual(rc, 0, out)

    def test_unreadable_secret_and_unknown_reasons_are_named_with_their_positions(self):
        _, path, rc, out = self.check(alerts_yaml(
            {"webhook": "http://127.0.0.1:9/x", "secret_file": "missing.secret"},  # line 5, secret at 6:18
            {"slack": "http://127.0.0.1:9/y", "name": "chat", "reasons": ["explicit_deny", "evil_reason"],
             "severity": {"no_such_reason": "high"}}))  # sink at line 7:5
        self.assertNotEqual(rc, 0, out)
        missing = os.path.join(os.path.dirname(path), "missing.secret")
        self.assertIn("%s:6:18: error: %s: cannot read the secret file" % (path, missing), out)
        self.assertIn("%s:7:5: error: alert sink 'chat': unknown reason 'evil_reason' in reasons" % path, out)
        self.assertIn("%s:7:5: error: alert sink 'chat': unknown reason 'no_such_reason' in severity" % path, out)


if __name__ == "__main__":
    unittest.main()
