"""The address guard after DNS: every forbidden answer form is refused before any connection, and DNS
rebinding never gets a connection to a refused address."""

import ipaddress
import unittest

import harness

harness.isolate_network()

# name -> (the answer it gets, the guarded set the proxy must name)
FORBIDDEN = {
    "loop2.guard.test": ("127.0.0.2", "loopback"),
    "private.guard.test": ("10.0.0.1", "private"),
    "metadata.guard.test": ("169.254.169.254", "cloud_metadata"),
    "v6loop.guard.test": ("::1", "loopback"),  # ::1/128 is opened only on the IPv6 echo port
    "mapped.guard.test": ("::ffff:169.254.169.254", "cloud_metadata"),
    "cgnat.guard.test": ("100.64.0.1", "cgnat"),
    # 10.88.0.1 in the /64 layout of the local-use NAT64 prefix (RFC 8215, RFC 6052 section 2.2): once allowed
    # and connected to, when only the /96 layout was read.
    "nat64-local.guard.test": ("64:ff9b:1:0:a:5800:100:0", "private"),
}


class AddressGuardTest(harness.ProxyTestCase):

    def dns_records(self):
        records = harness.default_records()
        state = {"n": 0}

        def rebind(qtype, count):
            if qtype != "A":
                return {"ttl": 0}
            # Alternates on every A query: 127.0.0.1, 127.0.0.2, 127.0.0.1, ...
            return {"A": ["127.0.0.1" if count % 2 == 1 else "127.0.0.2"], "ttl": 0}

        records["rebind.test"] = rebind
        records["nat64-local.guard.test"] = {"AAAA": ["64:ff9b:1:0:a:5800:100:0"], "ttl": 60}
        return records

    def check_forbidden(self, name, connect):
        answer, guard = FORBIDDEN[name]
        if connect:
            c, resp = self.connect_tunnel("%s:%d" % (name, self.upstream.port))
            c.close()
        else:
            resp = self.get(self.up_url(name))
        rid = self.assert_refused(resp, 403, "address_guard")
        ev = self.proxy.wait_event(event="egress.deny", request_id=rid)
        self.assertEqual(ev["host"], name)
        self.assertEqual(ipaddress.ip_address(ev["address"]), ipaddress.ip_address(answer), ev)
        self.assertIn("guard", ev, "an address_guard refusal names the guarded set: %r" % ev)
        self.assertEqual(ev["guard"], guard, ev)
        self.assertGreaterEqual(self.dns.count(name), 1, "refused after DNS, not before")

    def test_forbidden_answers_absolute_form(self):
        for name in FORBIDDEN:
            with self.subTest(name=name):
                self.check_forbidden(name, connect=False)
        self.assert_upstreams_untouched()

    def test_forbidden_answers_connect(self):
        for name in FORBIDDEN:
            with self.subTest(name=name):
                self.check_forbidden(name, connect=True)
        self.assert_upstreams_untouched()

    def test_mixed_answer_connects_only_to_vetted_address(self):
        # A: 127.0.0.2, 10.0.0.1, 127.0.0.1: only the last passes the guard, and only it is connected to.
        resp = self.get(self.up_url("mixed.guard.test"))
        self.assertEqual((resp.status, resp.body), (200, b"hello"))
        ev = self.proxy.wait_event(event="egress.allow", host="mixed.guard.test")
        self.assertEqual(ev["address"], "127.0.0.1")
        self.assertIn("detail", ev)
        self.assertIn("address_guard", ev["detail"])
        self.assertEqual(self.sentinel.count, 0, self.sentinel.accepted)
        self.assertEqual(len(self.upstream.requests), 1)

    def test_dns_rebinding(self):
        statuses = []
        for i in range(10):
            resp = self.get(self.up_url("rebind.test"))
            statuses.append(resp.status)
            self.assertIn(resp.status, (200, 403), resp)
            if resp.status == 403:
                self.assertEqual(resp.header("X-Egressd-Reason"), "address_guard")
        allows = self.proxy.wait_events(statuses.count(200), event="egress.allow", host="rebind.test")
        denies = self.proxy.wait_events(statuses.count(403), event="egress.deny", host="rebind.test")
        self.assertEqual(len(allows), statuses.count(200))
        self.assertEqual(len(denies), statuses.count(403))
        for ev in allows:
            self.assertEqual(ev["address"], "127.0.0.1", ev)
        for ev in denies:
            self.assertEqual(ev["reason"], "address_guard", ev)
            self.assertEqual(ev["address"], "127.0.0.2", ev)
        self.assertEqual(self.sentinel.count, 0, "the proxy connected to 127.0.0.2: %r" % self.sentinel.accepted)
        self.assertEqual(len(self.upstream.requests), statuses.count(200))
        # min_ttl is 0 and the answers carry TTL 0: every request resolves again, so both answers were seen.
        self.assertGreaterEqual(self.dns.count("rebind.test", "A"), 10)
        self.assertIn(200, statuses)
        self.assertIn(403, statuses)

    def test_dns_rebinding_keep_alive(self):
        # On one keep-alive connection every request is decided and resolved again; a reused upstream
        # connection must not carry a request whose fresh answer is refused.
        with self.proxy.connect() as c:
            statuses = [self.get(self.up_url("rebind.test"), conn=c).status for _ in range(6)]
        self.assertEqual(statuses, [200, 403, 200, 403, 200, 403])
        self.assertEqual(self.sentinel.count, 0)
        self.assertEqual(len(self.upstream.requests), 3)


if __name__ == "__main__":
    unittest.main()
