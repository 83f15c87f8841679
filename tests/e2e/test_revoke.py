"""Revocation: after every successful reload each established connection is decided again. A CONNECT tunnel the
new policy no longer allows is closed (client and upstream both see the end within about a second) with one
egress.revoke event and an egress.close whose cause says why; tunnels still allowed keep relaying; a new CONNECT
to the revoked destination is refused. Also: a rule's `expires` closes its tunnels at that instant, `on_revoke:
keep` and report mode close nothing (egress.would_revoke), an explicit deny closes, a certificate revoked by a
reloaded CRL and a user removed from the credentials file close their connections, and a keep-alive client's
pooled upstream that the new policy refuses is dropped.

Upstreams are RecordingServers (they echo, and record when each connection ends); a.test and b.test (and
soon.test) resolve to 127.0.0.1, so which upstream port a tunnel goes to tells its connections apart.
"""

import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

import harness

harness.isolate_network()

REVOKE_WITHIN = 1.5   # seconds from the trigger to both ends of a revoked tunnel seeing it closed
STAYS_OPEN = 1.5      # how long a tunnel that must survive is watched after the reload
CERTS_SCRIPT = os.path.join(harness.REPO, "certs", "egressd-certs")
ID_PREFIX = "spiffe://e2e.test/w/"


def closed_by_proxy(c, timeout):
    """True if the connection ends (EOF, reset, or a TLS alert) within timeout with no further data."""
    try:
        data = c.read_until_close(timeout=timeout)
    except socket.timeout:
        return False
    except (ssl.SSLError, OSError):
        return True
    return data == b"" and c.eof


def echo_once(c, payload, timeout=5.0):
    c.send(payload)
    return c.recv_exact(len(payload), timeout=timeout)


