"""Reloads: SIGHUP, POST /reload and changes of the policy files (in place, by rename, a policy directory gaining
a file) apply a new policy to new requests, with an egressd.reload event that names the new version and digest.
A broken policy changes nothing and lists every error as file:line:column. Settings that only a restart can apply
are reported in restart_needed, never applied or ignored in silence. The credentials file is reloaded too. A
burst of SIGHUPs ends with the latest policy in force, and a policy of a million names reloads while traffic
flows, without a failed request.
"""

import base64
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import unittest

import harness

harness.isolate_network()

HEX64 = re.compile(r"^[0-9a-f]{64}$")
BURST_HOSTS = ["h%d.test" % i for i in range(1, 6)]


class ReloadBase(harness.ProxyTestCase):
    """Helpers; no tests of its own. Subclasses set `watch` (reload.watch)."""

    watch = False

    def extra_yaml(self):
        return harness.admin_yaml() + harness.reload_yaml(watch=self.watch)

    def dns_records(self):
        records = harness.default_records()
        for name in BURST_HOSTS + ["late.test", "public.test"]:
            records[name] = {"A": ["127.0.0.1"], "ttl": 60}
        return records

    def make_policy(self, names, deny=(), extra_groups=""):
        """One client (tests) and one group (web) with two rules: `names`, and 127.0.0.1 by address."""
        ports = harness._yaml_list([self.upstream.port, self.echo.port])
        text = f"""version: 1
mode: enforce
groups:
  web:
    description: the names this version of the policy allows
    rules:
      - description: names on the test upstreams
        ports: {ports}
        destinations: {harness._yaml_list(names)}
      - description: loopback by address (this opens 127.0.0.1 through the address guard)
        ports: {ports}
        destinations: [127.0.0.1/32]
{extra_groups}clients:
  tests:
    description: the test process
    sources: [127.0.0.1/32, "::1/128"]
    groups: [web]
"""
        if deny:
            text += "deny:\n  - description: denied\n    destinations: %s\n" % harness._yaml_list(deny)
        return text

    def policy_text(self):
        return self.make_policy(["allowed.test"])

    # -- requests --------------------------------------------------------------------------------------
    def fetch(self, host, proxy=None, headers=()):
        proxy = proxy or self.proxy
        with proxy.connect(timeout=5) as c:
            return self.get(self.up_url(host), headers=headers, conn=c)

    def assert_allowed(self, host, proxy=None):
        resp = self.fetch(host, proxy)
        self.assertEqual((resp.status, resp.body), (200, b"hello"), "%s: %r" % (host, resp))

    def assert_denied(self, host, reason="no_matching_rule", proxy=None):
        resp = self.fetch(host, proxy)
        self.assertEqual((resp.status, resp.header("X-Egressd-Reason")), (403, reason), "%s: %r" % (host, resp))

    # -- reload events ---------------------------------------------------------------------------------
    def start_digest(self, proxy=None):
        ev = (proxy or self.proxy).wait_event(event="egressd.start")
        self.assertRegex(ev["policy_digest"], HEX64)
        return ev["policy_digest"]

    def assert_reloaded(self, ev, trigger, version, previous_digest, rules=2, clients=1):
        """An egressd.reload event with every field the specification names, of the right type."""
        self.assertEqual(ev["event"], "egressd.reload", ev)
        self.assertEqual((ev["trigger"], ev["policy_version"], ev["previous_version"]),
                         (trigger, version, version - 1), ev)
        self.assertRegex(ev["policy_digest"], HEX64)
        self.assertNotEqual(ev["policy_digest"], previous_digest, "a changed policy kept its digest")
        if rules is not None:
            self.assertEqual(ev["rules"], rules, ev)
        if clients is not None:
            self.assertEqual(ev["clients"], clients, ev)
        self.assertFalse(ev["warnings"], ev)
        self.assertIsInstance(ev["took_ms"], int, ev)
        self.assertGreaterEqual(ev["took_ms"], 0, ev)
        self.assertEqual(ev["restart_needed"], [], ev)
        return ev

    def assert_in_force(self, ev, proxy=None):
        """/status and /metrics name the policy of the reload event `ev`."""
        proxy = proxy or self.proxy
        status = proxy.admin_json("/status")
        self.assertEqual((status["policy"]["version"], status["policy"]["digest"]),
                         (ev["policy_version"], ev["policy_digest"]), status)
        _, samples = proxy.metrics()
        self.assertEqual(harness.metric_value(samples, "egressd_policy_version"), ev["policy_version"])
        self.assertEqual(harness.metric_value(samples, "egressd_policy_info", digest=ev["policy_digest"]), 1)
        return status

    def assert_no_reload(self, mark, wait, proxy=None):
        time.sleep(wait)
        self.assertEqual((proxy or self.proxy).reload_events(mark), [])


