"""Proxy authentication (Proxy-Authorization: Basic): 407s, identities in the policy and the events, CONNECT,
optional authentication, secrecy of the credentials, slowed-down failures, the verified cache, the credentials
file at start-up, and `egressd passwd`.

Every password check is a PBKDF2 run of 600000 iterations (a good part of a second of CPU in all): the tests
reuse a few credentials, spread their failures over distinct loopback sources (failures are counted, and
slowed down, per source), and create the credentials file once per test process.
"""

import base64
import json
import os
import re
import shutil
import subprocess
import time
import unittest

import harness

harness.isolate_network()

REALM = "e2e realm"
USERS = {
    "alice": "pw",
    "bob": "bob-pw-4711",
    "svc-batch": "svc-pw-0815",
    "carol": "Carol-S3cret-Passw0rd-e2e",  # long and unique: scanned for in the output
}


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def passwd(user, password, timeout=20):
    return subprocess.run([harness.egressd_binary(), "passwd", user], input=password, capture_output=True,
                          timeout=timeout)


class ProxyAuthTest(harness.ProxyTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        lines = ["# e2e users, made with `egressd passwd`", ""]
        for user, password in USERS.items():
            r = passwd(user, ("%s\n" % password).encode())
            if r.returncode != 0:
                raise AssertionError("egressd passwd %s failed: %r" % (user, r))
            lines.append(r.stdout.decode().strip())
        cls.credentials_lines = lines
        cls.credentials = os.path.join(cls.class_tmp.name, "users.txt")
        with open(cls.credentials, "w") as f:
            f.write("\n".join(lines) + "\n")

    def auth_yaml(self, required=True, credentials=None):
        return "proxy_auth:\n  credentials: %s\n  realm: %s\n  required: %s\n" % (
            json_str(credentials or self.credentials), json_str(REALM), "true" if required else "false")

    def extra_yaml(self):
        return self.auth_yaml(required=True)

    def dns_records(self):
        records = harness.default_records()
        for name in ("public.test", "alice.test", "bob.test", "svc.test"):
            records[name] = {"A": ["127.0.0.1"], "ttl": 60}
        return records

    def policy_text(self):
        up, echo = self.upstream.port, self.echo.port

        def group(name, host):
            return f"""  {name}:
    description: {host} on the loopback upstreams
    rules:
      - description: {host}, and 127.0.0.1 by address (this opens loopback through the address guard)
        ports: [{up}, {echo}]
        destinations: [{host}, 127.0.0.1/32]
"""
        return ("version: 1\nmode: enforce\ngroups:\n" + group("public", "public.test") +
                group("alice-web", "alice.test") + group("bob-web", "bob.test") + group("svc-web", "svc.test") +
                """clients:
  anyone:
    description: every loopback source, whoever it is
    sources: [127.0.0.0/8]
    groups: [public]
  alice:
    description: the user alice, from anywhere
    identities: [alice]
    groups: [alice-web]
  bob-office:
    description: the user bob, only from 127.0.0.2
    identities: [bob]
    sources: [127.0.0.2/32]
    groups: [bob-web]
  services:
    description: every svc-* user
    identities: ["svc-*"]
    groups: [svc-web]
""")

    # -- helpers ---------------------------------------------------------------------------------------
    def url(self, host, path="/hello"):
        return "http://%s:%d%s" % (host, self.upstream.port, path)

    def request(self, host, auth=None, conn=None, source=None, headers=(), proxy=None, path="/hello", timeout=5.0):
        """One GET through the proxy (a fresh connection from `source` unless conn), with Proxy-Authorization
        `auth` if given."""
        hdrs = list(headers)
        if auth is not None:
            hdrs.append(("Proxy-Authorization", auth))
        if conn is not None:
            return self.get(self.url(host, path), headers=hdrs, conn=conn)
        with (proxy or self.proxy).connect(source=source, timeout=timeout) as c:
            return self.get(self.url(host, path), headers=hdrs, conn=c)

    def assert_407(self, resp, reason, proxy=None, source="127.0.0.1"):
        """A 407 from egressd: status, challenge, reason, request id, body, and its egress.deny event."""
        proxy = proxy or self.proxy
        self.assertIsNotNone(resp, "the proxy closed the connection without a response")
        self.assertEqual(resp.status, 407, resp)
        self.assertEqual(resp.reason, "Proxy Authentication Required", resp)
        self.assertEqual(resp.header_all("Proxy-Authenticate"), ['Basic realm="%s", charset="UTF-8"' % REALM], resp)
        self.assertEqual(resp.header("X-Egressd-Reason"), reason, resp)
        rid = resp.header("X-Egressd-Request-Id")
        self.assertTrue(rid and rid != "-", resp)
        self.assertIn(reason.encode(), resp.body)
        self.assertIn(rid.encode(), resp.body)
        ev = proxy.wait_event(event="egress.deny", request_id=rid)
        self.assertEqual(ev["reason"], reason, ev)
        self.assertEqual(ev["mode"], "enforce", ev)
        self.assertTrue(ev["source"].startswith(source + ":"), ev)
        self.assertNotIn("identity", ev)
        self.assertNotIn("identity_source", ev)
        self.assertNotIn("rule_group", ev)
        return ev

    def assert_allowed(self, resp, client, identity, host, proxy=None, method="GET"):
        """A 200 from the upstream (unless resp is None) and its egress.allow event for this client and identity."""
        proxy = proxy or self.proxy
        if resp is not None:
            self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)
        ev = proxy.wait_event(lambda e: e["event"] == "egress.allow" and e["host"] == host and
                              e.get("method") == method and e.get("identity") == identity and e["client"] == client)
        self.assertEqual(ev["reason"], "allowed", ev)
        if identity is None:
            self.assertNotIn("identity_source", ev)
        else:
            self.assertEqual(ev["identity_source"], "proxy_auth", ev)
        return ev

    def upstream_saw_no_credentials(self):
        for r in self.upstream.requests:
            names = [k.lower() for k, _ in r["headers"]]
            self.assertNotIn("proxy-authorization", names, r)
            self.assertNotIn("proxy-authenticate", names, r)
            for _, v in r["headers"]:
                self.assertNotIn("Basic ", v, r)

    # -- required: true --------------------------------------------------------------------------------
    def test_required_without_credentials_gets_407(self):
        resp = self.request("alice.test")
        ev = self.assert_407(resp, "proxy_auth_required")
        self.assertEqual(ev["method"], "GET")
        self.assertIsNone(resp.header("Connection"), "a 407 without a body keeps the connection: %r" % resp)
        # Refused before the policy, before DNS, before any upstream.
        self.assert_upstreams_untouched()
        self.assertEqual(self.dns.count("alice.test"), 0)
        self.assertEqual(self.proxy.events(event="egress.allow"), [])
        # curl sees the same challenge.
        r = harness.curl("-x", "http://127.0.0.1:%d" % self.proxy.port, "-D", "-", "-o", "/dev/null",
                         self.url("alice.test"))
        head = r.stdout.decode("latin-1")
        self.assertTrue(head.startswith("HTTP/1.1 407 "), (head, r.stderr))
        self.assertIn('proxy-authenticate: basic realm="%s"' % REALM.lower(), head.lower())
        self.assertEqual(len(self.proxy.wait_events(2, event="egress.deny", reason="proxy_auth_required")), 2)
        self.assert_upstreams_untouched()

    def test_wrong_credentials_get_407_failed(self):
        # Each kind from its own source: failures from one source are slowed down after three.
        cases = [
            ("127.0.0.11", basic("alice", "not-pw")),       # wrong password
            ("127.0.0.12", basic("mallory", "pw")),         # unknown user
            ("127.0.0.13", "Bearer x"),                     # another scheme
            ("127.0.0.14", "Basic !!!notbase64"),           # not base64
            ("127.0.0.15", "Basic YWxpY2U6cHc"),            # "alice:pw" without its padding: not strict base64
            ("127.0.0.16", "Basic " + base64.b64encode(b"alice").decode()),  # no colon
            ("127.0.0.17", "Basic"),                        # no credentials
            ("127.0.0.18", "Basic " + base64.b64encode(b":pw").decode()),   # empty user
        ]
        for source, auth in cases:
            with self.subTest(auth=auth):
                resp = self.request("alice.test", auth=auth, source=source)
                self.assert_407(resp, "proxy_auth_failed", source=source)
        self.assertEqual(len(self.proxy.events(event="egress.deny", reason="proxy_auth_failed")), len(cases))
        self.assertEqual(self.proxy.events(event="egress.allow"), [])
        self.assert_upstreams_untouched()
        self.assertEqual(self.dns.count("alice.test"), 0)

    def test_right_credentials_with_curl(self):
        r = harness.curl("-x", "http://127.0.0.1:%d" % self.proxy.port, "--proxy-user", "alice:pw", "-D", "-",
                         self.url("alice.test"))
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode("latin-1")
        self.assertTrue(out.startswith("HTTP/1.1 200"), out)
        self.assertTrue(out.endswith("\r\n\r\nhello"), out)
        self.assertNotIn("proxy-authenticate", out.lower())
        ev = self.proxy.wait_event(event="egress.allow", host="alice.test")
        self.assertEqual(ev["client"], "alice", ev)
        self.assertEqual(ev["identity"], "alice", ev)
        self.assertEqual(ev["identity_source"], "proxy_auth", ev)
        self.assertEqual(ev["port"], self.upstream.port)
        self.assertEqual(ev["rule_group"], "alice-web", ev)
        self.assertEqual(ev["method"], "GET")
        reqs = self.upstream.requests
        self.assertEqual(len(reqs), 1, reqs)
        self.assertEqual(reqs[0]["path"], "/hello")
        self.upstream_saw_no_credentials()
        # The identity's client decides, with its own groups only: alice may not reach what source-matched
        # clients may.
        resp = self.request("public.test", auth=basic("alice", "pw"))
        self.assertEqual(resp.status, 403, resp)
        self.assertEqual(resp.header("X-Egressd-Reason"), "no_matching_rule")
        deny = self.proxy.wait_event(event="egress.deny", request_id=resp.header("X-Egressd-Request-Id"))
        self.assertEqual((deny["client"], deny.get("identity"), deny.get("identity_source")),
                         ("alice", "alice", "proxy_auth"), deny)
        # The scheme is case-insensitive.
        resp = self.request("alice.test", auth=basic("alice", "pw").replace("Basic", "bASIC"))
        self.assert_allowed(resp, "alice", "alice", "alice.test")
        self.assertEqual(len(self.upstream.requests), 2)
        self.upstream_saw_no_credentials()
        self.assertEqual(self.proxy.events(reason="proxy_auth_failed"), [])

    # -- CONNECT ---------------------------------------------------------------------------------------
    def test_connect_with_credentials(self):
        authority = "alice.test:%d" % self.echo.port
        with self.proxy.connect() as c:
            c.send("CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n"
                   % (authority, authority, basic("alice", "pw")))
            self.assertEqual(c.read_head(), b"HTTP/1.1 200 Connection established\r\n\r\n")
            c.send(b"ping through the tunnel")
            self.assertEqual(c.recv_exact(23), b"ping through the tunnel")
        ev = self.assert_allowed(None, "alice", "alice", "alice.test", method="CONNECT")
        self.assertEqual(ev["port"], self.echo.port)
        self.assertEqual(self.echo.connections, 1)
        # curl -p: CONNECT with the credentials, then plain HTTP inside the tunnel.
        r = harness.curl("-p", "-x", "http://127.0.0.1:%d" % self.proxy.port, "--proxy-user", "alice:pw",
                         self.url("alice.test"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"hello")
        ev = self.proxy.wait_event(event="egress.allow", method="CONNECT", port=self.upstream.port)
        self.assertEqual((ev["client"], ev["identity"], ev["identity_source"]), ("alice", "alice", "proxy_auth"))
        self.assertEqual(len(self.upstream.requests), 1)
        self.upstream_saw_no_credentials()

    def test_connect_without_credentials_then_retry_on_same_connection(self):
        authority = "alice.test:%d" % self.echo.port
        with self.proxy.connect() as c:
            c.send("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority))
            resp = c.read_response(method="CONNECT")
            ev = self.assert_407(resp, "proxy_auth_required")
            self.assertEqual(ev["method"], "CONNECT")
            self.assertEqual(self.echo.connections, 0)
            self.assertTrue(c.still_open(), "the proxy closed the connection after a 407 to CONNECT")
            c.send("CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n"
                   % (authority, authority, basic("alice", "pw")))
            self.assertEqual(c.read_head(), b"HTTP/1.1 200 Connection established\r\n\r\n")
            c.send(b"second try")
            self.assertEqual(c.recv_exact(10), b"second try")
        allow = self.proxy.wait_event(event="egress.allow", method="CONNECT")
        self.assertEqual((allow["client"], allow["identity"]), ("alice", "alice"))
        self.assertEqual(self.echo.connections, 1)
        # curl without credentials gets the 407 for its CONNECT and fails.
        r = harness.curl("-p", "-x", "http://127.0.0.1:%d" % self.proxy.port, self.url("alice.test"))
        self.assertNotEqual(r.returncode, 0, r)
        self.assertIn(b"407", r.stderr)
        self.assertEqual(self.upstream.connections, 0)

    # -- required: false -------------------------------------------------------------------------------
    def test_optional_auth_decides_by_source_without_credentials(self):
        proxy = self.start_proxy(extra_yaml=self.auth_yaml(required=False))
        # No credentials: the source-matched client, which may reach public.test and not alice.test.
        resp = self.request("public.test", proxy=proxy)
        self.assert_allowed(resp, "anyone", None, "public.test", proxy=proxy)
        resp = self.request("alice.test", proxy=proxy)
        self.assertEqual(resp.status, 403, resp)
        self.assertEqual(resp.header("X-Egressd-Reason"), "no_matching_rule")
        self.assertIsNone(resp.header("Proxy-Authenticate"), resp)
        deny = proxy.wait_event(event="egress.deny", request_id=resp.header("X-Egressd-Request-Id"))
        self.assertEqual(deny["client"], "anyone")
        self.assertNotIn("identity", deny)
        # Wrong credentials are still refused, not treated as none.
        resp = self.request("public.test", auth=basic("alice", "wrong"), proxy=proxy, source="127.0.0.21")
        self.assert_407(resp, "proxy_auth_failed", proxy=proxy, source="127.0.0.21")
        resp = self.request("public.test", auth="Bearer x", proxy=proxy, source="127.0.0.22")
        self.assert_407(resp, "proxy_auth_failed", proxy=proxy, source="127.0.0.22")
        # Right ones give the identity's client.
        resp = self.request("alice.test", auth=basic("alice", "pw"), proxy=proxy)
        self.assert_allowed(resp, "alice", "alice", "alice.test", proxy=proxy)
        self.assertEqual([r["path"] for r in self.upstream.requests], ["/hello", "/hello"])
        self.upstream_saw_no_credentials()
        self.assertEqual(proxy.events(reason="proxy_auth_required"), [])

    # -- secrecy ---------------------------------------------------------------------------------------
    def test_credentials_never_forwarded_nor_logged(self):
        good = basic("carol", USERS["carol"])
        wrong_password = "Wr0ng-Carol-Secret-e2e"
        bad = basic("carol", wrong_password)
        # carol is a user no client names: she is decided as her source, with her identity in the events.
        with self.proxy.connect() as c:
            resp = self.request("public.test", auth=good, conn=c,
                                headers=[("Connection", "keep-alive, Proxy-Authorization")])
            self.assert_allowed(resp, "anyone", "carol", "public.test")
            resp = self.get(self.url("public.test", "/echo"), conn=c, method="POST", body=b"body",
                            headers=[("Proxy-Authorization", good), ("X-Other", "kept")])
            self.assertEqual((resp.status, resp.body), (200, b"body"))
        resp = self.request("public.test", auth=bad, source="127.0.0.31")
        self.assert_407(resp, "proxy_auth_failed", source="127.0.0.31")
        with self.proxy.connect() as c:
            authority = "public.test:%d" % self.upstream.port
            c.send("CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n" % (authority, authority, good))
            self.assertEqual(c.read_head(), b"HTTP/1.1 200 Connection established\r\n\r\n")
            c.send("GET /hello HTTP/1.1\r\nHost: public.test\r\n\r\n")
            resp = c.read_response()
            self.assertEqual((resp.status, resp.body), (200, b"hello"))
        reqs = self.upstream.requests
        self.assertEqual(len(reqs), 3, reqs)
        self.assertEqual(dict(reqs[1]["headers"]).get("X-Other"), "kept")
        self.upstream_saw_no_credentials()
        allows = self.proxy.wait_events(3, event="egress.allow", identity="carol")
        self.assertEqual(len(allows), 3, self.proxy.dump_events())
        self.assertEqual([e["method"] for e in allows], ["GET", "POST", "CONNECT"], allows)
        # Everything egressd wrote, through a clean shutdown.
        self.assertEqual(self.proxy.stop(), 0)
        with self.proxy.lock:
            output = "\n".join(self.proxy.raw_lines + self.proxy.stderr_lines)
        self.assertIn('"identity":"carol"', output)
        for secret in (USERS["carol"], wrong_password, good.split()[1], bad.split()[1], "Basic ", "basic "):
            self.assertNotIn(secret, output, "%r appears in egressd's output" % secret)
        self.assertNotIn("proxy-authorization", output.lower())

    # -- identities --------------------------------------------------------------------------------------
    def test_identity_with_sources(self):
        auth = basic("bob", USERS["bob"])
        # From 127.0.0.1 bob is not bob-office (sources: 127.0.0.2/32): he is the source's client.
        with self.proxy.connect(source="127.0.0.1") as c:
            resp = self.request("bob.test", auth=auth, conn=c)
            self.assertEqual(resp.status, 403, resp)
            self.assertEqual(resp.header("X-Egressd-Reason"), "no_matching_rule")
            deny = self.proxy.wait_event(event="egress.deny", request_id=resp.header("X-Egressd-Request-Id"))
            self.assertEqual((deny["client"], deny.get("identity"), deny.get("identity_source")),
                             ("anyone", "bob", "proxy_auth"), deny)
            resp = self.request("public.test", auth=auth, conn=c)
            self.assert_allowed(resp, "anyone", "bob", "public.test")
        # From 127.0.0.2 he is.
        with self.proxy.connect(source="127.0.0.2") as c:
            resp = self.request("bob.test", auth=auth, conn=c)
            ev = self.assert_allowed(resp, "bob-office", "bob", "bob.test")
            self.assertTrue(ev["source"].startswith("127.0.0.2:"), ev)
            self.assertEqual(ev["rule_group"], "bob-web")
            resp = self.request("public.test", auth=auth, conn=c)
            self.assertEqual(resp.status, 403, resp)
        # Without credentials from 127.0.0.2 (required: true) there is no identity to match at all.
        resp = self.request("bob.test", source="127.0.0.2")
        self.assert_407(resp, "proxy_auth_required", source="127.0.0.2")
        self.assertEqual([r["path"] for r in self.upstream.requests], ["/hello", "/hello"])
        self.assertEqual(self.proxy.events(reason="proxy_auth_failed"), [])

    def test_prefix_identity(self):
        resp = self.request("svc.test", auth=basic("svc-batch", USERS["svc-batch"]))
        ev = self.assert_allowed(resp, "services", "svc-batch", "svc.test")
        self.assertEqual(ev["rule_group"], "svc-web")
        # The pattern's client has only its own groups.
        resp = self.request("alice.test", auth=basic("svc-batch", USERS["svc-batch"]))
        self.assertEqual(resp.status, 403, resp)
        deny = self.proxy.wait_event(event="egress.deny", request_id=resp.header("X-Egressd-Request-Id"))
        self.assertEqual((deny["client"], deny["identity"]), ("services", "svc-batch"), deny)
        # alice does not match svc-*.
        resp = self.request("svc.test", auth=basic("alice", "pw"))
        self.assertEqual(resp.status, 403, resp)
        deny = self.proxy.wait_event(event="egress.deny", request_id=resp.header("X-Egressd-Request-Id"))
        self.assertEqual((deny["client"], deny["identity"]), ("alice", "alice"), deny)

    # -- failures and the cache ------------------------------------------------------------------------
    def test_repeated_failures_are_slowed_down(self):
        # One connection (so one worker) from one source: six wrong passwords, timed, then the right one.
        source = "127.0.0.41"
        times = []
        with self.proxy.connect(source=source, timeout=30) as c:
            for i in range(6):
                start = time.monotonic()
                resp = self.request("alice.test", auth=basic("alice", "wrong-%d" % i), conn=c)
                times.append(time.monotonic() - start)
                self.assert_407(resp, "proxy_auth_failed", source=source)
            resp = self.request("alice.test", auth=basic("alice", "pw"), conn=c)
            self.assert_allowed(resp, "alice", "alice", "alice.test")
        # From a fresh connection too.
        resp = self.request("alice.test", auth=basic("alice", "pw"), source=source)
        self.assertEqual(resp.status, 200, resp)
        msg = "attempt durations: %s" % ["%.3f" % t for t in times]
        for t in times[3:]:
            self.assertGreaterEqual(t, 0.2, msg)
        # The first three pay only the password check (the quickest of them is its cost: the very first may also
        # pay a cold start, seconds in a sanitizer build); the sixth waits seconds more (2 s by the schedule).
        check = min(times[:3])
        self.assertGreaterEqual(times[5], check + 1.0, msg)
        self.assertGreater(sum(times[3:]), 3 * check + 1.0, msg)
        self.assertEqual(len(self.upstream.requests), 2)

    def test_failures_are_counted_per_source_across_connections(self):
        # README: "after three failures within a minute, a source's next answers are delayed". Each attempt
        # on a fresh connection (the kernel spreads them over the workers); malformed credentials cost no
        # password check, so an attempt's time is its delay.
        source = "127.0.0.51"
        attempts = []
        for i in range(7):
            start = time.monotonic()
            resp = self.request("alice.test", auth="Basic !!!%d" % i, source=source, timeout=15)
            elapsed = time.monotonic() - start
            self.assertEqual(resp.status, 407, resp)
            attempts.append((resp.header("X-Egressd-Request-Id")[8:10], round(elapsed, 3)))
            if i >= 3 and elapsed < 0.4:
                self.fail("attempt %d from %s, after %d failures from that source, was answered in %.3f s "
                          "without delay; (worker, seconds) per attempt: %s"
                          % (i + 1, source, i, elapsed, attempts))

    def test_keep_alive_uses_the_verified_cache(self):
        auth = basic("alice", "pw")
        with self.proxy.connect() as c:
            r1 = self.request("alice.test", auth=auth, conn=c)
            r2 = self.request("alice.test", auth=auth, conn=c, path="/echo")
        self.assertEqual((r1.status, r1.body), (200, b"hello"))
        self.assertEqual(r2.status, 200, r2)
        allows = self.proxy.wait_events(2, event="egress.allow")
        self.assertEqual(len(allows), 2, allows)
        for ev in allows:
            self.assertEqual((ev["client"], ev["identity"], ev["identity_source"]), ("alice", "alice", "proxy_auth"))
        self.assertNotEqual(allows[0]["request_id"], allows[1]["request_id"])
        close = self.proxy.wait_event(event="egress.close", request_id=allows[1]["request_id"])
        self.assertEqual(close["requests"], 2)
        self.assertEqual([r["path"] for r in self.upstream.requests], ["/hello", "/echo"])
        self.upstream_saw_no_credentials()
        time.sleep(0.2)
        self.assertEqual(len(self.proxy.events(event="egress.allow")), 2)
        self.assertEqual(self.proxy.events(event="egress.deny"), [])

    # -- 407 and the connection ------------------------------------------------------------------------
    def test_407_with_a_body_or_http10_closes_the_connection(self):
        with self.proxy.connect() as c:
            c.send("POST %s HTTP/1.1\r\nHost: alice.test\r\nContent-Length: 40\r\n\r\n" % self.url("alice.test")
                   + "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n\r\n")
            resp = c.read_response()
            self.assert_407(resp, "proxy_auth_required")
            self.assertEqual(resp.header("Connection"), "close", resp)
            self.assertTrue(c.closed_by_peer(), "the connection stayed open after a 407 with an unread body")
        with self.proxy.connect() as c:
            c.send("GET %s HTTP/1.0\r\nHost: alice.test\r\n\r\n" % self.url("alice.test"))
            resp = c.read_response()
            self.assert_407(resp, "proxy_auth_required")
            self.assertTrue(c.closed_by_peer())
        self.assertEqual(len(self.proxy.events(event="egress.deny")), 2)
        self.assert_upstreams_untouched()

    def test_407_honours_connection_close(self):
        # RFC 9112 9.6: after a request with "Connection: close" the server closes once it has answered, and
        # says so. egressd does it for its 403s; the 407 must too.
        with self.proxy.connect() as c:
            c.send("GET %s HTTP/1.1\r\nHost: alice.test\r\nConnection: close\r\n\r\n" % self.url("alice.test"))
            resp = c.read_response()
            self.assert_407(resp, "proxy_auth_required")
            self.assertEqual(resp.header("Connection"), "close", resp)
            self.assertTrue(c.closed_by_peer(), "the connection stayed open after a 407 to Connection: close")

    def test_407_event_names_the_destination_not_the_request_target(self):
        # Every decision event carries the destination as host and port (README, Events); a 407's must not
        # be the raw request target, whose path and query may hold secrets that do not belong in the logs.
        resp = self.request("alice.test", path="/hello?token=query-secret-e2e")
        http_ev = self.assert_407(resp, "proxy_auth_required")
        authority = "alice.test:%d" % self.echo.port
        with self.proxy.connect() as c:
            c.send("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority))
            connect_ev = self.assert_407(c.read_response(method="CONNECT"), "proxy_auth_required")
        self.assertEqual((http_ev["method"], http_ev["host"], http_ev["port"]),
                         ("GET", "alice.test", self.upstream.port), http_ev)
        self.assertEqual((connect_ev["method"], connect_ev["host"], connect_ev["port"]),
                         ("CONNECT", "alice.test", self.echo.port), connect_ev)
        with self.proxy.lock:
            output = "\n".join(self.proxy.raw_lines)
        self.assertNotIn("query-secret-e2e", output)

    # -- configuration and the command line ------------------------------------------------------------
    def test_bad_credentials_file_is_refused_at_start(self):
        d = os.path.join(self.tmp.name, "badcreds")
        os.makedirs(d)
        bad = os.path.join(d, "users.txt")
        with open(bad, "w") as f:
            f.write(self.credentials_lines[2] + "\n\nbob:$pbkdf2-sha256$600000$notbase64$AAAA\n")
        shutil.copy(self.proxy.policy_path, os.path.join(d, "policy.yaml"))
        with open(self.proxy.config_path) as f:
            config = f.read()
        good_block = self.auth_yaml(required=True)
        self.assertIn(good_block.rstrip("\n"), config)
        config_path = os.path.join(d, "egressd.yaml")
        with open(config_path, "w") as f:
            f.write(config.replace(good_block.rstrip("\n"), self.auth_yaml(credentials=bad).rstrip("\n")))
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        binary = harness.egressd_binary()
        check = subprocess.run([binary, "config", "check", config_path], capture_output=True, timeout=20, env=env)
        self.assertEqual(check.returncode, 1, check)
        err = check.stderr.decode()
        self.assertIn("%s:3: error:" % bad, err)
        self.assertNotIn("%s:1:" % bad, err)
        self.assertIn(b"invalid", check.stdout)
        run = subprocess.run([binary, "run", "--config", config_path], capture_output=True, timeout=20, env=env,
                             stdin=subprocess.DEVNULL)
        self.assertEqual(run.returncode, 1, run)
        self.assertIn("%s:3: error:" % bad, run.stderr.decode())
        self.assertNotIn(b"egressd.listening", run.stdout)
        # A credentials file that is missing is refused the same way.
        missing = os.path.join(d, "missing.txt")
        with open(config_path, "w") as f:
            f.write(config.replace(good_block.rstrip("\n"), self.auth_yaml(credentials=missing).rstrip("\n")))
        check = subprocess.run([binary, "config", "check", config_path], capture_output=True, timeout=20, env=env)
        self.assertEqual(check.returncode, 1, check)
        self.assertIn("%s: error:" % missing, check.stderr.decode())
        # The good file, in the running proxy's own configuration, passes.
        check = subprocess.run([binary, "config", "check", self.proxy.config_path], capture_output=True, timeout=20,
                               env=env)
        self.assertEqual(check.returncode, 0, check)

    def test_passwd_command(self):
        r = passwd("alice", b"pw\n")
        self.assertEqual(r.returncode, 0, r)
        line = r.stdout.decode()
        self.assertTrue(line.startswith("alice:$pbkdf2-sha256$600000$"), line)
        self.assertTrue(line.endswith("\n") and line.count("\n") == 1, line)
        m = re.fullmatch(r"alice:\$pbkdf2-sha256\$600000\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)\n", line)
        self.assertIsNotNone(m, line)
        self.assertGreaterEqual(len(base64.b64decode(m.group(1), validate=True)), 16)
        self.assertEqual(len(base64.b64decode(m.group(2), validate=True)), 32)
        self.assertNotIn(b"pw", r.stderr)
        # A random salt: the same password never gives the same line.
        again = passwd("alice", b"pw\n")
        self.assertEqual(again.returncode, 0, again)
        self.assertNotEqual(again.stdout, r.stdout)
        for args, stdin in (([], b"pw\n"), (["a b"], b"pw\n"), (["alice"], b""), (["alice"], b"\n"),
                            (["alice", "bob"], b"pw\n"), (["x" * 65], b"pw\n"), (["al:ice"], b"pw\n")):
            with self.subTest(args=args, stdin=stdin):
                r = subprocess.run([harness.egressd_binary(), "passwd", *args], input=stdin, capture_output=True,
                                   timeout=20)
                self.assertEqual(r.returncode, 2, r)
                self.assertEqual(r.stdout, b"")
                self.assertTrue(r.stderr.startswith(b"egressd: "), r.stderr)


def json_str(text):
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(str(text))


if __name__ == "__main__":
    unittest.main()
