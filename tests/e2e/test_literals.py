"""IP literals: only the canonical dotted quad and bracketed IPv6; every other numeric form is a 400."""

import unittest

import harness

harness.isolate_network()

# Forms of 127.0.0.1 that resolvers and libraries disagree about.
NON_CANONICAL = ["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "0x7f.0.0.1", "127.0.0.01", "127.000.000.001"]


class IpLiteralTest(harness.ProxyTestCase):

    def assert_bad_request(self, resp, what):
        self.assertIsNotNone(resp, "%s: closed without a response" % what)
        self.assertEqual(resp.status, 400, "%s: %r" % (what, resp))
        self.assertEqual(resp.header("X-Egressd-Reason"), "bad_request", what)
        self.assertTrue(resp.header("X-Egressd-Request-Id"), what)

    def test_non_canonical_literals_in_connect(self):
        for form in NON_CANONICAL:
            with self.subTest(form=form):
                c, resp = self.connect_tunnel("%s:%d" % (form, self.echo.port))
                with c:
                    self.assert_bad_request(resp, form)
        self.assert_upstreams_untouched()
        self.assertEqual(self.dns.names_seen(), [], "an IP literal must never reach DNS")
        self.assertEqual(self.proxy.events(event="egress.allow"), [])

    def test_non_canonical_literals_in_absolute_form(self):
        for form in NON_CANONICAL:
            with self.subTest(form=form):
                resp = self.proxy.send_raw(b"GET http://%s:%d/hello HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
                                           % (form.encode(), self.upstream.port))
                self.assert_bad_request(resp, form)
        self.assert_upstreams_untouched()
        self.assertEqual(self.dns.names_seen(), [])
        self.assertEqual(self.proxy.events(event="egress.allow"), [])

    def test_mapped_ipv6_literal_is_decided_by_ipv6_rules(self):
        # [::ffff:127.0.0.1] is a valid IPv6 literal. It matches only IPv6 CIDRs, and no IPv6 rule opens it.
        c, resp = self.connect_tunnel("[::ffff:127.0.0.1]:%d" % self.echo.port)
        with c:
            self.assertEqual(resp.status, 403, resp)
            rid = resp.header("X-Egressd-Request-Id")
        ev = self.proxy.wait_event(event="egress.deny", request_id=rid)
        self.assertIn(ev["reason"], ("no_matching_rule", "address_guard"), ev)
        resp = self.proxy.send_raw(b"GET http://[::ffff:127.0.0.1]:%d/hello HTTP/1.1\r\nHost: x\r\n\r\n"
                                   % self.upstream.port)
        self.assertEqual(resp.status, 403, resp)
        self.assert_upstreams_untouched()
        self.assertEqual(self.dns.names_seen(), [])

    def test_canonical_literal_allowed_by_cidr(self):
        c, resp = self.connect_tunnel("127.0.0.1:%d" % self.echo.port)
        with c:
            self.assertEqual(resp.status, 200, resp)
            c.send(b"literal")
            self.assertEqual(c.recv_exact(7), b"literal")
        resp = self.get("http://127.0.0.1:%d/hello" % self.upstream.port)
        self.assertEqual((resp.status, resp.body), (200, b"hello"))
        evs = self.proxy.wait_events(2, event="egress.allow")
        self.assertEqual(len(evs), 2)
        for ev in evs:
            self.assertEqual(ev["host"], "127.0.0.1")
            self.assertEqual(ev["address"], "127.0.0.1")
        self.assertEqual(self.dns.names_seen(), [])
        host = dict((k.lower(), v) for k, v in self.upstream.requests[0]["headers"])["host"]
        self.assertEqual(host, "127.0.0.1:%d" % self.upstream.port)

    def test_guarded_literal_is_refused(self):
        # 127.0.0.2 is loopback and only 127.0.0.1/32 is opened: refused before any connection.
        c, resp = self.connect_tunnel("127.0.0.2:%d" % self.echo.port)
        with c:
            self.assertEqual(resp.status, 403, resp)
            rid = resp.header("X-Egressd-Request-Id")
        ev = self.proxy.wait_event(event="egress.deny", request_id=rid)
        self.assertIn(ev["reason"], ("no_matching_rule", "address_guard"), ev)
        self.assertEqual(self.sentinel.count, 0)


    def test_invalid_host_names(self):
        names = ["a" * 64 + ".test", ".".join(["abcdefghi"] * 26) + ".test", "a..test", "exa$mple.test",
                 "allowed.test..", "b\u00fccher.test"]
        for name in names:
            with self.subTest(name=name[:40]):
                resp = self.proxy.send_raw(("GET http://%s:%d/hello HTTP/1.1\r\nHost: x\r\n\r\n"
                                            % (name, self.upstream.port)).encode("utf-8"))
                self.assert_bad_request(resp, name)
        self.assertEqual(self.dns.names_seen(), [])
        self.assert_upstreams_untouched()

if __name__ == "__main__":
    unittest.main()