class ReloadTest(ReloadBase):
    """Reloads by SIGHUP and POST /reload, with reload.watch off (so that nothing else reloads)."""

    def test_sighup_applies_changed_policy(self):
        digest = self.start_digest()
        self.assert_allowed("allowed.test")
        self.assert_denied("other.test")
        mark = self.proxy.event_count()
        self.proxy.write_policy(self.make_policy(["other.test"]))
        # reload.watch is off: writing the file alone changes nothing.
        self.assert_no_reload(mark, 1.0)
        self.assert_allowed("allowed.test")
        ev = self.proxy.sighup_reload()
        self.assert_reloaded(ev, "SIGHUP", 2, digest)
        self.assert_allowed("other.test")
        self.assert_denied("allowed.test")
        status = self.assert_in_force(ev)
        last = status["last_reload"]
        self.assertEqual((last["result"], last["trigger"], last["errors"], last["restart_needed"]),
                         ("ok", "SIGHUP", [], []), last)
        self.assertIsNone(self.proxy.proc.poll())

    def test_admin_reload_applies_changed_policy(self):
        digest = self.start_digest()
        self.assert_denied("other.test")
        self.proxy.write_policy(self.make_policy(["other.test"]))
        mark = self.proxy.event_count()
        resp = self.proxy.admin_post("/reload")
        self.assertEqual(resp.status, 200, resp)
        body = json.loads(resp.body)
        ev = self.proxy.wait_reload(mark)
        self.assert_reloaded(ev, "admin", 2, digest)
        self.assertEqual(body, {"result": "ok", "policy_version": 2, "policy_digest": ev["policy_digest"],
                                "restart_needed": [], "warnings": []})
        self.assertEqual(len(self.proxy.reload_events(mark)), 1)
        self.assert_allowed("other.test")
        self.assert_denied("allowed.test")
        self.assertEqual(self.assert_in_force(ev)["last_reload"]["trigger"], "admin")

    def test_broken_policy_changes_nothing_and_names_every_error(self):
        digest = self.start_digest()
        # Valid but for two unknown keys on two lines; its valid part would allow other.test, so a reload that
        # applied any of it would show.
        lines = self.make_policy(["allowed.test", "other.test"]).split("\n")
        group_at = lines.index("    rules:")
        lines.insert(group_at, "    colour: red")
        client_at = lines.index("    groups: [web]")
        lines.insert(client_at, "    shade: blue")
        broken = "\n".join(lines)
        errors_at = [(group_at + 1, 5, "colour"), (client_at + 1, 5, "shade")]
        self.proxy.write_policy(broken)

        def assert_errors(errors):
            self.assertEqual(len(errors), 2, errors)
            for e, (line, col, key) in zip(errors, errors_at):
                self.assertRegex(e, r"^(%s|policy\.yaml):%d:%d: error: .*%s" % (
                    re.escape(self.proxy.policy_path), line, col, key))

        ev = self.proxy.sighup_reload()
        self.assertEqual((ev["event"], ev["trigger"], ev["policy_version"]), ("egressd.reload_failed", "SIGHUP", 1),
                         ev)
        assert_errors(ev["errors"])
        self.assert_allowed("allowed.test")
        self.assert_denied("other.test")
        _, samples = self.proxy.metrics()
        self.assertEqual(harness.metric_value(samples, "egressd_reloads_total", result="failed"), 1)
        self.assertEqual(harness.metric_value(samples, "egressd_policy_version"), 1)
        self.assertEqual(harness.metric_value(samples, "egressd_policy_info", digest=digest), 1)
        # The same through POST /reload: 422, the same errors, the version unchanged.
        mark = self.proxy.event_count()
        resp = self.proxy.admin_post("/reload")
        self.assertEqual(resp.status, 422, resp)
        body = json.loads(resp.body)
        self.assertEqual((body["result"], body["policy_version"]), ("failed", 1), body)
        self.assertEqual(body["errors"], ev["errors"])
        failed = self.proxy.wait_reload(mark)
        self.assertEqual((failed["event"], failed["trigger"], failed["errors"]),
                         ("egressd.reload_failed", "admin", ev["errors"]), failed)
        status = self.proxy.admin_json("/status")
        self.assertEqual((status["policy"]["version"], status["policy"]["digest"]), (1, digest), status)
        last = status["last_reload"]
        self.assertEqual((last["result"], last["trigger"], last["errors"]), ("failed", "admin", ev["errors"]), last)
        _, samples = self.proxy.metrics()
        self.assertEqual(harness.metric_value(samples, "egressd_reloads_total", result="failed"), 2)
        self.assert_denied("other.test")
        # Fixed, the next reload takes it.
        self.proxy.write_policy(self.make_policy(["allowed.test", "other.test"]))
        resp = self.proxy.admin_post("/reload")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(json.loads(resp.body)["policy_version"], 2, resp)
        self.assert_allowed("other.test")

    def rewrite_config(self, replacements, proxy=None):
        proxy = proxy or self.proxy
        with open(proxy.config_path) as f:
            text = f.read()
        for old, new in replacements:
            self.assertEqual(text.count(old), 1, (old, text))
            text = text.replace(old, new)
        with open(proxy.config_path, "w") as f:
            f.write(text)

    def test_restart_needed_when_listeners_change(self):
        digest = self.start_digest()
        spare = socket.socket()
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]
        spare.close()
        self.rewrite_config([('listeners: ["127.0.0.1:0"]', 'listeners: ["127.0.0.1:0", "127.0.0.1:%d"]' % port)])
        self.proxy.write_policy(self.make_policy(["other.test"]))
        mark = self.proxy.event_count()
        ev = self.proxy.sighup_reload()
        # The policy is applied; the listeners are not, and the event says so.
        self.assertEqual((ev["event"], ev["trigger"], ev["policy_version"]), ("egressd.reload", "SIGHUP", 2), ev)
        self.assertNotEqual(ev["policy_digest"], digest)
        self.assertEqual(ev["restart_needed"], ["listeners"], ev)
        warn = self.proxy.wait_for_event("egressd.restart_needed", after=mark)
        self.assertEqual(warn["settings"], ["listeners"], warn)
        self.assert_allowed("other.test")
        with self.assertRaises(ConnectionRefusedError, msg="a new listener was opened by a reload"):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        self.assertEqual(self.proxy.events(event="egressd.listening", address="127.0.0.1:%d" % port), [])
        status = self.proxy.admin_json("/status")
        self.assertEqual(status["listeners"], ["127.0.0.1:%d" % self.proxy.port], status)
        self.assertEqual(status["last_reload"]["restart_needed"], ["listeners"], status)
        # Still different from what runs: the next reload says so again.
        resp = self.proxy.admin_post("/reload")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(json.loads(resp.body)["restart_needed"], ["listeners"], resp)

    def test_restart_needed_names_each_setting(self):
        self.start_digest()
        host, port = self.proxy.admin_address()
        spare = socket.socket()
        spare.bind(("127.0.0.1", 0))
        admin_port = spare.getsockname()[1]
        spare.close()
        self.rewrite_config([("workers: 2", "workers: 3"),
                             ("  timeout: 300ms", "  timeout: 400ms"),       # dns
                             ("  queue_size: 65536", "  queue_size: 32768"),  # logging
                             ('  listen: "127.0.0.1:0"', '  listen: "127.0.0.1:%d"' % admin_port),
                             ("  idle: 5s", "  idle: 6s")])                   # applied at once: not listed
        mark = self.proxy.event_count()
        ev = self.proxy.sighup_reload()
        self.assertEqual(ev["event"], "egressd.reload", ev)
        self.assertEqual(sorted(ev["restart_needed"]), ["admin", "dns", "logging", "workers"], ev)
        warn = self.proxy.wait_for_event("egressd.restart_needed", after=mark)
        self.assertEqual(sorted(warn["settings"]), ["admin", "dns", "logging", "workers"], warn)
        # Nothing of it was applied: the admin endpoint is where it was, the workers as many as they were.
        self.assertEqual(self.proxy.admin_address(), (host, port))
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", admin_port), timeout=2).close()
        self.assertEqual(len(self.proxy.events(event="egressd.admin_listening")), 1)
        self.assertEqual(self.proxy.admin_json("/status")["workers"], 2)
        self.assert_allowed("allowed.test")

    def test_sighup_burst_ends_with_latest_policy(self):
        digest = self.start_digest()
        mark = self.proxy.event_count()
        for host in BURST_HOSTS:
            # By rename, so that no reload can read a half-written file.
            self.proxy.write_policy(self.make_policy([host]), rename=True)
            self.proxy.signal(signal.SIGHUP)
        # Wait until the reloads settle: no new reload event for 1.5 s (at most 20 s in all).
        deadline = time.monotonic() + 20
        seen, quiet_since = 0, time.monotonic()
        for _ in range(1000):
            evs = self.proxy.reload_events(mark)
            if len(evs) != seen:
                seen, quiet_since = len(evs), time.monotonic()
            if (seen and time.monotonic() - quiet_since >= 1.5) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        evs = self.proxy.reload_events(mark)
        self.assertGreaterEqual(len(evs), 1, self.proxy.dump_events())
        self.assertLessEqual(len(evs), len(BURST_HOSTS), evs)
        for i, ev in enumerate(evs):
            self.assertEqual((ev["event"], ev["trigger"], ev["policy_version"], ev["previous_version"]),
                             ("egressd.reload", "SIGHUP", 2 + i, 1 + i), ev)
        self.assertNotEqual(evs[-1]["policy_digest"], digest)
        self.assertIsNone(self.proxy.proc.poll(), "SIGHUPs in a burst ended egressd")
        self.assert_in_force(evs[-1])
        self.assert_allowed(BURST_HOSTS[-1])
        for host in BURST_HOSTS[:-1]:
            self.assert_denied(host)
        self.assert_denied("allowed.test")

    # -- a million names -------------------------------------------------------------------------------
    def million_policy(self, variant):
        """1,000 groups of 1,000 names each (1,000,000 domain names), and web: allowed.test (and in variant 2
        late.test) on the HTTP upstream, with 127.0.0.1 by address."""
        port = self.upstream.port
        web_names = ["allowed.test"] + (["late.test"] if variant == 2 else [])
        parts = [f"""version: 1
mode: enforce
groups:
  web:
    rules:
      - ports: [{port}]
        destinations: {harness._yaml_list(web_names)}
      - ports: [{port}]
        destinations: [127.0.0.1/32]
"""]
        for g in range(1000):
            names = ", ".join(["n%d.g%d.v%d.example" % (i, g, variant) for i in range(1000)])
            parts.append("  g%d:\n    rules:\n      - ports: [443]\n        destinations: [%s]\n" % (g, names))
        groups = ", ".join(["web"] + ["g%d" % g for g in range(1000)])
        parts.append("clients:\n  tests:\n    sources: [127.0.0.1/32]\n    groups: [%s]\n" % groups)
        return "".join(parts)

    def test_million_names_reload_under_load(self):
        began = time.monotonic()
        proxy = self.start_proxy(policy_text=self.million_policy(1), extra_yaml=self.extra_yaml(), start_timeout=40)
        self.assertEqual(proxy.wait_event(event="egressd.start")["policy_version"], 1)
        self.assert_allowed("allowed.test", proxy)
        self.assert_denied("late.test", proxy=proxy)
        results = []  # (monotonic time when answered, status or the exception's repr)
        lock = threading.Lock()
        stop = threading.Event()
        url = self.up_url("allowed.test")

        def client_loop():
            loop_deadline = time.monotonic() + 50
            for _ in range(20000):
                if stop.is_set() or time.monotonic() > loop_deadline:
                    return
                try:
                    with proxy.connect(timeout=5) as c:
                        resp = self.get(url, conn=c)
                    outcome = resp.status if resp.body == b"hello" else "%d %r" % (resp.status, resp.body[:50])
                except Exception as e:  # every failure is a result to report
                    outcome = repr(e)
                with lock:
                    results.append((time.monotonic(), outcome))

        def answered(since=0.0):
            with lock:
                return len([r for r in results if r[0] >= since])

        loop = threading.Thread(target=client_loop, name="million-client", daemon=True)
        loop.start()
        try:
            for _ in range(200):
                if answered() >= 20:
                    break
                time.sleep(0.05)
            v2 = self.million_policy(2)
            proxy.write_policy(v2, rename=True)
            mark = proxy.event_count()
            hup = time.monotonic()
            proxy.signal(signal.SIGHUP)
            ev = proxy.wait_reload(mark, timeout=40)
            reloaded = time.monotonic()
            for _ in range(200):
                if answered(reloaded) >= 20:
                    break
                time.sleep(0.05)
        finally:
            stop.set()
            loop.join(timeout=20)
        self.assertFalse(loop.is_alive())
        with lock:
            done = list(results)
        failures = [r for r in done if r[1] != 200]
        self.assertEqual(failures, [], "%d of %d requests failed" % (len(failures), len(done)))
        self.assertEqual((ev["event"], ev["trigger"], ev["policy_version"]), ("egressd.reload", "SIGHUP", 2), ev)
        self.assertEqual((ev["rules"], ev["clients"]), (1002, 1), ev)
        during = len([r for r in done if hup <= r[0] <= reloaded])
        self.assertGreater(during, 0, "no request was answered during the %.1f s reload" % (reloaded - hup))
        self.assertGreaterEqual(answered(reloaded), 20, "too few requests after the reload")
        self.assert_allowed("late.test", proxy)
        self.assertLess(time.monotonic() - began, 90)


