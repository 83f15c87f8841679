"""The admin endpoint: /healthz, /readyz, /status (fields and types), /metrics (accepted by promtool, counting
exactly the traffic the test sent, no host name or client address in a label), the bearer token, `admin: off`,
the default address, a non-loopback address without authentication refused as a configuration error; a second
egressd on the same listener port refused; SIGTERM with drain_delay (not ready at once, serving on during the
delay, then gone); and the typed fields of egressd.start.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import unittest

import harness

harness.isolate_network()

HEX64 = re.compile(r"^[0-9a-f]{64}$")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
TOKEN = "e2e-admin-token-0123456789abcdef"

# Every metric family the specification names, with its type.
FAMILIES = {
    "egressd_requests_total": "counter",
    "egressd_decisions_total": "counter",
    "egressd_connections_accepted_total": "counter",
    "egressd_connections_open": "gauge",
    "egressd_tunnels_total": "counter",
    "egressd_tunnels_open": "gauge",
    "egressd_client_received_bytes_total": "counter",
    "egressd_client_sent_bytes_total": "counter",
    "egressd_closes_total": "counter",
    "egressd_dns_lookups_total": "counter",
    "egressd_dns_cache_hits_total": "counter",
    "egressd_dns_lookup_duration_seconds": "histogram",
    "egressd_upstream_connects_total": "counter",
    "egressd_upstream_connect_duration_seconds": "histogram",
    "egressd_proxy_auth_refusals_total": "counter",
    "egressd_tls_handshake_refusals_total": "counter",
    "egressd_revocations_total": "counter",
    "egressd_connection_limit_refusals_total": "counter",
    "egressd_session_exceptions_total": "counter",
    "egressd_reloads_total": "counter",
    "egressd_policy_version": "gauge",
    "egressd_policy_info": "gauge",
    "egressd_last_reload_timestamp_seconds": "gauge",
    "egressd_events_dropped_total": "counter",
    "egressd_ready": "gauge",
    "egressd_build_info": "gauge",
    "process_cpu_seconds_total": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_open_fds": "gauge",
    "process_start_time_seconds": "gauge",
}


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def run_egressd(*args, timeout=15):
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    # A process that starts serving when it must not is killed by the timeout, and the test fails.
    try:
        return subprocess.run([harness.egressd_binary(), *args], capture_output=True, timeout=timeout, env=env,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("egressd %s did not exit within %d s: %r" % (" ".join(args), timeout, e))


class AdminTlsTest(harness.ProxyTestCase):
    """admin.tls: the endpoint over HTTPS, its certificate files followed by the file watch and applied live."""

    def extra_yaml(self):
        tls_dir = os.path.join(self.tmp.name, "admin-tls")
        os.mkdir(tls_dir)
        self.cert, self.key = harness.make_certificate(tls_dir)
        return ("admin:\n  listen: 127.0.0.1:0\n  tls:\n    certificate: %s\n    key: %s\n"
                % (harness.yaml_str(self.cert), harness.yaml_str(self.key))) + harness.reload_yaml(debounce="300ms")

    def test_rotated_certificate_applies_to_new_connections_without_a_restart(self):
        host, port = self.proxy.admin_address()
        self.assertEqual(harness.served_certificate(host, port), harness.certificate_der(self.cert))
        # What cert-manager or an operator does: new files renamed over the old ones, no signal.
        fresh = os.path.join(self.tmp.name, "fresh")
        os.mkdir(fresh)
        cert, key = harness.make_certificate(fresh)
        rotated = harness.certificate_der(cert)
        self.assertNotEqual(rotated, harness.certificate_der(self.cert))
        mark = self.proxy.event_count()
        os.rename(key, self.key)
        os.rename(cert, self.cert)
        ev = self.proxy.wait_for_event(pred=lambda e: e.get("event") == "egressd.reload", after=mark, timeout=10)
        self.assertEqual((ev["trigger"], ev["restart_needed"]), ("file_change", []), ev)
        self.assertEqual(harness.served_certificate(host, port), rotated)
        self.assertEqual(self.proxy.reload_events(mark)[-1]["event"], "egressd.reload")


class AdminTest(harness.ProxyTestCase):

    def extra_yaml(self):
        return harness.admin_yaml() + harness.reload_yaml(watch=False)

    def start_digest(self, proxy=None):
        return (proxy or self.proxy).wait_event(event="egressd.start")["policy_digest"]

    # -- events ----------------------------------------------------------------------------------------
    def test_admin_listening_event(self):
        ev = self.proxy.wait_event(event="egressd.admin_listening")
        host, _, port = ev["address"].rpartition(":")
        self.assertEqual(host, "127.0.0.1", ev)
        self.assertGreater(int(port), 0, ev)
        self.assertIs(ev["tls"], False, ev)
        self.assertIs(ev["token"], False, ev)
        self.assertEqual(self.proxy.admin_get("/healthz").status, 200)

    def test_start_event_has_typed_fields(self):
        ev = self.proxy.wait_event(event="egressd.start")
        self.assertIs(type(ev["workers"]), int, ev)
        self.assertEqual(ev["workers"], 2, ev)
        self.assertIs(type(ev["policy_version"]), int, ev)
        self.assertEqual(ev["policy_version"], 1, ev)
        self.assertIsInstance(ev["policy_digest"], str, ev)
        self.assertRegex(ev["policy_digest"], HEX64)
        status = self.proxy.admin_json("/status")
        self.assertEqual((status["policy"]["version"], status["policy"]["digest"]), (1, ev["policy_digest"]))
        _, samples = self.proxy.metrics()
        self.assertEqual(harness.metric_value(samples, "egressd_policy_info", digest=ev["policy_digest"]), 1)
        self.assertEqual(harness.metric_value(samples, "egressd_policy_version"), 1)

    # -- health, readiness, status ---------------------------------------------------------------------
    def test_healthz_and_readyz(self):
        resp = self.proxy.admin_get("/healthz")
        self.assertEqual((resp.status, resp.body), (200, b"ok\n"), resp)
        resp = self.proxy.admin_get("/readyz")
        self.assertEqual((resp.status, resp.body), (200, b"ready\n"), resp)

    def test_status_fields_and_types(self):
        digest = self.start_digest()
        before = time.time()
        status = self.proxy.admin_json("/status")
        self.assertIsInstance(status["version"], str, status)
        self.assertTrue(status["version"], status)
        self.assertEqual(status["pid"], self.proxy.proc.pid)
        self.assertRegex(status["started_at"], RFC3339)
        self.assertLessEqual(abs(harness.event_time({"time": re.sub(r"(\.\d+)?Z$", "Z", status["started_at"])})
                                 - before), 30, status)
        self.assertTrue(is_number(status["uptime_seconds"]) and status["uptime_seconds"] >= 0, status)
        self.assertIs(status["ready"], True, status)
        self.assertIs(status["draining"], False, status)
        self.assertEqual(status["workers"], 2, status)
        self.assertEqual(status["listeners"], ["127.0.0.1:%d" % self.proxy.port], status)
        policy = status["policy"]
        rules = 4 + (1 if self.echo6 is not None else 0)
        expected = {"version": 1, "digest": digest, "mode": "enforce", "on_revoke": "close", "clients": 2,
                    "groups": 3, "rules": rules, "deny_rules": 1}
        self.assertEqual({k: policy.get(k) for k in expected}, expected, policy)
        self.assertRegex(policy["loaded_at"], RFC3339)
        self.assertEqual([os.path.basename(f) for f in policy["files"]], ["policy.yaml"], policy)
        self.assertEqual((status["connections"], status["tunnels"]), (0, 0), status)
        self.assertIsNone(status["last_reload"], status)
        # A tunnel open: counted.
        c, resp = self.connect_tunnel("allowed.test:%d" % self.echo.port)
        with c:
            self.assertEqual(resp.status, 200, resp)
            c.send(b"ping")
            self.assertEqual(c.recv_exact(4), b"ping")
            status = self.proxy.admin_json("/status")
            self.assertEqual((status["connections"], status["tunnels"]), (1, 1), status)
        self.proxy.wait_event(event="egress.close", method="CONNECT")
        # After a reload: what it did.
        ev = self.proxy.sighup_reload()
        self.assertEqual(ev["event"], "egressd.reload", ev)
        status = self.proxy.admin_json("/status")
        last = status["last_reload"]
        self.assertEqual((last["result"], last["trigger"], last["errors"], last["restart_needed"]),
                         ("ok", "SIGHUP", [], []), last)
        self.assertRegex(last["at"], RFC3339)
        self.assertTrue(is_number(last["took_ms"]) and last["took_ms"] >= 0, last)
        self.assertEqual(status["policy"]["version"], 2, status)
        self.assertEqual((status["connections"], status["tunnels"]), (0, 0), status)

    # -- metrics ---------------------------------------------------------------------------------------
    def test_metrics_pass_promtool_and_count_traffic(self):
        digest = self.start_digest()
        sent = received = 0
        for _ in range(3):
            request = ("GET %s HTTP/1.1\r\nHost: allowed.test:%d\r\n\r\n" % (self.up_url(), self.upstream.port)
                       ).encode()
            with self.proxy.connect() as c:
                c.send(request)
                resp = c.read_response()
                self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)
                self.assertEqual(bytes(c.buf), b"")
            sent += len(request)
            received += len(resp.raw_head) + len(resp.body)
        for _ in range(2):
            authority = "denied.test:%d" % self.echo.port
            request = ("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority)).encode()
            with self.proxy.connect() as c:
                c.send(request)
                resp = c.read_response(method="CONNECT")
                self.assertEqual((resp.status, resp.header("X-Egressd-Reason")), (403, "no_matching_rule"), resp)
                rest = c.read_until_close(timeout=5)
            sent += len(request)
            received += len(resp.raw_head) + len(resp.body) + len(rest)
        closes = self.proxy.wait_events(5, event="egress.close", timeout=5)
        self.assertEqual(len(closes), 5, self.proxy.dump_events())
        self.assertEqual(sum(e["bytes_from_client"] for e in closes), sent, closes)
        self.assertEqual(sum(e["bytes_to_client"] for e in closes), received, closes)

        text, samples = self.proxy.metrics()
        check = harness.promtool_check(text)
        self.assertEqual(check.returncode, 0, "promtool check metrics refused /metrics:\n%s%s\n---\n%s" % (
            check.stdout.decode(), check.stderr.decode(), text))
        types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
        self.assertEqual({name: types.get(name) for name in FAMILIES if types.get(name) != FAMILIES[name]}, {})
        listener = "127.0.0.1:%d" % self.proxy.port

        def value(name, **labels):
            return harness.metric_value(samples, name, **labels)

        self.assertEqual(value("egressd_decisions_total", verdict="allow", client="tests"), 3)
        self.assertEqual(value("egressd_decisions_total", verdict="allow", reason="allowed", client="tests"), 3)
        self.assertEqual(value("egressd_decisions_total", verdict="deny", client="tests"), 2)
        self.assertEqual(value("egressd_decisions_total", verdict="deny", reason="no_matching_rule", client="tests"),
                         2)
        self.assertEqual(value("egressd_decisions_total"), 5)
        self.assertEqual(value("egressd_requests_total", listener=listener), 5)
        self.assertEqual(value("egressd_connections_accepted_total", listener=listener), 5)
        self.assertEqual(value("egressd_connections_open", listener=listener), 0)
        self.assertEqual(value("egressd_tunnels_total"), 0)
        self.assertEqual(value("egressd_tunnels_open"), 0)
        self.assertEqual(value("egressd_client_received_bytes_total"), sent)
        self.assertEqual(value("egressd_client_sent_bytes_total"), received)
        self.assertEqual(value("egressd_closes_total"), 5)
        self.assertEqual(value("egressd_closes_total", cause="client_closed"), 3)
        self.assertEqual(value("egressd_closes_total", cause="denied"), 2)
        self.assertEqual(value("egressd_upstream_connects_total"), 3)
        self.assertEqual(value("egressd_upstream_connect_duration_seconds_count"), 3)
        queries = value("egressd_dns_lookups_total")
        self.assertTrue(queries is not None and 1 <= queries <= 3, queries)
        self.assertGreaterEqual(value("egressd_dns_lookup_duration_seconds_count"), 1)
        self.assertLessEqual(value("egressd_dns_cache_hits_total"), 2)
        for name in ("egressd_proxy_auth_refusals_total", "egressd_tls_handshake_refusals_total",
                     "egressd_revocations_total", "egressd_connection_limit_refusals_total",
                     "egressd_session_exceptions_total", "egressd_events_dropped_total"):
            self.assertIn(value(name), (0, None), name)
        self.assertEqual(value("egressd_reloads_total", result="failed"), 0)
        self.assertEqual(value("egressd_policy_version"), 1)
        self.assertEqual(value("egressd_policy_info", digest=digest), 1)
        self.assertEqual(value("egressd_ready"), 1)
        version = self.proxy.admin_json("/status")["version"]
        self.assertEqual(value("egressd_build_info", version=version), 1)
        now = time.time()
        self.assertLess(abs(value("egressd_last_reload_timestamp_seconds") - now), 60)
        self.assertLess(abs(value("process_start_time_seconds") - now), 60)
        self.assertGreater(value("process_resident_memory_bytes"), 0)
        self.assertGreater(value("process_open_fds"), 0)
        self.assertGreaterEqual(value("process_cpu_seconds_total"), 0)
        # Labels never carry a host name or an address, but for the listener's own.
        for name, labels, _ in samples:
            for k, v in labels.items():
                self.assertNotIn(".test", v, (name, labels))
                if "127.0.0." in v or "::1" in v:
                    self.assertEqual((k, v), ("listener", listener), (name, labels))

    # -- the token -------------------------------------------------------------------------------------
    def test_token_file_guards_status_metrics_and_reload(self):
        path = os.path.join(self.tmp.name, "admin.token")
        with open(path, "w") as f:
            f.write(TOKEN + "\n")
        proxy = self.start_proxy(extra_yaml=harness.admin_yaml(token_file=path) + harness.reload_yaml(watch=False))
        ev = proxy.wait_event(event="egressd.admin_listening")
        self.assertEqual((ev["tls"], ev["token"]), (False, True), ev)
        wrong = TOKEN[:-1] + "0"
        for path_ in ("/status", "/metrics"):
            with self.subTest(path=path_):
                self.assertEqual(proxy.admin_get(path_).status, 401)
                self.assertEqual(proxy.admin_get(path_, token=wrong).status, 401)
                resp = proxy.admin_request("GET", path_, headers=[("Authorization", "Basic " + TOKEN)])
                self.assertEqual(resp.status, 401, resp)
                resp = proxy.admin_get(path_, token=TOKEN)
                self.assertEqual(resp.status, 200, resp)
                self.assertNotIn(TOKEN.encode(), resp.body)
        mark = proxy.event_count()
        self.assertEqual(proxy.admin_post("/reload").status, 401)
        self.assertEqual(proxy.admin_post("/reload", token=wrong).status, 401)
        time.sleep(0.5)
        self.assertEqual(proxy.reload_events(mark), [], "a reload without the token was done")
        resp = proxy.admin_post("/reload", token=TOKEN)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(proxy.wait_reload(mark)["trigger"], "admin")
        # Probes need no token.
        self.assertEqual(proxy.admin_get("/healthz").status, 200)
        self.assertEqual(proxy.admin_get("/readyz").status, 200)
        with proxy.lock:
            output = "\n".join(proxy.raw_lines + proxy.stderr_lines)
        self.assertNotIn(TOKEN, output)

    def test_a_rotated_token_file_applies_without_a_signal(self):
        # A Kubernetes Secret is rotated by swapping a symlinked directory: the file watch must see it.
        secret = os.path.join(self.tmp.name, "admin-token")
        os.mkdir(secret)
        for name in ("..2026_12_07_01", "..2026_12_07_02"):
            os.mkdir(os.path.join(secret, name))
        with open(os.path.join(secret, "..2026_12_07_01", "token"), "w") as f:
            f.write(TOKEN + "\n")
        os.symlink("..2026_12_07_01", os.path.join(secret, "..data"))
        os.symlink("..data/token", os.path.join(secret, "token"))
        proxy = self.start_proxy(extra_yaml=harness.admin_yaml(token_file=os.path.join(secret, "token")) +
                                 harness.reload_yaml(watch=True, debounce="50ms"))
        self.assertEqual(proxy.admin_get("/status", token=TOKEN).status, 200)
        rotated = TOKEN[::-1]
        with open(os.path.join(secret, "..2026_12_07_02", "token"), "w") as f:
            f.write(rotated + "\n")
        mark = proxy.event_count()
        os.symlink("..2026_12_07_02", os.path.join(secret, "..data.tmp"))
        os.rename(os.path.join(secret, "..data.tmp"), os.path.join(secret, "..data"))
        self.assertEqual(proxy.wait_reload(mark)["trigger"], "file_change")
        self.assertEqual(proxy.admin_get("/status", token=TOKEN).status, 401)
        self.assertEqual(proxy.admin_get("/status", token=rotated).status, 200)

    # -- where the admin endpoint listens --------------------------------------------------------------
    def test_admin_off(self):
        proxy = self.start_proxy(extra_yaml="admin: off\n" + harness.reload_yaml(watch=False))
        proxy.wait_event(event="egressd.start")
        time.sleep(0.3)
        self.assertEqual(proxy.events(event="egressd.admin_listening"), [])
        if os.environ.get("EGRESSD_E2E_NETNS") == "1":  # only this test's egressd processes live here
            with self.assertRaises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", 9090), timeout=2).close()
        with proxy.connect() as c:
            self.assertEqual(self.get(self.up_url(), conn=c).status, 200)

    def test_admin_defaults_to_loopback_9090(self):
        if os.environ.get("EGRESSD_E2E_NETNS") != "1":
            self.skipTest("port 9090 is only known to be free in the test's own network namespace")
        # A configuration of its own, without an admin section (whatever the harness's defaults may become).
        d = os.path.join(self.tmp.name, "default-admin")
        os.mkdir(d)
        with open(os.path.join(d, "policy.yaml"), "w") as f:
            f.write("version: 1\nclients:\n  c:\n    sources: [127.0.0.1/32]\n    groups: []\n")
        path = os.path.join(d, "egressd.yaml")
        with open(path, "w") as f:
            f.write('version: 1\nlisteners: ["127.0.0.1:0"]\npolicy: policy.yaml\nworkers: 1\n'
                    'dns:\n  servers: ["127.0.0.1:%d"]\n' % self.dns.port)
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        proc = subprocess.Popen([harness.egressd_binary(), "run", "--config", path], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        stderr = harness.StderrWatch(proc)
        try:
            ev = None
            deadline = time.monotonic() + 10
            while ev is None and time.monotonic() < deadline and proc.poll() is None:
                for line in list(lines):
                    if b"egressd.admin_listening" in line:
                        ev = json.loads(line)
                time.sleep(0.02)
            self.assertIsNotNone(ev, "no egressd.admin_listening: %r" % lines)
            self.assertEqual((ev["address"], ev["tls"], ev["token"]), ("127.0.0.1:9090", False, False), ev)
            with harness.HttpConn(9090) as c:
                c.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:9090\r\nConnection: close\r\n\r\n")
                resp = c.read_response()
            self.assertEqual((resp.status, resp.body), (200, b"ok\n"), resp)
        finally:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=15)
            reader.join(timeout=5)
            stderr.check()
            proc.stdout.close()
            proc.stderr.close()
        self.assertEqual(proc.returncode, 0)

    def test_non_loopback_admin_without_authentication_is_refused(self):
        d = os.path.join(self.tmp.name, "nonloop")
        os.mkdir(d)
        with open(os.path.join(d, "policy.yaml"), "w") as f:
            f.write("version: 1\nclients:\n  c:\n    sources: [127.0.0.1/32]\n    groups: []\n")
        with open(os.path.join(d, "admin.token"), "w") as f:
            f.write(TOKEN + "\n")

        def config(name, admin_lines):
            path = os.path.join(d, name)
            with open(path, "w") as f:
                f.write('version: 1\nlisteners: ["127.0.0.1:0"]\npolicy: policy.yaml\nworkers: 1\n'
                        'dns:\n  servers: ["127.0.0.1:9"]\nadmin:\n' + "".join("  %s\n" % l for l in admin_lines))
            return path

        for listen, column in (("0.0.0.0:9090", 11), ('"[::]:9090"', None), ("192.0.2.1:9090", 11)):
            with self.subTest(listen=listen):
                path = config("open.yaml", ["listen: " + listen])
                where = r"%s:8:%s: error: " % (re.escape(path), column if column else r"\d+")
                check = run_egressd("config", "check", path)
                self.assertNotEqual(check.returncode, 0, check)
                self.assertRegex(check.stderr.decode(), where)
                run = run_egressd("run", "--config", path)
                self.assertNotEqual(run.returncode, 0, run)
                self.assertRegex(run.stderr.decode(), where)
                self.assertNotIn(b"egressd.listening", run.stdout)
                self.assertNotIn(b"egressd.admin_listening", run.stdout)
        # With a token, or on another loopback address, the same is a good configuration.
        for name, lines in (("token.yaml", ["listen: 0.0.0.0:9090", "token_file: admin.token"]),
                            ("loop2.yaml", ["listen: 127.0.0.2:9090"])):
            with self.subTest(config=name):
                check = run_egressd("config", "check", config(name, lines))
                self.assertEqual(check.returncode, 0, check)

    # -- a second instance -----------------------------------------------------------------------------
    def test_second_instance_on_the_same_port_fails(self):
        with open(self.proxy.config_path) as f:
            text = f.read()
        old = 'listeners: ["127.0.0.1:0"]'
        self.assertEqual(text.count(old), 1, text)
        d = os.path.join(self.tmp.name, "second")
        os.mkdir(d)
        shutil.copy(self.proxy.policy_path, os.path.join(d, "policy.yaml"))
        path = os.path.join(d, "egressd.yaml")
        with open(path, "w") as f:
            f.write(text.replace(old, 'listeners: ["127.0.0.1:%d"]' % self.proxy.port))
        r = run_egressd("run", "--config", path)
        self.assertNotEqual(r.returncode, 0, r)
        self.assertIn(b"Address already in use", r.stderr)
        self.assertNotIn(b"egressd.listening", r.stdout)
        # The first one serves on, unharmed.
        self.assertIsNone(self.proxy.proc.poll())
        resp = self.get(self.up_url())
        self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)
        self.assertEqual(len(self.upstream.requests), 1)
        self.assertEqual(self.proxy.admin_get("/readyz").status, 200)

    # -- draining --------------------------------------------------------------------------------------
    def test_drain_delay_not_ready_at_once_serving_then_exit(self):
        proxy = self.start_proxy({"timeouts": {"drain_delay": "2s"}}, extra_yaml=self.extra_yaml())
        self.assertEqual(proxy.admin_get("/readyz").status, 200)
        started = time.monotonic()
        proxy.signal(signal.SIGTERM)
        # Not ready at once (polled for at most 0.5 s).
        statuses = []
        for _ in range(100):
            statuses.append(proxy.admin_get("/readyz", timeout=1).status)
            if statuses[-1] == 503 or time.monotonic() - started > 0.5:
                break
            time.sleep(0.02)
        self.assertEqual(statuses[-1], 503, "still ready %.2f s after SIGTERM: %s" % (
            time.monotonic() - started, statuses))
        status = proxy.admin_json("/status", timeout=1)
        self.assertEqual((status["ready"], status["draining"]), (False, True), status)
        # During the delay the proxy port still accepts and serves, keep-alive and new connections alike.
        time.sleep(max(0.0, started + 0.8 - time.monotonic()))
        with proxy.connect(timeout=2) as c:
            resp = self.get(self.up_url(), conn=c)
            self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)
        self.assertLess(time.monotonic() - started, 1.8, "too slow to tell the delay from the grace period")
        self.assertIsNone(proxy.proc.poll(), "egressd exited before drain_delay passed")
        rc = proxy.wait_exit(timeout=10)
        ended = time.monotonic() - started
        self.assertEqual(rc, 0, "\n".join(proxy.stderr_lines))
        self.assertGreaterEqual(ended, 1.9, "exited %.2f s after SIGTERM, before drain_delay (2s)" % ended)
        self.assertLess(ended, 2 + 3 + 2, "exited %.2f s after SIGTERM" % ended)
        with self.assertRaises(OSError):
            proxy.connect(timeout=1).close()


if __name__ == "__main__":
    unittest.main()
