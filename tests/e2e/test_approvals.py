"""Access requests and approvals, end to end: the real egressd with `approvals:` on, a real SQLite file, the JSON
API over HTTP Basic, CONNECTs through the proxy, curl-free raw sockets for exact timing, webhooks to a loopback
receiver, /metrics through promtool, and the `egressd approvals` command line.

A denial whose reason is an allow-list miss becomes a pending request (403 with X-Egressd-Access-Request and the
request's page in the body); other denials never do. An approver's grant lets the client through within a second
(the measured time is printed), its expiry and its revocation close the tunnels it allowed, extend keeps them,
deny keeps the destination denied. Self-approval and requesters deciding are refused, two-approver clients need
two, wider scopes and group scopes reach further. kill -9 in the middle of 100 concurrent approvals loses none that
was answered 200.
"""

import concurrent.futures
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import threading
import time
import unittest

import harness

harness.isolate_network()

PUBLIC_URL = "http://approvals.e2e.test"
USERS = {"alice": "alice-pass-1", "bob": "bob-pass-2", "dave": "dave-pass-4"}  # approvers
REQUESTERS = {"rita": "rita-pass-3"}
SECRET = "e2e-webhook-secret-0123456789"
APPLIED_WITHIN = 1.0  # seconds from the approval's 200 to the first CONNECT that passes
BULK = 100
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