class ReloadWatchTest(ReloadBase):
    """Reloads on a change of the files, with no signal (reload.watch on, debounce 500ms)."""

    watch = True

    def wait_file_reload(self, mark, written_at, proxy=None):
        """The reload event after a change written at `written_at` (time.time()): at least the debounce later."""
        ev = (proxy or self.proxy).wait_reload(mark, timeout=10)
        delay = harness.event_time(ev) - written_at
        self.assertGreaterEqual(delay, 0.4, "reloaded %.2f s after the change: no debounce" % delay)
        self.assertLess(delay, 5.0, ev)
        return ev

    def test_file_written_in_place_is_applied(self):
        digest = self.start_digest()
        self.assert_denied("other.test")
        mark = self.proxy.event_count()
        written = time.time()
        self.proxy.write_policy(self.make_policy(["other.test"]))
        ev = self.wait_file_reload(mark, written)
        self.assert_reloaded(ev, "file_change", 2, digest)
        self.assert_allowed("other.test")
        self.assert_denied("allowed.test")
        self.assert_in_force(ev)
        # One write is one reload.
        time.sleep(1.5)
        self.assertEqual(len(self.proxy.reload_events(mark)), 1, self.proxy.reload_events(mark))

    def test_file_replaced_by_rename_is_applied(self):
        digest = self.start_digest()
        mark = self.proxy.event_count()
        written = time.time()
        self.proxy.write_policy(self.make_policy(["other.test"]), rename=True)
        ev = self.wait_file_reload(mark, written)
        self.assert_reloaded(ev, "file_change", 2, digest)
        self.assert_allowed("other.test")
        self.assert_denied("allowed.test")
        # The file is a new inode now: a second replacement is seen all the same.
        mark = self.proxy.event_count()
        written = time.time()
        self.proxy.write_policy(self.make_policy(["allowed.test"]), rename=True)
        ev3 = self.wait_file_reload(mark, written)
        self.assert_reloaded(ev3, "file_change", 3, ev["policy_digest"])
        self.assert_allowed("allowed.test")
        self.assert_denied("other.test")
        self.assert_in_force(ev3)

    def test_policy_directory_gaining_a_file_is_applied(self):
        proxy = self.start_proxy(extra_yaml=self.extra_yaml(),
                                 policy_files={"00-base.yaml": self.make_policy(["allowed.test", "other.test"])})
        digest = self.start_digest(proxy)
        self.assert_allowed("allowed.test", proxy)
        mark = proxy.event_count()
        # Files that are not policy files change nothing.
        for name in ("notes.txt", ".00-base.yaml.swp", "00-base.yaml~"):
            with open(os.path.join(proxy.policy_path, name), "w") as f:
                f.write("deny: [allowed.test]\n")
        self.assert_no_reload(mark, 1.5, proxy)
        written = time.time()
        with open(os.path.join(proxy.policy_path, "10-deny.yaml"), "w") as f:
            f.write("version: 1\ndeny:\n  - description: added by a second file\n    destinations: [allowed.test]\n")
        ev = self.wait_file_reload(mark, written, proxy)
        self.assert_reloaded(ev, "file_change", 2, digest)
        self.assert_denied("allowed.test", "explicit_deny", proxy)
        self.assert_allowed("other.test", proxy)
        status = self.assert_in_force(ev, proxy)
        self.assertEqual([os.path.basename(f) for f in status["policy"]["files"]], ["00-base.yaml", "10-deny.yaml"],
                         status)
        self.assertEqual(status["policy"]["deny_rules"], 1, status)

    def test_credentials_file_change_adds_user(self):
        users = os.path.join(self.tmp.name, "users.txt")
        lines = {}
        for user, password in (("alice", "alice-reload-pw"), ("newbie", "newbie-reload-pw")):
            r = subprocess.run([harness.egressd_binary(), "passwd", user], input=(password + "\n").encode(),
                               capture_output=True, timeout=30)
            self.assertEqual(r.returncode, 0, r)
            lines[user] = r.stdout.decode()
        with open(users, "w") as f:
            f.write(lines["alice"])
        auth = "proxy_auth:\n  credentials: %s\n  realm: e2e\n  required: true\n" % harness.yaml_str(users)
        proxy = self.start_proxy(extra_yaml=self.extra_yaml() + auth)
        digest = self.start_digest(proxy)

        def fetch_as(user):
            token = base64.b64encode(("%s:%s-reload-pw" % (user, user)).encode()).decode()
            return self.fetch("allowed.test", proxy, headers=[("Proxy-Authorization", "Basic " + token)])

        self.assertEqual(fetch_as("alice").status, 200)
        resp = fetch_as("newbie")
        self.assertEqual((resp.status, resp.header("X-Egressd-Reason")), (407, "proxy_auth_failed"), resp)
        mark = proxy.event_count()
        written = time.time()
        with open(users, "a") as f:
            f.write(lines["newbie"])
        ev = self.wait_file_reload(mark, written, proxy)
        self.assertEqual((ev["event"], ev["trigger"], ev["policy_version"]), ("egressd.reload", "file_change", 2), ev)
        self.assertEqual(ev["policy_digest"], digest, "the policy did not change, nor should its digest")
        resp = fetch_as("newbie")
        self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)
        allow = proxy.wait_event(event="egress.allow", identity="newbie")
        self.assertEqual(allow["identity_source"], "proxy_auth", allow)
        self.assertEqual(fetch_as("alice").status, 200)


if __name__ == "__main__":
    unittest.main()
