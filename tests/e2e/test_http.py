"""Plain http:// forwarding: decisions, responses, events, header hygiene, message framing."""

import os
import threading
import time
import unittest

import harness

harness.isolate_network()


class HttpForwardTest(harness.ProxyTestCase):

    # -- decisions -------------------------------------------------------------------------------------
    def test_allowed_with_curl(self):
        r = harness.curl("-x", "http://127.0.0.1:%d" % self.proxy.port, "-D", "-", self.up_url())
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode("latin-1")
        self.assertTrue(out.startswith("HTTP/1.1 200"), out)
        self.assertTrue(out.endswith("\r\n\r\nhello"), out)
        self.assertIn("via: 1.1 egressd", out.lower())
        reqs = self.upstream.requests
        self.assertEqual(len(reqs), 1, reqs)
        self.assertEqual(reqs[0]["path"], "/hello")
        ev = self.proxy.wait_event(event="egress.allow", host="allowed.test")
        self.assertEqual(ev["client"], "tests")
        self.assertEqual(ev["port"], self.upstream.port)
        self.assertEqual(ev["address"], "127.0.0.1")
        self.assertEqual(ev["reason"], "allowed")
        self.assertEqual(ev["method"], "GET")
        self.assertEqual(ev["rule_group"], "web")
        self.assertIn("request_id", ev)
        close = self.proxy.wait_event(event="egress.close", request_id=ev["request_id"])
        self.assertEqual(close["client"], "tests")
        self.assertEqual(close["host"], "allowed.test")
        self.assertEqual(close["address"], "127.0.0.1")
        self.assertEqual(close["requests"], 1)
        self.assertGreater(close["bytes_to_client"], 5)
        self.assertGreater(close["bytes_from_client"], 0)
        self.assertIn("cause", close)

    def test_allowed_by_wildcard_and_port_range(self):
        resp = self.get(self.up_url("deep.a.wild.test"))
        self.assertEqual((resp.status, resp.body), (200, b"hello"))
        resp = self.get(self.up_url("range.test"))
        self.assertEqual((resp.status, resp.body), (200, b"hello"))
        ev = self.proxy.wait_event(event="egress.allow", host="range.test")
        # The event names the address-phase rule: for 127.0.0.1 that is the CIDR rule that opens loopback
        # (as `egressd policy explain` reports it too).
        self.assertEqual(ev["rule_group"], "web")
        # Just past the range: the ranged rule names range.test, but not this port.
        port = self.upstream.port + 4
        if port <= 65535:
            resp = self.get(self.up_url("range.test", port=port))
            rid = self.assert_refused(resp, 403, "port_not_allowed")
            self.assertEqual(self.proxy.wait_event(request_id=rid, event="egress.deny")["rule_group"], "ranged")

    def test_denied_no_matching_rule(self):
        resp = self.get(self.up_url("denied.test"))
        rid = self.assert_refused(resp, 403, "no_matching_rule")
        self.assertTrue(resp.header("Content-Type").startswith("text/plain"))
        self.assertIn(rid.encode(), resp.body)
        ev = self.proxy.wait_event(event="egress.deny", request_id=rid)
        self.assertEqual(ev["host"], "denied.test")
        self.assertEqual(ev["port"], self.upstream.port)
        self.assertEqual(ev["mode"], "enforce")
        self.assert_upstreams_untouched()
        # Refused by name: no DNS query was needed.
        self.assertEqual(self.dns.count("denied.test"), 0)

    def test_explicit_deny_wins_over_allow(self):
        resp = self.get(self.up_url("evil.test"))
        self.assert_refused(resp, 403, "explicit_deny")
        self.assert_upstreams_untouched()
        self.assertEqual(self.dns.count("evil.test"), 0)

    def test_port_not_allowed(self):
        resp = self.get(self.up_url("allowed.test", port=self.other.port))
        rid = self.assert_refused(resp, 403, "port_not_allowed")
        ev = self.proxy.wait_event(event="egress.deny", request_id=rid)
        self.assertEqual(ev["port"], self.other.port)
        self.assertEqual(ev.get("rule_group"), "web", ev)  # the rule that names the destination is named
        self.assert_upstreams_untouched()

    def test_expired_rule(self):
        resp = self.get(self.up_url("expired.test"))
        rid = self.assert_refused(resp, 403, "expired")
        self.assertEqual(self.proxy.wait_event(event="egress.deny", request_id=rid).get("rule_group"), "old")
        self.assert_upstreams_untouched()

    def test_report_mode_client(self):
        # The canary client (source 127.0.0.4) is in report mode: denials are logged as would_deny and the
        # traffic passes. Every destination here is loopback.
        with self.proxy.connect(source="127.0.0.4") as c:
            r1 = self.get(self.up_url("denied.test"), conn=c)
            r2 = self.get(self.up_url(), conn=c)
        self.assertEqual((r1.status, r1.body), (200, b"hello"))
        self.assertEqual((r2.status, r2.body), (200, b"hello"))
        ev = self.proxy.wait_event(event="egress.would_deny", host="denied.test")
        self.assertEqual(ev["client"], "canary")
        self.assertEqual(ev["reason"], "no_matching_rule")
        self.assertEqual(ev["mode"], "report")
        allow = self.proxy.wait_event(event="egress.allow", host="allowed.test")
        self.assertEqual(allow["client"], "canary")
        self.assertEqual(self.proxy.events(event="egress.deny"), [])
        self.assertEqual(len(self.upstream.requests), 2)

    def test_keep_alive_decides_every_request(self):
        with self.proxy.connect() as c:
            r1 = self.get(self.up_url(), conn=c)
            self.assertEqual((r1.status, r1.body), (200, b"hello"))
            r2 = self.get(self.up_url("denied.test"), conn=c)
            self.assertEqual(r2.status, 403, r2)
            self.assertEqual(r2.header("X-Egressd-Reason"), "no_matching_rule")
            self.assertIsNone(r2.header("Connection"), "a refusal without a body keeps the connection: %r" % r2)
            self.assertTrue(c.still_open(), "the proxy closed the connection after a 403")
            r3 = self.get(self.up_url(), conn=c)
            self.assertEqual((r3.status, r3.body), (200, b"hello"))
            r4 = self.get(self.up_url("evil.test"), conn=c)
            self.assertEqual(r4.header("X-Egressd-Reason"), "explicit_deny")
            r5 = self.get(self.up_url(path="/echo"), method="POST", body=b"fifth", conn=c)
            self.assertEqual((r5.status, r5.body), (200, b"fifth"))
        self.assertEqual([r["path"] for r in self.upstream.requests], ["/hello", "/hello", "/echo"])
        allows = self.proxy.wait_events(3, event="egress.allow")
        denies = self.proxy.wait_events(2, event="egress.deny")
        self.assertEqual(len(allows), 3)
        self.assertEqual(len(denies), 2)
        self.assertEqual(len({e["request_id"] for e in allows + denies}), 5, "every request has its own id")
        close = self.proxy.wait_event(event="egress.close")
        self.assertEqual(close["requests"], 5)

    def test_deny_event_exactly_once_per_request(self):
        with self.proxy.connect() as c:
            ids = []
            for host in ("denied.test", "evil.test", "denied.test"):
                resp = self.get(self.up_url(host), conn=c)
                self.assertEqual(resp.status, 403)
                ids.append(resp.header("X-Egressd-Request-Id"))
        # An address-phase refusal with several refused addresses is one decision too.
        resp = self.get(self.up_url("loop2.guard.test"))
        ids.append(resp.header("X-Egressd-Request-Id"))
        self.assertEqual(len(set(ids)), 4, ids)
        self.proxy.wait_events(2, event="egress.close")
        for rid in ids:
            evs = self.proxy.events(request_id=rid)
            decisions = [e for e in evs if e["event"].startswith("egress.") and e["event"] != "egress.close"]
            self.assertEqual([e["event"] for e in decisions], ["egress.deny"], evs)
        self.assertEqual(len(self.proxy.events(event="egress.deny")), 4)
        self.assertEqual(self.proxy.events(event="egress.allow"), [])

    # -- what the upstream sees ------------------------------------------------------------------------
    def test_host_header_from_uri_and_hop_by_hop_removed(self):
        with self.proxy.connect() as c:
            c.send("GET %s HTTP/1.1\r\n"
                   "Host: evil.test\r\n"
                   "Proxy-Connection: keep-alive\r\n"
                   "Proxy-Authorization: Basic dXNlcjpwYXNz\r\n"
                   "Connection: X-Hop, keep-alive\r\n"
                   "X-Hop: secret\r\n"
                   "Keep-Alive: timeout=5\r\n"
                   "TE: trailers\r\n"
                   "Upgrade: websocket\r\n"
                   "X-End-To-End: kept\r\n"
                   "\r\n" % self.up_url())
            resp = c.read_response()
        self.assertEqual((resp.status, resp.body), (200, b"hello"))
        reqs = self.upstream.requests
        self.assertEqual(len(reqs), 1)
        headers = reqs[0]["headers"]
        names = [k.lower() for k, _ in headers]
        self.assertEqual([v for k, v in headers if k.lower() == "host"], ["allowed.test:%d" % self.upstream.port])
        self.assertIn("via", names)
        self.assertIn("1.1 egressd", dict((k.lower(), v) for k, v in headers)["via"])
        for gone in ("proxy-connection", "proxy-authorization", "x-hop", "keep-alive", "te", "upgrade"):
            self.assertNotIn(gone, names, headers)
        for k, v in headers:
            if k.lower() == "connection":
                self.assertNotIn("x-hop", v.lower())
        self.assertIn("x-end-to-end", names)
        self.assertEqual(reqs[0]["path"], "/hello")  # origin-form upstream
        ev = self.proxy.wait_event(event="egress.allow")
        self.assertEqual(ev["host"], "allowed.test")

    # -- malformed targets -----------------------------------------------------------------------------
    def test_userinfo_is_rejected(self):
        resp = self.proxy.send_raw(b"GET http://user@allowed.test:%d/hello HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
                                   % self.upstream.port)
        self.assert_refused(resp, 400, "bad_request", deny_event=False)
        self.assert_upstreams_untouched()
        self.assertEqual(self.dns.count("allowed.test"), 0)

    def test_https_absolute_form_is_rejected_with_hint(self):
        resp = self.proxy.send_raw(b"GET https://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
        self.assert_refused(resp, 400, "bad_request", deny_event=False)
        self.assertIn(b"CONNECT", resp.body)
        self.assert_upstreams_untouched()

    def test_origin_form_is_rejected(self):
        resp = self.proxy.send_raw(b"GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
        self.assert_refused(resp, 400, "bad_request", deny_event=False)
        self.assertIn(b"absolute", resp.body)
        self.assert_upstreams_untouched()

    # -- message framing -------------------------------------------------------------------------------
    def test_post_content_length_echoed(self):
        body = b"x" * 10000 + b"end"
        resp = self.get(self.up_url(path="/echo"), method="POST", body=body)
        self.assertEqual((resp.status, resp.body), (200, body))
        req = self.upstream.requests[0]
        self.assertTrue(req["complete"])
        self.assertEqual(req["body"], body)
        self.assertEqual(dict((k.lower(), v) for k, v in req["headers"])["content-length"], str(len(body)))

    def test_post_chunked_echoed(self):
        with self.proxy.connect() as c:
            c.send("POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" % self.up_url(path="/echo"))
            c.send(b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
            resp = c.read_response()
            self.assertEqual((resp.status, resp.body), (200, b"hello world"))
            # The connection is still good for another request.
            r2 = self.get(self.up_url(), conn=c)
            self.assertEqual((r2.status, r2.body), (200, b"hello"))
        req = self.upstream.requests[0]
        self.assertTrue(req["complete"])
        self.assertEqual(req["body"], b"hello world")
        te = [v for k, v in req["headers"] if k.lower() == "transfer-encoding"]
        self.assertEqual(te, ["chunked"])

    def test_head_then_reuse(self):
        with self.proxy.connect() as c:
            resp = self.get(self.up_url(), method="HEAD", conn=c)
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.header("Content-Length"), "5")
            r2 = self.get(self.up_url(), conn=c)
            self.assertEqual((r2.status, r2.body), (200, b"hello"))
        self.assertEqual([r["method"] for r in self.upstream.requests], ["HEAD", "GET"])

    def test_204_and_304_have_no_body(self):
        with self.proxy.connect() as c:
            r1 = self.get(self.up_url(path="/nocontent"), conn=c)
            self.assertEqual((r1.status, r1.body), (204, b""))
            r2 = self.get(self.up_url(path="/notmodified"), conn=c)
            self.assertEqual((r2.status, r2.body), (304, b""))
            self.assertEqual(r2.header("ETag"), '"e2e"')
            r3 = self.get(self.up_url(), conn=c)
            self.assertEqual((r3.status, r3.body), (200, b"hello"))

    def test_chunked_response(self):
        resp = self.get(self.up_url(path="/chunked"))
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.header("Transfer-Encoding"), "chunked")
        self.assertEqual(resp.body, b"hello chunked world")

    def test_expect_100_continue_with_curl(self):
        path = os.path.join(self.tmp.name, "upload.bin")
        data = bytes(range(256)) * 400  # ~100 KB
        with open(path, "wb") as f:
            f.write(data)
        out = os.path.join(self.tmp.name, "out.bin")
        r = harness.curl("-x", "http://127.0.0.1:%d" % self.proxy.port, "-H", "Expect: 100-continue",
                         "--data-binary", "@" + path, "-o", out, "-w", "%{http_code}", self.up_url(path="/echo"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"200")
        with open(out, "rb") as f:
            self.assertEqual(f.read(), data)
        req = self.upstream.requests[0]
        self.assertEqual(req["body"], data)

    def test_http10_client(self):
        with self.proxy.connect() as c:
            c.send("GET %s HTTP/1.0\r\n\r\n" % self.up_url())
            resp = c.read_response()
            self.assertEqual((resp.status, resp.body), (200, b"hello"))
            self.assertTrue(c.closed_by_peer(), "an HTTP/1.0 request without keep-alive ends the connection")
        with self.proxy.connect() as c:
            c.send("GET %s HTTP/1.0\r\n\r\n" % self.up_url(path="/chunked"))
            raw = c.read_until_close()
        head, _, body = raw.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1."), raw)
        self.assertIn(b" 200 ", head.split(b"\r\n")[0])
        self.assertNotIn(b"transfer-encoding", head.lower(), "an HTTP/1.0 client must not get chunks")
        self.assertEqual(body, b"hello chunked world")

    def test_response_delimited_by_close(self):
        with self.proxy.connect(timeout=10) as c:
            c.send("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.up_url(path="/close"))
            resp = c.read_response(timeout=10)
            self.assertEqual(resp.status, 200)
            self.assertEqual(len(resp.body), len(harness.CLOSE_BODY))
            self.assertEqual(resp.body, harness.CLOSE_BODY)


    # -- connection management -------------------------------------------------------------------------
    def test_pipelined_requests(self):
        with self.proxy.connect() as c:
            c.send("GET %s HTTP/1.1\r\nHost: x\r\n\r\nGET %s HTTP/1.1\r\nHost: x\r\n\r\n"
                   "GET %s HTTP/1.1\r\nHost: x\r\n\r\n"
                   % (self.up_url(), self.up_url(path="/chunked"), self.up_url("denied.test")))
            r1 = c.read_response()
            r2 = c.read_response()
            r3 = c.read_response()
        self.assertEqual((r1.status, r1.body), (200, b"hello"))
        self.assertEqual((r2.status, r2.body), (200, b"hello chunked world"))
        self.assertEqual(r3.status, 403)
        self.assertEqual([r["path"] for r in self.upstream.requests], ["/hello", "/chunked"])

    def test_client_connection_close(self):
        with self.proxy.connect() as c:
            c.send("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % self.up_url())
            resp = c.read_response()
            self.assertEqual((resp.status, resp.body), (200, b"hello"))
            self.assertEqual(resp.header("Connection"), "close")
            self.assertTrue(c.closed_by_peer())

    def test_http10_keep_alive(self):
        with self.proxy.connect() as c:
            for _ in range(2):
                c.send("GET %s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % self.up_url())
                resp = c.read_response()
                self.assertEqual((resp.status, resp.body), (200, b"hello"))
                self.assertEqual((resp.header("Connection") or "").lower(), "keep-alive")

    def test_close_event_causes_are_codes(self):
        # Each of these ends a connection on a different path; every close event must carry a plain code.
        with self.proxy.connect() as c:  # the client asks to close: done
            c.send("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % self.up_url())
            self.assertEqual(c.read_response().status, 200)
            c.read_until_close()
        with self.proxy.connect() as c:  # refused with a body: denied
            c.send("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" % self.up_url("denied.test"))
            self.assertEqual(c.read_response().status, 403)
            c.read_until_close()
        with self.proxy.connect() as c:  # a bad target: bad_request
            c.send("GET http://user@allowed.test:%d/ HTTP/1.1\r\nHost: x\r\n\r\n" % self.upstream.port)
            self.assertEqual(c.read_response().status, 400)
            c.read_until_close()
        with self.proxy.connect() as c:  # the client goes away between requests: client_closed
            self.assertEqual(self.get(self.up_url(), conn=c).status, 200)
        with self.proxy.connect() as c:  # the upstream answers garbage: bad_upstream_response (a long string)
            resp = self.get(self.up_url(path="/garbage"), conn=c)
            self.assertEqual(resp.status, 502)
            self.assertEqual(resp.header("X-Egressd-Reason"), "bad_upstream_response")
            c.read_until_close()
        closes = self.proxy.wait_events(5, event="egress.close")
        self.assertEqual(len(closes), 5, self.proxy.dump_events())
        known = {"done", "denied", "bad_request", "client_closed", "closed", "bad_upstream_response"}
        for ev in closes:
            self.assertIn(ev["cause"], known, "close event with a garbage cause: %r" % ev)

    def test_upstream_drops_idle_keep_alive_connection(self):
        # The upstream closes its side after a keep-alive response (its keep-alive timeout). The next
        # request on the client's connection must not be lost on the dead upstream connection.
        with self.proxy.connect() as c:
            r1 = self.get(self.up_url(path="/dropafter"), conn=c)
            self.assertEqual((r1.status, r1.body), (200, b"dropped after"))
            time.sleep(0.3)
            r2 = self.get(self.up_url(), conn=c)
            self.assertEqual((r2.status, r2.body), (200, b"hello"), r2)

    def test_denied_request_with_body_closes(self):
        with self.proxy.connect() as c:
            c.send("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n"
                   % self.up_url("denied.test"))
            resp = c.read_response(timeout=3)  # without waiting for the body
            self.assertEqual(resp.status, 403)
            self.assertEqual(resp.header("Connection"), "close")
            self.assertTrue(c.closed_by_peer())
        self.assert_upstreams_untouched()

    # -- names -----------------------------------------------------------------------------------------
    def test_name_case_and_trailing_dot(self):
        for host in ("ALLOWED.Test", "allowed.test."):
            with self.subTest(host=host):
                resp = self.get(self.up_url(host))
                self.assertEqual((resp.status, resp.body), (200, b"hello"))
        self.assertEqual({q.lower() for q, _ in self.dns.names_seen()}, {"allowed.test"})

    def test_wildcard_is_label_based(self):
        for host in ("notwild.test", "wild.test.evil.test", "wild-test"):
            with self.subTest(host=host):
                resp = self.get(self.up_url(host))
                self.assertEqual(resp.status, 403, resp)
                self.assertIn(resp.header("X-Egressd-Reason"), ("no_matching_rule", "explicit_deny"))
        resp = self.get(self.up_url("wild.test"))
        self.assertNotEqual(resp.status, 403, "'.wild.test' matches wild.test itself: %r" % resp)
        self.assertEqual(self.upstream.requests, [])  # wild.test does not resolve: 502 nxdomain

    def test_unknown_client(self):
        # No client has 127.0.0.3 and there is no default client.
        with self.proxy.connect(source="127.0.0.3") as c:
            c.send("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.up_url())
            resp = c.read_response()
        self.assertEqual(resp.status, 403)
        self.assertEqual(resp.header("X-Egressd-Reason"), "unknown_client")
        ev = self.proxy.wait_event(event="egress.deny", request_id=resp.header("X-Egressd-Request-Id"))
        self.assertEqual(ev["reason"], "unknown_client")
        self.assertIsNone(ev["client"])
        self.assertTrue(ev["source"].startswith("127.0.0.3:"), ev)
        self.assert_upstreams_untouched()

    # -- responses from the upstream -------------------------------------------------------------------
    def test_response_hop_by_hop_removed(self):
        resp = self.get(self.up_url(path="/hopheaders"))
        self.assertEqual((resp.status, resp.body), (200, b"hop"))
        names = [k.lower() for k, _ in resp.headers]
        for gone in ("x-up-hop", "keep-alive", "upgrade", "proxy-connection"):
            self.assertNotIn(gone, names, resp.headers)
        for v in resp.header_all("Connection"):
            self.assertNotIn("x-up-hop", v.lower())
        self.assertEqual(resp.header("X-Up-End"), "end")

    def test_304_with_content_length_has_no_body(self):
        with self.proxy.connect() as c:
            r1 = self.get(self.up_url(path="/notmodified-cl"), conn=c)
            self.assertEqual((r1.status, r1.body), (304, b""))
            r2 = self.get(self.up_url(), conn=c)  # the proxy did not wait for 100 bytes that never come
            self.assertEqual((r2.status, r2.body), (200, b"hello"))

    def test_upstream_response_with_both_framings(self):
        with self.proxy.connect() as c:
            c.send("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.up_url(path="/clte"))
            resp = c.read_response()
        self.assertFalse(resp.header("Content-Length") is not None and resp.header("Transfer-Encoding") is not None,
                         "both framings passed on to the client: %r" % resp)
        self.assertIn(resp.status, (200, 502), resp)
        if resp.status == 200:
            self.assertEqual(resp.body, b"hello")

    def test_upstream_response_with_two_content_lengths(self):
        resp = self.get(self.up_url(path="/twocl"))
        self.assertEqual(resp.status, 502, resp)
        self.assertEqual(resp.header("X-Egressd-Reason"), "bad_upstream_response")

    def test_upstream_truncated_body_closes_client(self):
        with self.proxy.connect() as c:
            c.send("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.up_url(path="/truncated"))
            with self.assertRaises(harness.ConnectionClosed):
                c.read_response(timeout=5)  # 10 of 1000 bytes, then the proxy must end the connection
            self.assertTrue(c.eof)

    def test_path_and_query_preserved(self):
        resp = self.get("http://allowed.test:%d/hello?x=1&y=%%2F" % self.upstream.port)
        resp2 = self.get("http://allowed.test:%d" % self.upstream.port)
        paths = [r["path"] for r in self.upstream.requests]
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(paths[0], "/hello?x=1&y=%2F")
        self.assertEqual((resp2.status, resp2.body), (200, b"root"))
        self.assertEqual(paths[1], "/")

    def test_http10_client_gets_no_interim_response(self):
        with self.proxy.connect() as c:
            c.send("POST %s HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody"
                   % self.up_url(path="/echo"))
            raw = c.read_until_close()
        self.assertTrue(raw.startswith(b"HTTP/1.1 200 "), raw)
        self.assertNotIn(b" 100 ", raw)
        self.assertTrue(raw.endswith(b"\r\n\r\nbody"), raw)

    def test_head_of_chunked_resource(self):
        with self.proxy.connect() as c:
            r1 = self.get(self.up_url(path="/chunked"), method="HEAD", conn=c)
            self.assertEqual((r1.status, r1.body), (200, b""))
            r2 = self.get(self.up_url(), conn=c)
            self.assertEqual((r2.status, r2.body), (200, b"hello"))

    def test_concurrent_clients(self):
        results = []
        lock = threading.Lock()

        def client(n):
            out = []
            try:
                with self.proxy.connect(timeout=10) as c:
                    for i in range(10):
                        body = b"client %d request %d" % (n, i)
                        r = self.get(self.up_url(path="/echo"), method="POST", body=body, conn=c)
                        out.append(r.status == 200 and r.body == body)
            except Exception as e:  # recorded, then asserted below
                out.append(repr(e))
            with lock:
                results.extend(out)

        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        self.assertEqual(results, [True] * 400)
        self.assertEqual(len(self.upstream.requests), 400)

if __name__ == "__main__":
    unittest.main()
