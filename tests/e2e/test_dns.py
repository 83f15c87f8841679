"""DNS through the proxy's resolver: failures map to 502/504 with their reason, names are absolute."""

import unittest

import harness

harness.isolate_network()


class DnsTest(harness.ProxyTestCase):

    def assert_dns_failure(self, name, status, reason, connect=False):
        if connect:
            c, resp = self.connect_tunnel("%s:%d" % (name, self.echo.port))
            c.close()
        else:
            resp = self.get(self.up_url(name))
        self.assertIsNotNone(resp)
        self.assertEqual(resp.status, status, resp)
        self.assertEqual(resp.header("X-Egressd-Reason"), reason, resp)
        rid = resp.header("X-Egressd-Request-Id")
        self.assertTrue(rid and rid != "-")
        self.assertIn(reason.encode(), resp.body)
        self.assertGreaterEqual(self.dns.count(name), 1)
        # One decision event: an error (not a policy denial) whose reason says what DNS answered; no address, no
        # connection.
        ev = self.proxy.wait_event(event="egress.error", request_id=rid)
        self.proxy.wait_event(event="egress.close", request_id=rid)
        decisions = [e for e in self.proxy.events(request_id=rid) if e["event"] != "egress.close"]
        self.assertEqual(decisions, [ev])
        self.assertEqual(ev["reason"], reason, ev)
        self.assertEqual(ev["host"], name)
        self.assertEqual(ev["client"], "tests")
        self.assertIsNone(ev.get("address"), ev)
        self.assertEqual(self.proxy.events(event="egress.deny", request_id=rid), [])
        if not connect:
            self.assertEqual(ev["status"], status, ev)
        self.assert_upstreams_untouched()
        return ev

    def test_nxdomain(self):
        self.assert_dns_failure("nx.dns.test", 502, "dns_nxdomain")

    def test_servfail(self):
        self.assert_dns_failure("servfail.dns.test", 502, "dns_servfail")

    def test_refused_is_servfail(self):
        self.assert_dns_failure("refused.dns.test", 502, "dns_servfail")

    def test_no_addresses(self):
        self.assert_dns_failure("empty.dns.test", 502, "dns_no_addresses")

    def test_timeout(self):
        self.assert_dns_failure("drop.dns.test", 504, "dns_timeout")

    def test_failures_through_connect(self):
        self.assert_dns_failure("nx.dns.test", 502, "dns_nxdomain", connect=True)
        self.assert_dns_failure("drop.dns.test", 504, "dns_timeout", connect=True)

    def test_dns_failure_is_not_logged_as_allowed(self):
        # A request that DNS failed never reached anyone: an egress.allow event for it would be counted as
        # allowed traffic by every consumer of the log.
        resp = self.get(self.up_url("nx.dns.test"))
        rid = resp.header("X-Egressd-Request-Id")
        self.proxy.wait_event(event="egress.close", request_id=rid)
        self.assertEqual(self.proxy.events(event="egress.allow", request_id=rid), [],
                         "a request refused for NXDOMAIN is logged as egress.allow")

    def test_single_label_name_is_not_expanded(self):
        resp = self.get(self.up_url("intranet"))
        self.assertEqual((resp.status, resp.body), (200, b"hello"))
        names = self.dns.names_seen()
        self.assertTrue(names, "no DNS query")
        for qname, qtype in names:
            self.assertEqual(qname, "intranet", "the resolver asked for %r: a search domain was appended" % qname)
        self.assertGreaterEqual(self.dns.count("intranet", "A"), 1)

    def test_queries_are_a_and_aaaa_for_the_name_only(self):
        resp = self.get(self.up_url())
        self.assertEqual(resp.status, 200)
        qnames = {q for q, _ in self.dns.names_seen()}
        self.assertEqual(qnames, {"allowed.test"})
        qtypes = {t for _, t in self.dns.names_seen()}
        self.assertIn("A", qtypes)

    def test_positive_answers_are_cached(self):
        # allowed.test carries TTL 60 (min_ttl 0s, max_ttl 5m): one resolution serves several requests on
        # the same worker. With two workers, at most two lookups of each type.
        for _ in range(6):
            resp = self.get(self.up_url())
            self.assertEqual(resp.status, 200)
        self.assertLessEqual(self.dns.count("allowed.test", "A"), 2)


if __name__ == "__main__":
    unittest.main()