class ApprovalsBase(harness.ProxyTestCase):
    """egressd with approvals on (listener on a free port, store in the test's directory); helpers."""

    policy_requests = None  # "off": the policy's top-level requests: off

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        d = cls.class_tmp.name
        cls.approvers_file = harness.write_credentials(os.path.join(d, "approvers"), USERS)
        cls.requesters_file = harness.write_credentials(os.path.join(d, "requesters"), REQUESTERS)
        cls.secret_file = os.path.join(d, "webhook.secret")
        with open(cls.secret_file, "w") as f:
            f.write(SECRET + "\n")

    def setUp(self):
        self.store_path = None
        super().setUp()
        host, port = harness.approvals_address(self.proxy)
        self.api = harness.ApprovalsClient(host, port, "alice", USERS["alice"])

    def approvals_settings(self):
        return {"public_url": PUBLIC_URL, "default_grant": "2m", "max_grant": "1h",
                "requests_per_client_per_minute": 1000}

    def notify(self):
        return ()

    def extra_yaml(self):
        if self.store_path is None:
            self.store_path = os.path.join(self.tmp.name, "approvals.db")
        return harness.approvals_yaml(self.store_path, self.approvers_file, self.requesters_file,
                                      notify=self.notify(), **self.approvals_settings())

    def dns_records(self):
        records = harness.default_records()
        lo = {"A": ["127.0.0.1"], "ttl": 60}
        for name in ("api.req.test", "sib.req.test", "other.req.test", "team.req.test", "team.test",
                     "cli.req.test", "gone.req.test", "dual.req.test", "m1.req.test", "m2.req.test"):
            records[name] = lo
        for i in range(BULK):
            records["h%d.bulk.test" % i] = lo
        return records

    def policy_text(self):
        ports = harness._yaml_list([self.echo.port, self.upstream.port])
        text = "version: 1\nmode: enforce\n"
        if self.policy_requests:
            text += "requests: %s\n" % self.policy_requests
        text += f"""address_guard:
  except: [loopback]
groups:
  web:
    description: the loopback upstreams by name (loopback is not guarded here)
    rules:
      - description: test names on the echo and HTTP upstreams
        ports: {ports}
        destinations: [allowed.test, evil.test, .guard.test]
      - description: a name whose tunnels must carry a matching SNI
        ports: {ports}
        destinations: [tls.test]
        tls: require
  team:
    description: a group two clients share
    rules:
      - description: team.test
        ports: {ports}
        destinations: [team.test]
clients:
  tests:
    description: the test process
    sources: [127.0.0.1/32]
    groups: [web, team]
  canary:
    description: from 127.0.0.4, in report mode
    sources: [127.0.0.4/32]
    groups: [web]
    mode: report
  quiet:
    description: from 127.0.0.5, opted out of access requests
    sources: [127.0.0.5/32]
    groups: [web]
    requests: off
  dual:
    description: from 127.0.0.6, needs two approvers
    sources: [127.0.0.6/32]
    groups: [web]
    approvals:
      required: 2
  peer:
    description: from 127.0.0.7, another client of the team group
    sources: [127.0.0.7/32]
    groups: [team]
deny:
  - description: a name the web group also allows, so the deny list must win
    destinations: [evil.test]
"""
        return text

    # -- helpers ---------------------------------------------------------------------------------------
    def as_user(self, name):
        password = USERS.get(name) or REQUESTERS[name]
        return self.api.as_user(name, password)

    def tunnel(self, host, port=None, source=None, proxy=None):
        """CONNECT host:port (the echo server by default); (connection, response). The connection is closed
        unless the answer is a 200; then response.allow is a function returning its egress.allow event (a 200
        carries no request id, so the event is the egress.allow whose source is this connection's address)."""
        proxy = proxy or self.proxy
        port = port or self.echo.port
        mark = proxy.event_count()
        c = proxy.connect(source=source, timeout=5)
        here = "%s:%d" % c.sock.getsockname()[:2]
        authority = "%s:%d" % (host, port)
        try:
            c.send("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority))
            resp = c.read_response(method="CONNECT")
        except Exception:
            c.close()
            raise
        if resp.status != 200:
            c.close()
        resp.allow = lambda: proxy.wait_for_event("egress.allow", host=host, port=port, source=here, after=mark,
                                                  timeout=5)
        return c, resp

    def denied(self, host, port=None, source=None, reason="no_matching_rule", proxy=None):
        """A CONNECT that must be refused with 403 and `reason`; returns the response."""
        c, resp = self.tunnel(host, port, source, proxy)
        c.close()
        self.assertEqual((resp.status, resp.header("X-Egressd-Reason")), (403, reason), resp)
        return resp

    def new_request(self, host, port=None, source=None, proxy=None, reason="no_matching_rule"):
        """A refused CONNECT that makes (or counts towards) an access request; returns its id (an int)."""
        resp = self.denied(host, port, source, reason, proxy)
        rid = resp.header("X-Egressd-Access-Request")
        self.assertIsNotNone(rid, "no X-Egressd-Access-Request on %r" % resp)
        self.assertRegex(rid, r"^[1-9][0-9]*$")
        return int(rid)

    def assert_echoes(self, c, payload=b"through the tunnel\n"):
        c.send(payload)
        self.assertEqual(c.recv_exact(len(payload), timeout=5), payload)

    def assert_passes(self, host, port=None, source=None, proxy=None):
        """A CONNECT that must be let through and relay; returns its egress.allow event."""
        c, resp = self.tunnel(host, port, source, proxy)
        with c:
            self.assertEqual(resp.status, 200, resp)
            self.assert_echoes(c)
        return resp.allow()

    def wait_passes(self, host, within, port=None, source=None):
        """Retries CONNECT host until one passes, for at most `within` seconds; (connection, response, seconds
        from the call to the passing answer). Fails if none passed."""
        start = time.monotonic()
        last = None
        for _ in range(10000):
            c, resp = self.tunnel(host, port, source)
            if resp.status == 200:
                return c, resp, time.monotonic() - start
            last = resp
            if time.monotonic() - start > within:
                break
            time.sleep(0.01)
        self.fail("CONNECT %s still refused %.2fs after the approval: %r" % (host, within, last))

    def request_by_id(self, rid, api=None):
        return (api or self.api).ok("GET", "/api/v1/requests/%d" % rid)

    def approve_ok(self, rid, api=None, **fields):
        resp = (api or self.api).approve(rid, **fields)
        self.assertEqual(resp.status, 200, resp)
        return resp.json

    def assert_no_requests(self):
        self.assertEqual(self.api.requests(), [])


class ApprovalsTest(ApprovalsBase):
    # -- requests --------------------------------------------------------------------------------------
    def test_denied_connect_creates_pending_request_with_hits(self):
        resp = self.denied("api.req.test")
        rid = resp.header("X-Egressd-Access-Request")
        self.assertIsNotNone(rid, resp)
        self.assertIn(("%s/requests/%s" % (PUBLIC_URL, rid)).encode(), resp.body, resp.body)
        ev = self.proxy.wait_event(event="egress.deny", request_id=resp.header("X-Egressd-Request-Id"))
        self.assertEqual(ev.get("access_request"), int(rid), ev)
        pending = self.api.requests("pending")
        self.assertEqual(len(pending), 1, pending)
        r = pending[0]
        self.assertEqual((r["id"], r["client"], r["host"], r["port"], r["state"], r["hits"], r["reason"]),
                         (int(rid), "tests", "api.req.test", self.echo.port, "pending", 1, "no_matching_rule"), r)
        self.assertRegex(r["first_seen"], RFC3339)
        self.assertRegex(r["last_seen"], RFC3339)
        self.assertTrue(r["last_source"].startswith("127.0.0.1:"), r)
        self.assertEqual(r["url"], "%s/requests/%s" % (PUBLIC_URL, rid), r)
        self.proxy.wait_event(event="approval.requested", timeout=5)
        # The same destination again: the same request, one more hit (hits are flushed in the background).
        again = self.denied("api.req.test")
        self.assertEqual(again.header("X-Egressd-Access-Request"), rid, again)
        deadline = time.monotonic() + 5
        for _ in range(500):
            r = self.request_by_id(int(rid))
            if r["hits"] >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(r["hits"], 2, r)
        self.assertEqual(len(self.api.requests()), 1)
        # Another host is another request.
        other = self.new_request("other.req.test")
        self.assertNotEqual(other, int(rid))
        self.assertEqual(len(self.api.requests("pending")), 2)

    def test_curl_connect_denied_then_approved(self):
        url = "http://api.req.test:%d/hello" % self.upstream.port
        proxy = "http://127.0.0.1:%d" % self.proxy.port
        refused = harness.curl("-v", "-p", "-x", proxy, url)
        self.assertNotEqual(refused.returncode, 0, refused)
        err = refused.stderr.decode("utf-8", "replace")
        self.assertIn("403", err)
        found = re.search(r"(?im)^< X-Egressd-Access-Request:\s*(\d+)", err)
        self.assertIsNotNone(found, err)
        rid = int(found.group(1))
        self.assertEqual(self.request_by_id(rid)["port"], self.upstream.port)
        self.approve_ok(rid, duration="2m")
        start = time.monotonic()
        passed = None
        for _ in range(200):
            passed = harness.curl("-p", "-x", proxy, url)
            if passed.returncode == 0 or time.monotonic() - start > APPLIED_WITHIN:
                break
            time.sleep(0.02)
        self.assertEqual((passed.returncode, passed.stdout), (0, b"hello"), passed)

    def test_port_not_allowed_creates_request(self):
        rid = self.new_request("allowed.test", self.other.port, reason="port_not_allowed")
        r = self.request_by_id(rid)
        self.assertEqual((r["host"], r["port"], r["reason"], r["state"]),
                         ("allowed.test", self.other.port, "port_not_allowed", "pending"), r)

    # -- denials that never become requests ------------------------------------------------------------
    def assert_no_request_header(self, resp):
        self.assertIsNone(resp.header("X-Egressd-Access-Request"), resp)
        self.assertNotIn(b"/requests/", resp.body, resp.body)

    def test_deny_list_hit_creates_no_request(self):
        self.assert_no_request_header(self.denied("evil.test", reason="explicit_deny"))
        self.assert_no_requests()

    def test_guarded_address_creates_no_request(self):
        for host in ("private.guard.test", "metadata.guard.test"):
            with self.subTest(host=host):
                self.assert_no_request_header(self.denied(host, reason="address_guard"))
        self.assert_no_requests()

    def test_sni_mismatch_creates_no_request(self):
        hello = harness.capture_client_hello("other.req.test")
        c, resp = self.tunnel("tls.test")
        with c:
            self.assertEqual(resp.status, 200, resp)
            c.send(hello)
            self.assertTrue(c.closed_by_peer(timeout=5), "a tunnel with a mismatching SNI stayed open")
        ev = self.proxy.wait_event(event="egress.deny", reason="sni_mismatch", timeout=5)
        self.assertNotIn("access_request", ev)
        self.assert_no_requests()

    def test_unknown_client_creates_no_request(self):
        self.assert_no_request_header(self.denied("api.req.test", source="127.0.0.3", reason="unknown_client"))
        self.assert_no_requests()

    def test_report_mode_creates_no_request(self):
        c, resp = self.tunnel("api.req.test", source="127.0.0.4")
        with c:
            self.assertEqual(resp.status, 200, resp)  # report mode lets it through and logs "would deny"
        self.proxy.wait_event(event="egress.would_deny", host="api.req.test", timeout=5)
        self.assert_no_requests()

    def test_client_requests_off_creates_no_request(self):
        self.assert_no_request_header(self.denied("api.req.test", source="127.0.0.5"))
        # The same destination from a client that may ask: a request, for that client only.
        rid = self.new_request("api.req.test")
        self.assertEqual([(r["id"], r["client"]) for r in self.api.requests()], [(rid, "tests")])

    # -- decisions -------------------------------------------------------------------------------------
    def test_approve_lets_retry_through_within_a_second(self):
        rid = self.new_request("api.req.test")
        rita = self.as_user("rita")
        resp = rita.justify(rid, "TICKET-42: the nightly export calls this API")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual([j["user"] for j in resp.json["justifications"]], ["rita"], resp.json)
        self.proxy.wait_event(event="approval.justified", timeout=5)
        resp = self.api.approve(rid, duration="2m", note="for the export")
        approved_at = time.monotonic()
        self.assertEqual(resp.status, 200, resp)
        c, ok, _ = self.wait_passes("api.req.test", APPLIED_WITHIN)
        latency = time.monotonic() - approved_at
        print("\nAPPROVAL-TO-ALLOWED LATENCY: %.1f ms (from the approve 200 to the first CONNECT 200)"
              % (latency * 1000.0), flush=True)
        with c:
            self.assert_echoes(c)
        self.assertLessEqual(latency, APPLIED_WITHIN)
        grant = resp.json["grant"]
        self.assertIsNotNone(grant, resp.json)
        self.assertEqual((grant["destination"], grant["port"], grant["state"], grant["approved_by"]),
                         ("api.req.test", self.echo.port, "active", "alice"), grant)
        self.assertTrue(110 <= grant["seconds_left"] <= 120, grant)
        self.assertEqual(resp.json["request"]["state"], "approved", resp.json)
        allow = ok.allow()
        self.assertEqual((allow["reason"], allow.get("grant_id")), ("granted", grant["id"]), allow)
        self.proxy.wait_event(event="approval.approved", timeout=5)
        self.assertEqual(self.request_by_id(rid)["state"], "approved")
        self.assertEqual([g["id"] for g in self.api.grants("active")], [grant["id"]])
        # The requester sees the history of it.
        events = [h["event"] for h in rita.ok("GET", "/api/v1/history?request=%d" % rid)["history"]]
        self.assertEqual(sorted(events), ["approved", "justified", "requested"], events)

    def test_grant_expiry_closes_established_tunnel(self):
        rid = self.new_request("api.req.test")
        grant = self.approve_ok(rid, duration="3s")["grant"]
        c, ok, _ = self.wait_passes("api.req.test", APPLIED_WITHIN)
        with c:
            self.assert_echoes(c)
            allow = ok.allow()
            self.assertEqual(allow.get("grant_id"), grant["id"], allow)
            self.assertTrue(c.closed_by_peer(timeout=6), "the tunnel outlived its grant")
        rev = self.proxy.wait_event(event="egress.revoke", request_id=allow["request_id"], timeout=5)
        self.assertEqual(rev.get("cause"), "grant_expired", rev)
        close = self.proxy.wait_event(event="egress.close", request_id=allow["request_id"], timeout=5)
        self.assertEqual(close["cause"], "grant_expired", close)
        self.denied("api.req.test")
        self.proxy.wait_event(event="approval.expired", timeout=5)
        expired = self.api.grants("expired")
        self.assertEqual([g["id"] for g in expired], [grant["id"]], expired)

    def test_revoke_closes_established_tunnel_at_once(self):
        rid = self.new_request("api.req.test")
        grant = self.approve_ok(rid, duration="10m")["grant"]
        c, ok, _ = self.wait_passes("api.req.test", APPLIED_WITHIN)
        with c:
            self.assert_echoes(c)
            rid_header = ok.allow()["request_id"]
            resp = self.api.revoke(grant["id"], note="no longer needed")
            revoked_at = time.monotonic()
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(resp.json["state"], "revoked", resp.json)
            self.assertTrue(c.closed_by_peer(timeout=3), "the tunnel stayed open after the revocation")
            self.assertLess(time.monotonic() - revoked_at, 1.5)
        rev = self.proxy.wait_event(event="egress.revoke", request_id=rid_header, timeout=5)
        self.assertEqual(rev.get("cause"), "grant_revoked", rev)
        close = self.proxy.wait_event(event="egress.close", request_id=rid_header, timeout=5)
        self.assertEqual(close["cause"], "grant_revoked", close)
        self.denied("api.req.test")
        self.proxy.wait_event(event="approval.revoked", timeout=5)

    def test_extend_keeps_tunnel_open_past_first_expiry(self):
        rid = self.new_request("api.req.test")
        grant = self.approve_ok(rid, duration="3s")["grant"]
        c, ok, _ = self.wait_passes("api.req.test", APPLIED_WITHIN)
        with c:
            self.assert_echoes(c)
            resp = self.api.extend(grant["id"], "1m", note="a bit longer")
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(resp.json["state"], "active", resp.json)
            self.assertGreater(resp.json["seconds_left"], 50, resp.json)
            self.proxy.wait_event(event="approval.extended", timeout=5)
            time.sleep(4.5)  # past the first expiry
            self.assertTrue(c.still_open(wait=0.2), "an extended grant's tunnel was closed")
            self.assert_echoes(c, b"after the first expiry\n")
            self.assertEqual(self.proxy.events(event="egress.revoke"), [], self.proxy.dump_events())
            self.assertEqual([g["id"] for g in self.api.grants("active")], [grant["id"]])
            # Revoked after its first expiry but before the extended one: a revocation, not an expiry.
            self.assertEqual(self.api.revoke(grant["id"]).status, 200)
        rev = self.proxy.wait_event(event="egress.revoke", timeout=5)
        self.assertEqual(rev.get("cause"), "grant_revoked", rev)

    def test_deny_keeps_it_denied(self):
        rid = self.new_request("api.req.test")
        resp = self.api.deny(rid, note="use the internal mirror")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual((resp.json["state"], resp.json["decided_by"], resp.json["decision_note"]),
                         ("denied", "alice", "use the internal mirror"), resp.json)
        self.proxy.wait_event(event="approval.denied", timeout=5)
        for _ in range(3):
            self.denied("api.req.test")
        self.assertEqual(self.request_by_id(rid)["state"], "denied")
        self.assertEqual([r["id"] for r in self.api.requests("denied")], [rid])
        self.assertEqual(self.api.grants(), [])
        # A decided request cannot be approved afterwards.
        self.assertEqual(self.as_user("bob").approve(rid, duration="2m").status, 409)

    def test_api_field_given_twice_is_refused(self):
        rid = self.new_request("api.req.test")
        resp = self.api.post("/api/v1/requests/%d/approve" % rid, body=b'{"duration":"2m","duration":"30d"}',
                             content_type="application/json")
        self.assertEqual((resp.status, resp.json), (400, {"error": 'field "duration" is given twice'}), resp)
        self.assertEqual(self.request_by_id(rid)["state"], "pending")
        self.assertEqual(self.api.grants(), [])

    def test_self_approval_refused(self):
        rid = self.new_request("api.req.test")
        dave = self.as_user("dave")
        self.assertEqual(dave.justify(rid, "I need it myself").status, 200)
        resp = dave.approve(rid, duration="2m")
        self.assertEqual(resp.status, 403, resp)
        self.assertIn("error", resp.json, resp)
        self.denied("api.req.test")
        self.assertEqual(self.request_by_id(rid)["state"], "pending")
        # Another approver may decide it.
        self.assertIsNotNone(self.approve_ok(rid, duration="2m")["grant"])
        self.wait_passes("api.req.test", APPLIED_WITHIN)[0].close()

    def test_requester_cannot_decide(self):
        rid = self.new_request("api.req.test")
        rita = self.as_user("rita")
        self.assertEqual(rita.get("/api/v1/whoami").json, {"user": "rita", "role": "requester"})
        for resp in (rita.approve(rid, duration="2m"), rita.deny(rid, note="no")):
            self.assertEqual(resp.status, 403, resp)
        self.assertEqual(self.request_by_id(rid)["state"], "pending")
        self.assertEqual(self.api.grants(), [])
        # Wrong password: 401 with a challenge, not 403.
        resp = self.api.as_user("alice", "wrong").approve(rid, duration="2m")
        self.assertEqual(resp.status, 401, resp)
        self.assertIsNotNone(resp.header("WWW-Authenticate"), resp)

    def test_two_approver_client_needs_two(self):
        rid = self.new_request("dual.req.test", source="127.0.0.6")
        first = self.approve_ok(rid, duration="2m", note="one")
        self.assertIsNone(first["grant"], first)
        self.assertEqual(first["request"]["state"], "pending", first)
        self.assertEqual([v["approver"] for v in first["request"]["votes"]], ["alice"], first)
        self.denied("dual.req.test", source="127.0.0.6")
        # The same approver twice is still one.
        self.assertEqual(self.api.approve(rid, duration="2m").status, 409)
        second = self.approve_ok(rid, api=self.as_user("bob"), duration="2m", note="two")
        self.assertIsNotNone(second["grant"], second)
        self.assertEqual(sorted(second["grant"]["approved_by"].split(",")), ["alice", "bob"], second)
        self.wait_passes("dual.req.test", APPLIED_WITHIN, source="127.0.0.6")[0].close()

    # -- scope -----------------------------------------------------------------------------------------
    def test_wildcard_scope_lets_sibling_through(self):
        rid = self.new_request("api.req.test")
        grant = self.approve_ok(rid, duration="2m", scope="*.req.test")["grant"]
        self.assertEqual(grant["destination"], "*.req.test", grant)
        self.wait_passes("api.req.test", APPLIED_WITHIN)[0].close()
        allow = self.assert_passes("sib.req.test")
        self.assertEqual((allow["reason"], allow.get("grant_id")), ("granted", grant["id"]), allow)
        # Not another port, not the parent name, not another client.
        self.denied("sib.req.test", self.upstream.port)
        self.denied("sib.req.test", source="127.0.0.7")
        # A scope that does not cover the host is refused.
        rid2 = self.new_request("api.req.test", self.upstream.port)
        self.assertIn(self.api.approve(rid2, duration="2m", scope="*.other.test").status, (400, 422))

    def test_group_scope_lets_other_client_of_group_through(self):
        rid = self.new_request("team.req.test")
        grant = self.approve_ok(rid, duration="2m", group="team")["grant"]
        self.assertEqual((grant["scope"], grant["scope_name"]), ("group", "team"), grant)
        self.wait_passes("team.req.test", APPLIED_WITHIN)[0].close()
        allow = self.assert_passes("team.req.test", source="127.0.0.7")
        self.assertEqual((allow["client"], allow["reason"]), ("peer", "granted"), allow)
        # dual is not in the team group.
        self.denied("team.req.test", source="127.0.0.6")
        # A group the client is not in is refused.
        rid2 = self.new_request("team.req.test", self.upstream.port, source="127.0.0.6")
        self.assertIn(self.api.approve(rid2, duration="2m", group="team").status, (400, 403, 422))

    # -- durability ------------------------------------------------------------------------------------
    def test_kill9_during_concurrent_approvals_loses_nothing_acknowledged(self):
        ids = {}
        for i in range(BULK):
            ids[self.new_request("h%d.bulk.test" % i)] = "h%d.bulk.test" % i
        self.assertEqual(len(ids), BULK)
        lock = threading.Lock()
        acked = {}  # request id -> grant id, for every approval answered 200
        enough = threading.Event()

        def approve(rid):
            try:
                resp = self.api.approve(rid, duration="30m", note="bulk")
            except Exception:  # the proxy was killed under it
                return
            if resp.status == 200 and resp.json.get("grant"):
                with lock:
                    acked[rid] = resp.json["grant"]["id"]
                    if len(acked) >= 30:
                        enough.set()

        pool = concurrent.futures.ThreadPoolExecutor(max_workers=10)
        try:
            futures = [pool.submit(approve, rid) for rid in ids]
            self.assertTrue(enough.wait(timeout=40), "fewer than 30 approvals answered 200 in 40 s")
            self.proxy.proc.send_signal(signal.SIGKILL)
            concurrent.futures.wait(futures, timeout=30)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        self.assertEqual(self.proxy.proc.wait(timeout=10), -signal.SIGKILL)
        with lock:
            acked = dict(acked)
        print("\n%d approvals answered 200 before kill -9" % len(acked), flush=True)
        self.assertGreaterEqual(len(acked), 30)
        # The same configuration and store, a new process.
        proxy = self.start_proxy(self.egressd_settings, extra_yaml=self.extra_yaml())
        host, port = harness.approvals_address(proxy)
        api = harness.ApprovalsClient(host, port, "alice", USERS["alice"])
        active = {g["request_id"]: g["id"] for g in api.grants("active")}
        missing = {rid: gid for rid, gid in acked.items() if active.get(rid) != gid}
        self.assertEqual(missing, {}, "approvals answered 200 but not in the store after kill -9")
        for rid in acked:
            self.assertEqual(self.request_by_id(rid, api=api)["state"], "approved")
        for rid in sorted(acked):
            self.assert_passes(ids[rid], proxy=proxy)
        # Requests never approved are still pending or approved (a 200 lost in flight), never anything else.
        states = {r["id"]: r["state"] for r in api.requests()}
        self.assertEqual(set(states), set(ids))
        self.assertTrue(set(states.values()) <= {"pending", "approved"}, states)

    # -- metrics ---------------------------------------------------------------------------------------
    def test_metrics_pending_and_active_grants(self):
        text, samples = self.proxy.metrics()
        self.assertEqual(harness.metric_value(samples, "egressd_access_requests_pending"), 0, text)
        self.assertEqual(harness.metric_value(samples, "egressd_grants_active"), 0, text)
        r1 = self.new_request("m1.req.test")
        self.new_request("m2.req.test")
        self.new_request("api.req.test")
        self.approve_ok(r1, duration="2m")
        text, samples = self.proxy.metrics()
        self.assertEqual(harness.metric_value(samples, "egressd_access_requests_pending"), 2, text)
        self.assertEqual(harness.metric_value(samples, "egressd_grants_active"), 1, text)
        check = harness.promtool_check(text)
        self.assertEqual(check.returncode, 0, "promtool check metrics refused /metrics:\n%s%s" % (
            check.stdout.decode(), check.stderr.decode()))
        self.assertIn("# TYPE egressd_access_requests_pending gauge", text)
        self.assertIn("# TYPE egressd_grants_active gauge", text)

    # -- the command line ------------------------------------------------------------------------------
    def test_cli_list_and_approve(self):
        rid = self.new_request("cli.req.test")
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env.update({"EGRESSD_APPROVALS_URL": self.api.base_url, "EGRESSD_APPROVALS_USER": "alice",
                    "EGRESSD_APPROVALS_PASSWORD": USERS["alice"]})

        def cli(*args):
            return subprocess.run([harness.egressd_binary(), "approvals", *args], capture_output=True, timeout=30,
                                  env=env)

        listed = cli("list")
        self.assertEqual(listed.returncode, 0, listed)
        self.assertIn(b"cli.req.test", listed.stdout, listed.stdout)
        self.assertIn(str(rid).encode(), listed.stdout)
        as_json = cli("--json", "list")
        self.assertEqual(as_json.returncode, 0, as_json)
        self.assertEqual([r["id"] for r in json.loads(as_json.stdout)["requests"]], [rid])
        approved = cli("approve", str(rid), "--duration", "2m")
        self.assertEqual(approved.returncode, 0, approved)
        self.wait_passes("cli.req.test", APPLIED_WITHIN)[0].close()
        grants = self.api.grants("active")
        self.assertEqual([g["request_id"] for g in grants], [rid])
        self.assertTrue(110 <= grants[0]["seconds_left"] <= 120, grants)
        # A refusal is exit 1 with the server's message.
        again = cli("approve", str(rid), "--duration", "2m")
        self.assertEqual(again.returncode, 1, again)


class TopLevelRequestsOffTest(ApprovalsBase):
    policy_requests = "off"

    def test_policy_requests_off_creates_no_request(self):
        resp = self.denied("api.req.test")
        self.assertIsNone(resp.header("X-Egressd-Access-Request"), resp)
        self.assert_no_requests()


class DefaultPublicUrlTest(ApprovalsBase):
    """No public_url and listen port 0: the link in a 403 names the port the listener got, not port 0."""

    def approvals_settings(self):
        settings = super().approvals_settings()
        del settings["public_url"]
        return settings

    def test_default_public_url_names_the_bound_port(self):
        resp = self.denied("api.req.test")
        rid = resp.header("X-Egressd-Access-Request")
        self.assertIsNotNone(rid, resp)
        expected = "%s/requests/%s" % (self.api.base_url, rid)
        self.assertIn(expected.encode(), resp.body, resp.body)
        self.assertEqual(self.request_by_id(int(rid))["url"], expected)


class ApprovalsTlsTest(ApprovalsBase):
    """approvals.tls: the page and the API over HTTPS only, and the default public_url says https."""

    def approvals_settings(self):
        settings = super().approvals_settings()
        del settings["public_url"]
        self.cert, self.key = harness.make_certificate(self.tmp.name)
        settings["tls"] = {"certificate": self.cert, "key": self.key}
        return settings

    def https_get(self, path, auth):
        import base64
        import http.client
        import ssl
        context = ssl.create_default_context(cafile=self.cert)
        context.check_hostname = False  # the certificate names allowed.test; the listener is 127.0.0.1
        conn = http.client.HTTPSConnection(self.api.host, self.api.port, context=context, timeout=10)
        try:
            token = base64.b64encode(("%s:%s" % auth).encode()).decode()
            conn.request("GET", path, headers={"Authorization": "Basic " + token})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def test_api_answers_over_https_only(self):
        ev = self.proxy.wait_event(event="egressd.approvals_listening")
        self.assertIs(ev["tls"], True, ev)
        self.assertTrue(ev["public_url"].startswith("https://127.0.0.1:"), ev)
        status, body = self.https_get("/api/v1/whoami", ("alice", USERS["alice"]))
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body), {"user": "alice", "role": "approver"})
        resp = self.denied("api.req.test")
        self.assertIn(("%s/requests/" % ev["public_url"]).encode(), resp.body, resp.body)
        with self.assertRaises(Exception):
            self.api.get("/api/v1/whoami")  # plain HTTP to the TLS listener gets no HTTP answer

    def test_rotated_certificate_applies_on_reload(self):
        self.assertEqual(harness.served_certificate(self.api.host, self.api.port), harness.certificate_der(self.cert))
        fresh = os.path.join(self.tmp.name, "fresh")
        os.mkdir(fresh)
        cert, key = harness.make_certificate(fresh)
        os.rename(key, self.key)
        os.rename(cert, self.cert)
        ev = self.proxy.sighup_reload()
        self.assertEqual((ev["event"], ev["restart_needed"]), ("egressd.reload", []), ev)
        self.assertEqual(harness.served_certificate(self.api.host, self.api.port), harness.certificate_der(self.cert))
        status, _ = self.https_get("/api/v1/whoami", ("alice", USERS["alice"]))
        self.assertEqual(status, 200)