class KeepAliveUpstream:
    """An HTTP/1.1 upstream on loopback that answers every request head with 200 "hello" and keeps the connection;
    records, per connection, when it was accepted and when the peer ended it (None while open)."""

    RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"

    def __init__(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.conns = []  # {"accepted", "closed", "requests"}
        self._stop = threading.Event()
        self._threads = []
        self._thread = threading.Thread(target=self._accept, name="keepalive-%d" % self.port, daemon=True)
        self._thread.start()

    @property
    def connections(self):
        with self.lock:
            return len(self.conns)

    def closed(self, index):
        with self.lock:
            return self.conns[index]["closed"]

    def wait_closed(self, index, timeout):
        deadline = time.monotonic() + timeout
        for _ in range(100000):
            at = self.closed(index)
            if at is not None or time.monotonic() > deadline:
                return at
            time.sleep(0.01)
        return self.closed(index)

    def _accept(self):
        while not self._stop.is_set():
            try:
                s, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            record = {"accepted": time.monotonic(), "closed": None, "requests": 0}
            with self.lock:
                self.conns.append(record)
            t = threading.Thread(target=self._serve, args=(s, record), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, s, record):
        s.settimeout(0.1)
        buf = b""
        try:
            while not self._stop.is_set():
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    break
                if not data:
                    break
                buf += data
                for _ in range(100):
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    buf = buf[end + 4:]
                    with self.lock:
                        record["requests"] += 1
                    s.sendall(self.RESPONSE)
        finally:
            with self.lock:
                if record["closed"] is None:
                    record["closed"] = time.monotonic()
            s.close()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        for t in self._threads:
            t.join(timeout=5)
        self.listener.close()


class RevokeBase(harness.ProxyTestCase):
    """Helpers; no tests of its own. Subclasses set `watch` (reload.watch)."""

    watch = False

    def setUp(self):
        self.rec_a = harness.RecordingServer()
        self.addCleanup(self.rec_a.stop)
        self.rec_b = harness.RecordingServer()
        self.addCleanup(self.rec_b.stop)
        self.keepalive = KeepAliveUpstream()
        self.addCleanup(self.keepalive.stop)
        super().setUp()

    def extra_yaml(self):
        return harness.admin_yaml() + harness.reload_yaml(watch=self.watch)

    def dns_records(self):
        records = harness.default_records()
        for name in ("a.test", "b.test", "soon.test"):
            records[name] = {"A": ["127.0.0.1"], "ttl": 60}
        return records

    def ports(self):
        return harness._yaml_list([self.rec_a.port, self.rec_b.port, self.upstream.port, self.keepalive.port])

    def make_policy(self, names=("a.test", "b.test"), deny=(), on_revoke=None, mode=None, soon_expires=None,
                    guard_cidr=True):
        """The web group allows `names` on the test upstreams to the client tests, and 127.0.0.1 by address,
        which opens loopback through the address guard (guard_cidr False: no such rule, loopback is not guarded
        at all, and the name rules alone decide); soon_expires adds the group soon (soon.test until then)."""
        ports = self.ports()
        text = "version: 1\n"
        if mode:
            text += "mode: %s\n" % mode
        if on_revoke:
            text += "on_revoke: %s\n" % on_revoke
        if not guard_cidr:
            text += "address_guard:\n  except: [loopback]\n"
        text += f"""groups:
  web:
    description: the names this version of the policy allows
    rules:
      - description: names on the test upstreams
        ports: {ports}
        destinations: {harness._yaml_list(names)}
"""
        if guard_cidr:
            text += f"""      - description: loopback by address (this opens 127.0.0.1 through the address guard)
        ports: {ports}
        destinations: [127.0.0.1/32]
"""
        groups = ["web"]
        if soon_expires:
            groups.append("soon")
            text += f"""  soon:
    description: a rule that expires a few seconds after the start
    rules:
      - description: soon.test, until {soon_expires}
        ports: {ports}
        destinations: [soon.test]
        expires: {soon_expires}
"""
        text += f"""clients:
  tests:
    description: the test process
    sources: [127.0.0.1/32, "::1/128"]
    groups: {harness._yaml_list(groups)}
"""
        if deny:
            text += "deny:\n  - description: denied by the new version\n    destinations: %s\n" % (
                harness._yaml_list(deny))
        return text

    def policy_text(self):
        return self.make_policy()

    # -- tunnels ---------------------------------------------------------------------------------------
    def open_tunnel(self, host, server, proxy=None):
        """A CONNECT tunnel to host:server.port that echoes; returns the connection and its egress.allow."""
        proxy = proxy or self.proxy
        c = proxy.connect(timeout=5)
        own = "%s:%d" % c.sock.getsockname()[:2]
        c.send("CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host, server.port, host, server.port))
        resp = c.read_response(method="CONNECT")
        self.assertEqual(resp.status, 200, resp)
        payload = ("before the reload, %s" % host).encode()
        self.assertEqual(echo_once(c, payload), payload)
        allow = proxy.wait_event(event="egress.allow", method="CONNECT", source=own)
        self.assertEqual((allow["host"], allow["port"]), (host, server.port), allow)
        return c, allow

    def assert_tunnel_closed(self, c, server, started, within=REVOKE_WITHIN):
        """The client sees its tunnel end, and the upstream its connection, within `within` of `started`."""
        remaining = max(0.05, started + within - time.monotonic())
        self.assertTrue(closed_by_proxy(c, remaining), "the client's tunnel stayed open %.1f s after the trigger"
                        % within)
        self.assertLess(time.monotonic() - started, within + 0.1)
        self.assertTrue(server.wait_all_closed(timeout=max(0.05, started + within - time.monotonic())),
                        "the upstream connection stayed open %.1f s after the trigger" % within)

    def assert_tunnel_alive(self, c, server, index=0, what=b"after the reload, still relaying"):
        self.assertEqual(echo_once(c, what), what)
        with server.lock:
            self.assertIsNone(server.conns[index]["closed"], "the upstream connection of a kept tunnel ended")

    def assert_stays_open(self, c, server, wait=STAYS_OPEN):
        self.assertTrue(c.still_open(wait=wait), "a tunnel that must be kept was closed")
        self.assert_tunnel_alive(c, server)

    def assert_revoke_event(self, allow, name, cause, reason, action, version, previous, proxy=None):
        """The one egress.revoke / egress.would_revoke for the tunnel that `allow` opened, field by field."""
        proxy = proxy or self.proxy
        ev = proxy.wait_for_event(name, request_id=allow["request_id"], timeout=5)
        expected = {"request_id": allow["request_id"], "client": allow["client"], "source": allow["source"],
                    "method": "CONNECT", "host": allow["host"], "port": allow["port"], "address": "127.0.0.1",
                    "cause": cause, "reason": reason, "action": action, "policy_version": version,
                    "previous_version": previous}
        self.assertEqual({k: ev.get(k) for k in expected}, expected, ev)
        self.assertEqual(len(proxy.events(event=name, request_id=allow["request_id"])), 1, proxy.dump_events())
        return ev

    def assert_closed_with(self, allow, cause, proxy=None):
        proxy = proxy or self.proxy
        close = proxy.wait_event(event="egress.close", request_id=allow["request_id"], timeout=5)
        self.assertEqual(close["cause"], cause, close)
        return close

    def assert_connect_refused(self, host, server, reason, proxy=None):
        proxy = proxy or self.proxy
        c = proxy.connect(timeout=5)
        with c:
            c.send("CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host, server.port, host, server.port))
            resp = c.read_response(method="CONNECT")
        self.assertEqual((resp.status, resp.header("X-Egressd-Reason")), (403, reason), resp)
        ev = proxy.wait_event(event="egress.deny", request_id=resp.header("X-Egressd-Request-Id"))
        self.assertEqual((ev["host"], ev["reason"], ev["client"]), (host, reason, "tests"), ev)

    def assert_reload_ok(self, ev, version, trigger):
        self.assertEqual((ev["event"], ev.get("trigger"), ev.get("policy_version"), ev.get("previous_version")),
                         ("egressd.reload", trigger, version, version - 1), ev)

    def revocations(self, proxy=None, **labels):
        _, samples = (proxy or self.proxy).metrics()
        return harness.metric_value(samples, "egressd_revocations_total", **labels)

    def core_scenario(self, trigger):
        """Tunnels to a.test and b.test; a new policy without a.test, applied by `trigger()` (which returns the
        reload event and the monotonic time it was triggered at): a.test's tunnel closes, b.test's is kept."""
        ta, allow_a = self.open_tunnel("a.test", self.rec_a)
        tb, allow_b = self.open_tunnel("b.test", self.rec_b)
        with ta, tb:
            ev, started = trigger(self.make_policy(names=("b.test",)))
            self.assertEqual(ev["event"], "egressd.reload", ev)
            self.assertEqual(ev["policy_version"], 2, ev)
            self.assert_tunnel_closed(ta, self.rec_a, started)
            rev = self.assert_revoke_event(allow_a, "egress.revoke", "policy_revoked", "no_matching_rule", "closed",
                                           2, 1)
            self.assertNotIn("rule_group", rev)  # no rule decided: nothing names a.test any more
            self.assert_closed_with(allow_a, "policy_revoked")
            self.assert_tunnel_alive(tb, self.rec_b)
            self.assertEqual(self.rec_a.received(0), b"before the reload, a.test")
            self.assertEqual(len(self.proxy.events(event="egress.revoke")), 1, self.proxy.dump_events())
            self.assertEqual(self.proxy.events(event="egress.would_revoke"), [])
            self.assert_connect_refused("a.test", self.rec_a, "no_matching_rule")
            self.assert_stays_open(tb, self.rec_b, wait=0.3)
        self.assertEqual(self.revocations(cause="policy_revoked", action="closed"), 1)
        return ev


class RevokeTest(RevokeBase):
    """SIGHUP and POST /reload (reload.watch off, so that nothing else reloads)."""

    def test_sighup_closes_revoked_tunnel_and_keeps_the_other(self):
        def trigger(text):
            self.proxy.write_policy(text)
            started = time.monotonic()
            return self.proxy.sighup_reload(), started

        ev = self.core_scenario(trigger)
        self.assertEqual(ev["trigger"], "SIGHUP", ev)

    def test_admin_reload_closes_revoked_tunnel(self):
        answers = []

        def trigger(text):
            self.proxy.write_policy(text)
            mark = self.proxy.event_count()
            started = time.monotonic()
            answers.append(self.proxy.admin_post("/reload"))
            return self.proxy.wait_reload(mark), started

        ev = self.core_scenario(trigger)
        self.assertEqual(ev["trigger"], "admin", ev)
        self.assertEqual(answers[0].status, 200, answers[0])
        body = json.loads(answers[0].body)
        self.assertEqual((body["result"], body["policy_version"]), ("ok", 2), body)

    def test_explicit_deny_closes_tunnel(self):
        ta, allow_a = self.open_tunnel("a.test", self.rec_a)
        tb, allow_b = self.open_tunnel("b.test", self.rec_b)
        with ta, tb:
            # a.test is still named by the allow rule: the deny list, checked first, is what revokes it.
            self.proxy.write_policy(self.make_policy(deny=("a.test",)))
            started = time.monotonic()
            self.assert_reload_ok(self.proxy.sighup_reload(), 2, "SIGHUP")
            self.assert_tunnel_closed(ta, self.rec_a, started)
            ev = self.assert_revoke_event(allow_a, "egress.revoke", "policy_revoked", "explicit_deny", "closed", 2, 1)
            self.assertEqual((ev.get("rule_group"), ev.get("rule_index")), ("deny", 0), ev)
            self.assert_closed_with(allow_a, "policy_revoked")
            self.assert_tunnel_alive(tb, self.rec_b)
            self.assert_connect_refused("a.test", self.rec_a, "explicit_deny")
        self.assertEqual(len(self.proxy.events(event="egress.revoke")), 1, self.proxy.dump_events())

    def test_expiring_rule_closes_its_tunnels_at_expiry(self):
        # Loopback unguarded: the expiring name rule alone allows soon.test, in every phase.
        self.expiry_scenario(guard_cidr=False)

    def test_expiring_rule_closes_tunnel_whose_address_a_cidr_rule_opened(self):
        # The usual shape for an internal destination: the name rule expires, while the CIDR rule that opens
        # 127.0.0.1 through the address guard (and is the rule the allow event names, the address phase's)
        # stays. Without the name rule nothing allows soon.test: the tunnel must close at the expiry all the same.
        self.expiry_scenario(guard_cidr=True)

    def expiry_scenario(self, guard_cidr):
        expires = harness.rfc3339_in(4)
        expiry = harness.event_time({"time": expires})
        proxy = self.start_proxy(policy_text=self.make_policy(soon_expires=expires, guard_cidr=guard_cidr),
                                 extra_yaml=self.extra_yaml())
        ts, allow_s = self.open_tunnel("soon.test", self.rec_a, proxy=proxy)
        tb, allow_b = self.open_tunnel("b.test", self.rec_b, proxy=proxy)
        with ts, tb:
            self.assertLess(time.time(), expiry - 1.0, "egressd took too long to start for this test")
            self.assertTrue(ts.still_open(wait=max(0.05, expiry - time.time() - 0.5)),
                            "the tunnel closed before its rule expired")
            self.assertTrue(closed_by_proxy(ts, timeout=expiry + REVOKE_WITHIN - time.time()),
                            "the tunnel outlived its rule by %.1f s" % REVOKE_WITHIN)
            ended = time.time()
            self.assertGreaterEqual(ended, expiry - 0.3, "closed %.2f s before the rule expired" % (expiry - ended))
            self.assertTrue(self.rec_a.wait_all_closed(timeout=max(0.05, expiry + REVOKE_WITHIN - time.time())))
            ev = self.assert_revoke_event(allow_s, "egress.revoke", "rule_expired", "expired", "closed", 1, 1,
                                          proxy=proxy)
            self.assertEqual(ev.get("rule_group"), "soon", ev)
            self.assertIn("rule_index", ev)
            self.assert_closed_with(allow_s, "rule_expired", proxy=proxy)
            self.assert_tunnel_alive(tb, self.rec_b)
            self.assert_connect_refused("soon.test", self.rec_a, "expired", proxy=proxy)
        self.assertEqual(len(proxy.events(event="egress.revoke")), 1, proxy.dump_events())
        self.assertEqual(self.revocations(proxy=proxy, cause="rule_expired", action="closed"), 1)

    def test_on_revoke_keep_keeps_tunnels(self):
        proxy = self.start_proxy(policy_text=self.make_policy(on_revoke="keep"), extra_yaml=self.extra_yaml())
        ta, allow_a = self.open_tunnel("a.test", self.rec_a, proxy=proxy)
        with ta:
            proxy.write_policy(self.make_policy(names=("b.test",), on_revoke="keep"))
            self.assert_reload_ok(proxy.sighup_reload(), 2, "SIGHUP")
            self.assert_revoke_event(allow_a, "egress.would_revoke", "policy_revoked", "no_matching_rule", "kept",
                                     2, 1, proxy=proxy)
            self.assert_stays_open(ta, self.rec_a)
            # New requests are decided by the new policy all the same.
            self.assert_connect_refused("a.test", self.rec_a, "no_matching_rule", proxy=proxy)
        self.assertEqual(proxy.events(event="egress.revoke"), [])
        self.assertEqual(proxy.events(event="egress.close", request_id=allow_a["request_id"],
                                      cause="policy_revoked"), [])
        self.assertEqual(self.revocations(proxy=proxy, cause="policy_revoked", action="kept"), 1)
        self.assertEqual(self.revocations(proxy=proxy, cause="policy_revoked", action="closed"), 0)

    def test_report_mode_reports_and_closes_nothing(self):
        ta, allow_a = self.open_tunnel("a.test", self.rec_a)
        with ta:
            self.proxy.write_policy(self.make_policy(names=("b.test",), mode="report"))
            self.assert_reload_ok(self.proxy.sighup_reload(), 2, "SIGHUP")
            self.assert_revoke_event(allow_a, "egress.would_revoke", "policy_revoked", "no_matching_rule",
                                     "would_close", 2, 1)
            self.assert_stays_open(ta, self.rec_a)
        self.assertEqual(self.proxy.events(event="egress.revoke"), [])
        # Report mode lets a new tunnel to a.test through too, as a would_deny.
        with self.proxy.connect(timeout=5) as c:
            own = "%s:%d" % c.sock.getsockname()[:2]
            c.send("CONNECT a.test:%d HTTP/1.1\r\nHost: a.test:%d\r\n\r\n" % (self.rec_a.port, self.rec_a.port))
            self.assertEqual(c.read_head(), b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.assertEqual(echo_once(c, b"reported"), b"reported")
        ev = self.proxy.wait_event(event="egress.would_deny", source=own)
        self.assertEqual((ev["host"], ev["reason"], ev["mode"]), ("a.test", "no_matching_rule", "report"), ev)
        self.assertEqual(self.revocations(cause="policy_revoked", action="would_close"), 1)

    def test_keep_alive_pooled_upstream_dropped_and_next_request_decided_anew(self):
        url_a = "http://a.test:%d/hello" % self.keepalive.port
        url_b = "http://b.test:%d/hello" % self.keepalive.port
        with self.proxy.connect(timeout=5) as c:
            resp = self.get(url_a, conn=c)
            self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)
            resp = self.get(url_a, conn=c)
            self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)
            self.assertEqual(self.keepalive.connections, 1, "egressd did not keep its upstream connection")
            self.proxy.write_policy(self.make_policy(names=("b.test",)))
            started = time.monotonic()
            self.assert_reload_ok(self.proxy.sighup_reload(), 2, "SIGHUP")
            closed = self.keepalive.wait_closed(0, timeout=REVOKE_WITHIN)
            self.assertIsNotNone(closed, "the pooled upstream connection to a.test was kept after the reload")
            self.assertLess(closed - started, REVOKE_WITHIN)
            # The client connection itself stays: its next request is decided by the new policy.
            self.assertTrue(c.still_open(wait=0.3), "the keep-alive client connection was closed")
            resp = self.get(url_a, conn=c)
            self.assertEqual((resp.status, resp.header("X-Egressd-Reason")), (403, "no_matching_rule"), resp)
            resp = self.get(url_b, conn=c)
            self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)
        self.assertEqual(self.keepalive.connections, 2)
        with self.keepalive.lock:
            self.assertEqual([r["requests"] for r in self.keepalive.conns], [2, 1])


class RevokeWatchTest(RevokeBase):
    """A change of the policy file, with no signal (reload.watch on)."""

    watch = True

    def test_file_change_closes_revoked_tunnel(self):
        def trigger(text):
            mark = self.proxy.event_count()
            self.proxy.write_policy(text)
            started = time.monotonic()
            ev = self.proxy.wait_reload(mark, timeout=10)
            # The debounce (500ms) comes first: the second it allows is counted from the reload.
            return ev, started + 0.5

        ev = self.core_scenario(trigger)
        self.assertEqual(ev["trigger"], "file_change", ev)


# ---------------------------------------------------------------------------------------------------------
# Client certificates revoked by a reloaded CRL


def run_certs(*args):
    r = subprocess.run([CERTS_SCRIPT] + [str(a) for a in args], capture_output=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("egressd-certs %s failed: %r" % (" ".join(map(str, args)), r))
    return r


class RevokeMtlsTest(RevokeBase):
    """A TLS listener with client certificates: revoking one in the CRL and reloading closes its connections."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if shutil.which("openssl") is None:
            raise unittest.SkipTest("no openssl command")
        cls.class_pki = os.path.join(cls.class_tmp.name, "pki")
        run_certs("ca", cls.class_pki)
        run_certs("server", cls.class_pki, "proxy")
        for name in ("worker", "worker2"):
            run_certs("client", cls.class_pki, name, "--uri", ID_PREFIX + name)

    def setUp(self):
        self.pki_tmp = tempfile.TemporaryDirectory(prefix="egressd-e2e-pki-")
        self.addCleanup(self.pki_tmp.cleanup)
        self.pki = os.path.join(self.pki_tmp.name, "pki")
        shutil.copytree(self.class_pki, self.pki)
        self.egressd_settings = {"listeners": [{"address": "127.0.0.1:0", "tls": {
            "certificate": os.path.join(self.pki, "proxy.pem"), "key": os.path.join(self.pki, "proxy.key"),
            "client_ca": os.path.join(self.pki, "ca.pem"), "crl": os.path.join(self.pki, "crl.pem")}}]}
        super().setUp()

    def policy_text(self):
        ports = self.ports()
        return f"""version: 1
groups:
  web:
    rules:
      - description: a.test on the test upstreams
        ports: {ports}
        destinations: [a.test]
      - description: loopback by address (guard exemption)
        ports: {ports}
        destinations: [127.0.0.1/32]
clients:
  workers:
    description: every workload certificate
    identities: ["{ID_PREFIX}*"]
    groups: [web]
"""

    def tls_conn(self, cert, proxy=None):
        proxy = proxy or self.proxy
        c = harness.HttpConn(proxy.port, proxy.host, timeout=5)
        try:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(os.path.join(self.pki, "ca.pem"))
            ctx.load_cert_chain(os.path.join(self.pki, cert + ".pem"), os.path.join(self.pki, cert + ".key"))
            c.sock = ctx.wrap_socket(c.sock, server_hostname="127.0.0.1")
        except BaseException:
            c.close()
            raise
        return c

    def tls_tunnel(self, cert, server, proxy=None):
        proxy = proxy or self.proxy
        c = self.tls_conn(cert, proxy)
        authority = "a.test:%d" % server.port
        c.send("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority))
        self.assertEqual(c.read_head(), b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.assertEqual(echo_once(c, b"hello from " + cert.encode()), b"hello from " + cert.encode())
        allow = proxy.wait_event(event="egress.allow", method="CONNECT", identity=ID_PREFIX + cert,
                                 port=server.port)
        return c, allow

    def test_crl_revocation_closes_the_clients_connections(self):
        t1, allow1 = self.tls_tunnel("worker", self.rec_a)
        t2, allow2 = self.tls_tunnel("worker2", self.rec_b)
        # And a keep-alive plain HTTP connection of the same certificate, idle between requests.
        k = self.tls_conn("worker")
        with t1, t2, k:
            resp = self.get("http://a.test:%d/hello" % self.upstream.port, conn=k)
            self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)
            get = self.proxy.wait_event(event="egress.allow", method="GET", identity=ID_PREFIX + "worker")
            run_certs("revoke", self.pki, "worker")
            started = time.monotonic()
            self.assert_reload_ok(self.proxy.sighup_reload(), 2, "SIGHUP")
            self.assert_tunnel_closed(t1, self.rec_a, started)
            self.assertTrue(closed_by_proxy(k, max(0.05, started + REVOKE_WITHIN - time.monotonic())),
                            "the revoked certificate's keep-alive connection stayed open")
            ev = self.proxy.wait_for_event("egress.revoke", request_id=allow1["request_id"])
            expected = {"cause": "certificate_revoked", "action": "closed", "client": "workers", "method": "CONNECT",
                        "host": "a.test", "port": self.rec_a.port, "identity": ID_PREFIX + "worker",
                        "identity_source": "mtls", "policy_version": 2, "previous_version": 1,
                        "source": allow1["source"]}
            self.assertEqual({key: ev.get(key) for key in expected}, expected, ev)
            self.assert_closed_with(allow1, "certificate_revoked")
            kev = self.proxy.wait_for_event("egress.revoke", source=get["source"])
            self.assertEqual((kev["cause"], kev["action"], kev.get("identity")),
                             ("certificate_revoked", "closed", ID_PREFIX + "worker"), kev)
            kclose = self.proxy.wait_event(event="egress.close", source=get["source"])
            self.assertEqual(kclose["cause"], "certificate_revoked", kclose)
            # worker2's certificate is still good: its tunnel relays on.
            self.assert_tunnel_alive(t2, self.rec_b)
        self.assertEqual(len(self.proxy.events(event="egress.revoke")), 2, self.proxy.dump_events())
        self.assertEqual(self.revocations(cause="certificate_revoked", action="closed"), 2)

    def test_crl_file_change_closes_without_a_signal(self):
        # reload.watch on: the CRL the listener names is watched like the policy.
        proxy = self.start_proxy(self.egressd_settings, extra_yaml=harness.admin_yaml() + harness.reload_yaml())
        t1, allow1 = self.tls_tunnel("worker", self.rec_a, proxy)
        t2, allow2 = self.tls_tunnel("worker2", self.rec_b, proxy)
        with t1, t2:
            mark = proxy.event_count()
            run_certs("revoke", self.pki, "worker")
            changed = time.monotonic()
            ev = proxy.wait_reload(mark, timeout=10)
            self.assertEqual((ev["event"], ev["trigger"], ev["policy_version"]), ("egressd.reload", "file_change", 2),
                             ev)
            # The debounce (500ms) comes first.
            self.assert_tunnel_closed(t1, self.rec_a, changed + 0.5)
            rev = proxy.wait_for_event("egress.revoke", request_id=allow1["request_id"])
            self.assertEqual((rev["cause"], rev["action"], rev.get("identity")),
                             ("certificate_revoked", "closed", ID_PREFIX + "worker"), rev)
            self.assert_closed_with(allow1, "certificate_revoked", proxy=proxy)
            self.assert_tunnel_alive(t2, self.rec_b)
        self.assertEqual(len(proxy.events(event="egress.revoke")), 1, proxy.dump_events())


# ---------------------------------------------------------------------------------------------------------
# Proxy-authentication users removed from the credentials file

USERS = {"alice": "alice-revoke-pw", "bob": "bob-revoke-pw"}


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


class RevokeProxyAuthTest(RevokeBase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.lines = {}
        for user, password in USERS.items():
            r = subprocess.run([harness.egressd_binary(), "passwd", user], input=(password + "\n").encode(),
                               capture_output=True, timeout=30)
            if r.returncode != 0:
                raise AssertionError("egressd passwd %s failed: %r" % (user, r))
            cls.lines[user] = r.stdout.decode().strip()

    def setUp(self):
        self.cred_tmp = tempfile.TemporaryDirectory(prefix="egressd-e2e-cred-")
        self.addCleanup(self.cred_tmp.cleanup)
        self.credentials = os.path.join(self.cred_tmp.name, "users.txt")
        self.write_credentials(["alice", "bob"])
        super().setUp()

    def write_credentials(self, users):
        with open(self.credentials, "w") as f:
            f.write("".join(self.lines[u] + "\n" for u in users))

    def extra_yaml(self):
        return super().extra_yaml() + "proxy_auth:\n  credentials: %s\n  realm: e2e\n  required: true\n" % (
            harness.yaml_str(self.credentials))

    def policy_text(self):
        ports = self.ports()
        return f"""version: 1
groups:
  web:
    rules:
      - description: a.test on the test upstreams
        ports: {ports}
        destinations: [a.test]
      - description: loopback by address (guard exemption)
        ports: {ports}
        destinations: [127.0.0.1/32]
clients:
  users:
    description: the users alice and bob
    identities: [alice, bob]
    groups: [web]
"""

    def auth_tunnel(self, user, server):
        c = self.proxy.connect(timeout=5)
        authority = "a.test:%d" % server.port
        c.send("CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n"
               % (authority, authority, basic(user, USERS[user])))
        self.assertEqual(c.read_head(), b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.assertEqual(echo_once(c, user.encode()), user.encode())
        allow = self.proxy.wait_event(event="egress.allow", method="CONNECT", identity=user)
        return c, allow

    def test_removed_user_loses_its_tunnels(self):
        ta, allow_a = self.auth_tunnel("alice", self.rec_a)
        tb, allow_b = self.auth_tunnel("bob", self.rec_b)
        with ta, tb:
            self.write_credentials(["bob"])
            started = time.monotonic()
            self.assert_reload_ok(self.proxy.sighup_reload(), 2, "SIGHUP")
            self.assert_tunnel_closed(ta, self.rec_a, started)
            ev = self.proxy.wait_for_event("egress.revoke", request_id=allow_a["request_id"])
            expected = {"cause": "credentials_revoked", "action": "closed", "client": "users", "method": "CONNECT",
                        "host": "a.test", "port": self.rec_a.port, "identity": "alice",
                        "identity_source": "proxy_auth", "policy_version": 2, "previous_version": 1,
                        "source": allow_a["source"]}
            self.assertEqual({key: ev.get(key) for key in expected}, expected, ev)
            self.assert_closed_with(allow_a, "credentials_revoked")
            self.assert_tunnel_alive(tb, self.rec_b)
        # alice's password no longer opens anything.
        with self.proxy.connect(timeout=10) as c:
            authority = "a.test:%d" % self.rec_a.port
            c.send("CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n"
                   % (authority, authority, basic("alice", USERS["alice"])))
            resp = c.read_response(method="CONNECT")
        self.assertEqual((resp.status, resp.header("X-Egressd-Reason")), (407, "proxy_auth_failed"), resp)
        self.assertEqual(len(self.proxy.events(event="egress.revoke")), 1, self.proxy.dump_events())
        self.assertEqual(self.revocations(cause="credentials_revoked", action="closed"), 1)


if __name__ == "__main__":
    unittest.main()
