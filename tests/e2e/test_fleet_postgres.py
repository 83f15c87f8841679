"""A fleet of egressd replicas sharing one approvals store on a real PostgreSQL server that the test starts itself
(postgres_server.py): curl and raw CONNECTs through each replica, the JSON API of each.

A denial seen by two replicas is one request carrying the hits of both. An approval through one replica's API is
enforced by the others at their next poll of the store's change version (every second: the bound below leaves a
loaded CI machine slack); a revocation through one closes on all. With the database down, proxying and the grants
already loaded go on, decisions answer 503 saying the store cannot be written, and the outage is logged once; when
it returns, a new approval works and reaches every replica. A replica started while the database is down is not
ready (/readyz 503) until the database is back and the grants are loaded.
"""

import signal
import time
import unittest

import postgres_server

postgres_server.isolate_network()

import harness  # noqa: E402  (after the namespace is set up: see postgres_server.isolate_network)
import test_approvals  # noqa: E402

harness.isolate_network()

PROPAGATION_BOUND = 5.0  # seconds; the design target is two (a one-second poll), the rest is slack for CI


class FleetBase(test_approvals.ApprovalsBase):
    """Replica A (self.proxy) with the store on a fresh PostgreSQL database; more replicas with replica()."""

    def setUp(self):
        self.pg = postgres_server.PostgresServer()
        self.addCleanup(self.pg.cleanup)
        self.store_url = self.pg.create_database("egressd")
        super().setUp()

    def extra_yaml(self):
        return harness.approvals_yaml(self.store_url, self.approvers_file, self.requesters_file,
                                      **self.approvals_settings())

    def replica(self):
        """Another egressd on the same database; (proxy, its API as alice)."""
        proxy = self.start_proxy(self.egressd_settings, extra_yaml=self.extra_yaml())
        host, port = harness.approvals_address(proxy)
        return proxy, harness.ApprovalsClient(host, port, "alice", test_approvals.USERS["alice"])

    def poll(self, condition, bound, what):
        """Calls condition until it returns a true value, for at most bound seconds; (value, seconds taken)."""
        start = time.monotonic()
        for _ in range(10000):
            value = condition()
            if value:
                return value, time.monotonic() - start
            if time.monotonic() - start > bound:
                break
            time.sleep(0.05)
        self.fail("%s: not within %.1f s" % (what, bound))

    def passes_through(self, proxy, host):
        c, resp = self.tunnel(host, proxy=proxy)
        with c:
            if resp.status != 200:
                return False
            try:
                self.assert_echoes(c)
            except harness.ConnectionClosed:
                # Opened just before a revocation arrived and closed by it: the grant no longer holds.
                return False
            return True

    def curl_through(self, proxy, host):
        url = "http://%s:%d/hello" % (host, self.upstream.port)
        return harness.curl("-p", "-x", "http://127.0.0.1:%d" % proxy.port, url)