class ApprovalsWebhookTest(ApprovalsBase):
    """A json webhook with a secret (whose first delivery is answered 500) and a slack webhook."""

    def setUp(self):
        self.json_hook = harness.WebhookReceiver(statuses=[500])
        self.addCleanup(self.json_hook.stop)
        self.slack_hook = harness.WebhookReceiver()
        self.addCleanup(self.slack_hook.stop)
        super().setUp()

    def notify(self):
        return ({"url": self.json_hook.url, "format": "json", "secret_file": self.secret_file},
                {"url": self.slack_hook.url, "format": "slack"})

    def assert_signed(self, post):
        h = post["headers"]
        self.assertEqual(h.get("content-type"), "application/json", h)
        ts = h.get("x-egressd-timestamp")
        self.assertRegex(ts or "", r"^[0-9]+$", h)
        self.assertLess(abs(int(ts) - time.time()), 120)
        mac = hmac.new(SECRET.encode(), ts.encode() + b"." + post["body"], hashlib.sha256).hexdigest()
        self.assertEqual(h.get("x-egressd-signature"), "sha256=" + mac, h)

    def test_json_webhook_signed_and_retried_after_500(self):
        rid = self.new_request("api.req.test")
        posts = self.json_hook.wait_posts(2, timeout=10)
        self.assertEqual(len(posts), 2, posts)
        first, retry = posts
        self.assertEqual((first["status"], retry["status"]), (500, 200))
        for p in posts:
            self.assert_signed(p)
            body = json.loads(p["body"])
            self.assertEqual((body["event"], body["request_id"], body["client"], body["host"], body["port"]),
                             ("requested", rid, "tests", "api.req.test", self.echo.port), body)
            self.assertEqual(body["url"], "%s/requests/%d" % (PUBLIC_URL, rid), body)
            self.assertEqual(p["headers"].get("x-egressd-event"), "requested")
        self.assertEqual(first["headers"].get("x-egressd-delivery"), retry["headers"].get("x-egressd-delivery"))
        self.assertTrue(first["headers"].get("x-egressd-delivery"))
        gap = retry["time"] - first["time"]
        self.assertTrue(0.5 <= gap <= 5.0, "retry %.2fs after the 500" % gap)
        # A decision is told too, signed.
        grant = self.approve_ok(rid, duration="2m")["grant"]
        approved = self.json_hook.wait_posts(1, pred=lambda p: json.loads(p["body"])["event"] == "approved")
        self.assertEqual(len(approved), 1, self.json_hook.posts)
        self.assert_signed(approved[0])
        body = json.loads(approved[0]["body"])
        self.assertEqual((body["grant_id"], body["actor"]), (grant["id"], "alice"), body)
        # Counted on /metrics: one retried, the rest delivered.
        deadline = time.monotonic() + 5
        for _ in range(100):
            text, samples = self.proxy.metrics()
            if "retried" in text or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertIn("retried", text)

    def test_slack_webhook_gets_text(self):
        rid = self.new_request("api.req.test")
        posts = self.slack_hook.wait_posts(1, timeout=10)
        self.assertEqual(len(posts), 1, posts)
        body = json.loads(posts[0]["body"])
        self.assertEqual(list(body), ["text"], body)
        self.assertIn("api.req.test", body["text"])
        self.assertIn("%s/requests/%d" % (PUBLIC_URL, rid), body["text"])
        self.assertNotIn("x-egressd-signature", posts[0]["headers"])


if __name__ == "__main__":
    unittest.main()