class FleetTest(FleetBase):
    def test_a_denial_on_two_replicas_is_one_request_with_the_hits_of_both(self):
        b, api_b = self.replica()
        rid = self.new_request("api.req.test")
        self.assertEqual(self.new_request("api.req.test", proxy=b), rid)
        self.assertEqual(self.new_request("api.req.test", proxy=b), rid)
        # Replica A's hit was written with the request; B's are flushed within a second.
        hits, _ = self.poll(lambda: self.request_by_id(rid, api_b)["hits"] == 3 and 3, 10.0, "3 hits")
        self.assertEqual(hits, 3)
        self.assertEqual([r["id"] for r in self.api.requests("pending")], [rid])
        self.assertEqual([r["id"] for r in api_b.requests("pending")], [rid])
        # One "requested" notification and history row for the fleet, not one per replica.
        self.assertEqual(len(self.proxy.events(event="approval.requested")) + len(b.events(event="approval.requested")),
                         1)

    def test_an_approval_through_one_replica_is_enforced_by_all_and_a_revocation_closes_on_all(self):
        b, api_b = self.replica()
        c, api_c = self.replica()
        url_host = "api.req.test"
        self.assertNotEqual(self.curl_through(c, url_host).returncode, 0)
        rid = self.new_request(url_host, port=self.upstream.port)
        tunnel_host = "sib.req.test"
        tunnel_rid = self.new_request(tunnel_host, proxy=b)
        self.approve_ok(rid, duration="10m")
        grant = self.approve_ok(tunnel_rid, duration="10m")["grant"]
        for name, proxy in (("B", b), ("C", c)):
            _, took = self.poll(lambda: self.curl_through(proxy, url_host).returncode == 0, PROPAGATION_BOUND,
                                "replica %s applies the grant approved through A" % name)
            print("replica %s allowed %.2f s after the approval through A" % (name, took))
        self.assertEqual(self.curl_through(c, url_host).stdout, b"hello")
        # The second grant may reach C a poll later than the first (C can load the set between the two approvals).
        self.poll(lambda: self.passes_through(c, tunnel_host), PROPAGATION_BOUND,
                  "replica C applies the second grant approved through A")
        # An open tunnel through C, allowed by the grant: revoking through B closes it.
        tunnel, resp = self.tunnel(tunnel_host, proxy=c)
        self.assertEqual(resp.status, 200, resp)
        with tunnel:
            self.assert_echoes(tunnel)
            resp = api_b.revoke(grant["id"], note="done")
            self.assertEqual(resp.status, 200, resp)
            self.assertTrue(tunnel.closed_by_peer(timeout=PROPAGATION_BOUND), "C kept a tunnel of a revoked grant")
        for name, proxy in (("A", self.proxy), ("C", c)):
            self.poll(lambda: not self.passes_through(proxy, tunnel_host), PROPAGATION_BOUND,
                      "replica %s ends the grant revoked through B" % name)
        self.assertEqual(api_c.grants("active")[0]["request_id"], rid)

    def test_with_the_database_down_grants_go_on_decisions_fail_and_it_catches_up(self):
        b, api_b = self.replica()
        rid = self.new_request("api.req.test")
        self.approve_ok(rid, duration="10m")
        self.poll(lambda: self.passes_through(b, "api.req.test"), PROPAGATION_BOUND, "B applies the grant")
        waiting = self.new_request("other.req.test", proxy=b)

        self.pg.stop(signal.SIGKILL)
        for proxy in (self.proxy, b):
            self.assertTrue(self.passes_through(proxy, "api.req.test"))
            self.denied("allowed-not.req.test", proxy=proxy)  # a 403 still, without a request
        refused = api_b.approve(waiting, duration="10m")
        self.assertEqual(refused.status, 503, refused)
        self.assertIn(b"approvals store cannot be written", refused.body, refused)
        for proxy in (self.proxy, b):
            proxy.wait_event(event="approval.store_unavailable", timeout=5)
        time.sleep(2.5)  # a few more ticks: the outage is still logged only once
        for proxy in (self.proxy, b):
            self.assertEqual(len(proxy.events(event="approval.store_unavailable")), 1, proxy.dump_events())
            self.assertTrue(self.passes_through(proxy, "api.req.test"))

        self.pg.start()
        # The store retries after a backoff of at most five seconds.
        resp, _ = self.poll(lambda: (lambda r: r if r.status == 200 else None)(api_b.approve(waiting, duration="10m")),
                            20.0, "an approval once the database is back")
        for proxy in (self.proxy, b):
            proxy.wait_event(event="approval.store_available", timeout=10)
        self.poll(lambda: self.passes_through(self.proxy, "other.req.test"), PROPAGATION_BOUND,
                  "A applies the grant approved through B after the outage")
        self.assertTrue(self.passes_through(b, "other.req.test"))
        self.assertEqual(len(self.api.grants("active")), 2)


class FleetStartTest(FleetBase):
    def test_a_replica_started_while_the_database_is_down_is_ready_once_it_has_loaded_the_grants(self):
        rid = self.new_request("api.req.test")
        self.approve_ok(rid, duration="10m")
        self.pg.stop()
        b, _ = self.replica()
        b.wait_event(event="egressd.approvals_waiting", timeout=5)
        b.wait_event(event="egressd.start", timeout=5)
        for _ in range(3):
            self.assertEqual(b.admin_get("/readyz").status, 503)
            time.sleep(0.5)
        self.pg.start()
        self.poll(lambda: b.admin_get("/readyz").status == 200, 20.0, "B ready once the database is back")
        b.wait_event(event="approval.loaded", timeout=5)
        # Ready means loaded: the grant is enforced from the first connection on.
        self.assertTrue(self.passes_through(b, "api.req.test"))


if __name__ == "__main__":
    unittest.main()
