"""Chaining to a parent proxy: a second egressd is the parent, and its own events prove what passed through it.

The parent is the proxy ProxyTestCase starts (the default test policy: allowed.test on the upstream ports, by
name and by loopback address); the child under test names it in `upstream_proxy` and has a policy of its own.
"""

import re
import socket
import time
import unittest

import harness

harness.isolate_network()


def names(items):
    return harness._yaml_list(items)


class UpstreamProxyTest(harness.ProxyTestCase):

    def dns_records(self):
        records = harness.default_records()
        lo = {"A": ["127.0.0.1"], "ttl": 60}
        records["parent.test"] = lo   # the parent by name
        records["direct.test"] = lo   # a destination the child reaches itself
        return records

    def setUp(self):
        super().setUp()
        self.parent = self.proxy
        self.child = self.start_child()

    # -- set-up -------------------------------------------------------------------------------------------
    def child_policy(self, guard_except=("loopback",), names_via_parent=("allowed.test", "other.test"),
                     own_parent=None):
        """The child's policy: names_via_parent through the server's parent; direct.test direct; with own_parent
        (a URL), tls.test through that parent instead. Loopback is excepted from the guard unless told."""
        ports = names([self.upstream.port, self.echo.port])
        text = "version: 1\n"
        if guard_except:
            text += "address_guard: {except: %s}\n" % names(guard_except)
        text += f"""groups:
  via_parent:
    description: through the server's parent
    rules:
      - ports: {ports}
        destinations: {names(names_via_parent)}
  straight:
    description: direct, although the server names a parent
    upstream_proxy: direct
    rules:
      - ports: {ports}
        destinations: [direct.test]
"""
        groups = ["via_parent", "straight"]
        if own_parent:
            text += f"""  own:
    description: through a parent of its own
    upstream_proxy: {own_parent}
    rules:
      - ports: {ports}
        destinations: [tls.test]
"""
            groups.append("own")
        text += f"""clients:
  tests:
    sources: [127.0.0.0/8]
    groups: {names(groups)}
"""
        return text

    def start_child(self, parent_url=None, **policy):
        parent_url = parent_url or "http://127.0.0.1:%d" % self.parent.port
        return self.start_proxy(policy_text=self.child_policy(**policy), extra_yaml="upstream_proxy: %s" % parent_url)

    def tunnel(self, proxy, host, port):
        c = proxy.connect(timeout=5)
        c.send("CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host, port, host, port))
        return c, c.read_response(method="CONNECT")

    def echo_through(self, c, payload):
        c.send(payload)
        return c.recv_exact(len(payload), timeout=5)

    def egress_events(self, proxy):
        return [e for e in proxy.events() if str(e.get("event", "")).startswith("egress.")]

    def parent_addr(self, proxy=None):
        return "127.0.0.1:%d" % (proxy or self.parent).port

    # -- CONNECT and plain HTTP through the parent ------------------------------------------------------
    def test_connect_goes_through_the_parent(self):
        c, resp = self.tunnel(self.child, "allowed.test", self.echo.port)
        with c:
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(resp.raw_head, b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.assertEqual(self.echo_through(c, b"ping through two proxies"), b"ping through two proxies")
        ev = self.child.wait_event(event="egress.allow", method="CONNECT", host="allowed.test")
        self.assertEqual(ev["upstream"], self.parent_addr(), ev)
        self.assertIsNone(ev.get("address"), "the child never resolved the destination: %r" % ev)
        # The parent decided and connected: the name came to it, and it resolved it itself.
        hop = self.parent.wait_event(event="egress.allow", method="CONNECT", host="allowed.test")
        self.assertEqual(hop["port"], self.echo.port)
        self.assertEqual(hop["address"], "127.0.0.1")
        self.assertNotIn("upstream", hop)
        close = self.child.wait_event(event="egress.close", request_id=ev["request_id"])
        self.assertGreaterEqual(close["bytes_to_client"], len(b"ping through two proxies"))
        self.assertIsNone(close.get("address"), close)

    def test_connect_to_a_server_that_speaks_first(self):
        banner = harness.RecordingServer(banner=b"220 ready\r\n")
        self.addCleanup(banner.stop)
        child = self.start_proxy(
            policy_text=self.child_policy().replace(
                names([self.upstream.port, self.echo.port]),
                names([self.upstream.port, self.echo.port, banner.port])),
            extra_yaml="upstream_proxy: http://127.0.0.1:%d" % self.parent.port)
        parent_text = self.policy_text().replace(names(self.web_ports()), names(self.web_ports() + [banner.port]))
        self.parent.write_policy(parent_text)
        self.assertEqual(self.parent.sighup_reload()["event"], "egressd.reload")
        c, resp = self.tunnel(child, "allowed.test", banner.port)
        with c:
            self.assertEqual(resp.status, 200, resp)
            # The banner may come with the parent's 200 in one segment: it must reach the client all the same.
            self.assertEqual(c.recv_exact(len(b"220 ready\r\n"), timeout=5), b"220 ready\r\n")

    def test_plain_http_goes_through_the_parent_in_absolute_form(self):
        with self.child.connect() as c:
            c.send("GET %s HTTP/1.1\r\nHost: allowed.test:%d\r\n\r\n" % (self.up_url(), self.upstream.port))
            resp = c.read_response()
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.body, b"hello")
        reqs = self.upstream.requests
        self.assertEqual(len(reqs), 1, reqs)
        self.assertEqual(reqs[0]["path"], "/hello")  # the parent sent it on in origin form
        via = [v for k, v in reqs[0]["headers"] if k.lower() == "via"]
        self.assertEqual(via, ["1.1 egressd, 1.1 egressd"], reqs[0]["headers"])
        ev = self.child.wait_event(event="egress.allow", method="GET", host="allowed.test")
        self.assertEqual(ev["upstream"], self.parent_addr(), ev)
        self.assertEqual(ev["status"], 200)
        hop = self.parent.wait_event(event="egress.allow", method="GET", host="allowed.test")
        self.assertEqual(hop["path"], "/hello")
        self.assertEqual(hop["status"], 200)

    def test_keep_alive_to_the_parent(self):
        with self.child.connect() as c:
            for path in ("/hello", "/echo"):
                c.send("GET %s HTTP/1.1\r\nHost: allowed.test:%d\r\n\r\n" % (self.up_url(path=path), self.upstream.port))
                self.assertEqual(c.read_response().status, 200)
        # One connection from the child to the parent carried both requests.
        close = self.parent.wait_event(event="egress.close", method="GET", timeout=5)
        self.assertEqual(close["requests"], 2, close)
        self.assertEqual(len(self.parent.events(event="egress.close")), 1, self.parent.dump_events())

    # -- what the child refuses never reaches the parent -------------------------------------------------
    def test_denied_requests_never_reach_the_parent(self):
        c, resp = self.tunnel(self.child, "denied.test", self.echo.port)
        c.close()
        self.assertEqual(resp.status, 403, resp)
        self.assertEqual(resp.header("X-Egressd-Reason"), "no_matching_rule")
        with self.child.connect() as c:
            c.send("GET http://allowed.test:%d/hello HTTP/1.1\r\nHost: allowed.test\r\n\r\n" % self.other.port)
            self.assertEqual(c.read_response().status, 403)
        deny = self.child.wait_event(event="egress.deny", method="GET")
        self.assertEqual(deny["reason"], "port_not_allowed")
        self.assertNotIn("upstream", deny)
        self.child.wait_events(2, event="egress.close")
        self.assertEqual(self.egress_events(self.parent), [], "the parent saw traffic the child refused")
        self.assertEqual(self.echo.connections, 0)

    def test_ecs_and_ocsf_name_the_parent(self):
        for fmt, path in (("ecs", ("egressd", "upstream")), ("ocsf", ("unmapped", "egressd", "upstream"))):
            child = self.start_proxy(settings={"logging": {"format": fmt}}, policy_text=self.child_policy(),
                                     extra_yaml="upstream_proxy: http://127.0.0.1:%d" % self.parent.port)
            c, resp = self.tunnel(child, "allowed.test", self.echo.port)
            c.close()
            self.assertEqual(resp.status, 200, resp)
            line = harness.raw_line(child.wait_event(event="egress.allow"))
            for key in path:
                line = line.get(key, {})
            self.assertEqual(line, self.parent_addr(), (fmt, child.dump_events()))

    # -- the parent fails or refuses -------------------------------------------------------------------
    def test_parent_down_is_a_502(self):
        held = socket.socket()
        held.bind(("127.0.0.1", 0))  # bound, never listening: connecting is refused
        self.addCleanup(held.close)
        child = self.start_child("http://127.0.0.1:%d" % held.getsockname()[1])
        c, resp = self.tunnel(child, "allowed.test", self.echo.port)
        c.close()
        self.assertEqual(resp.status, 502, resp)
        self.assertEqual(resp.header("X-Egressd-Reason"), "connect_failed")
        err = child.wait_event(event="egress.error", method="CONNECT")
        self.assertEqual(err["reason"], "connect_failed")
        self.assertEqual(err["upstream"], "127.0.0.1:%d" % held.getsockname()[1])
        self.assertIn("unreachable", err["detail"])
        close = child.wait_event(event="egress.close", request_id=err["request_id"])
        self.assertEqual(close["cause"], "connect_failed")
        with child.connect() as c:
            c.send("GET %s HTTP/1.1\r\nHost: allowed.test\r\n\r\n" % self.up_url())
            self.assertEqual(c.read_response().status, 502)
        self.assertEqual(child.wait_event(event="egress.error", method="GET")["reason"], "connect_failed")
        self.assertEqual(self.upstream.connections, 0)

    def test_parent_silent_is_a_504(self):
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever reads or answers
        self.addCleanup(silent.close)
        child = self.start_child("http://127.0.0.1:%d" % silent.getsockname()[1])
        c, resp = self.tunnel(child, "allowed.test", self.echo.port)
        c.close()
        self.assertEqual(resp.status, 504, resp)
        self.assertEqual(resp.header("X-Egressd-Reason"), "connect_timeout")
        err = child.wait_event(event="egress.error", method="CONNECT")
        self.assertIn("did not answer the CONNECT in time", err["detail"])

    def test_parent_refusing_a_connect_is_a_502_that_says_why(self):
        # other.test is allowed by the child, but the parent's policy does not name it.
        c, resp = self.tunnel(self.child, "other.test", self.echo.port)
        with c:
            self.assertEqual(resp.status, 502, resp)
            self.assertEqual(resp.header("X-Egressd-Reason"), "connect_failed")
            self.assertIn(b"refused the CONNECT: 403 Forbidden", resp.body)
            # The parent's own error page is not relayed as if the tunnel were open.
            self.assertNotIn(b"no_matching_rule", resp.body)
            self.assertTrue(c.closed_by_peer(), "the connection must end after the refusal")
        hop = self.parent.wait_event(event="egress.deny", host="other.test")
        self.assertEqual(hop["reason"], "no_matching_rule")
        err = self.child.wait_event(event="egress.error", method="CONNECT", host="other.test")
        self.assertEqual(err["reason"], "connect_failed")
        self.assertIn("refused the CONNECT: 403", err["detail"])
        self.assertEqual(err["upstream"], self.parent_addr())

    def test_parent_refusing_plain_http_answers_with_its_own_status(self):
        # For plain HTTP the parent's answer is the response, as behind any chain of proxies.
        with self.child.connect() as c:
            c.send("GET http://other.test:%d/hello HTTP/1.1\r\nHost: other.test\r\n\r\n" % self.upstream.port)
            resp = c.read_response()
        self.assertEqual(resp.status, 403, resp)
        self.assertEqual(resp.header("X-Egressd-Reason"), "no_matching_rule")
        ev = self.child.wait_event(event="egress.allow", method="GET", host="other.test")
        self.assertEqual(ev["status"], 403)
        self.assertEqual(self.upstream.connections, 0)

    # -- routes per group -------------------------------------------------------------------------------
    def test_a_direct_group_skips_the_parent(self):
        with self.child.connect() as c:
            c.send("GET http://direct.test:%d/hello HTTP/1.1\r\nHost: direct.test\r\n\r\n" % self.upstream.port)
            self.assertEqual(c.read_response().status, 200)
        ev = self.child.wait_event(event="egress.allow", host="direct.test")
        self.assertEqual(ev["address"], "127.0.0.1")  # resolved and vetted by the child itself
        self.assertNotIn("upstream", ev)
        self.child.wait_event(event="egress.close", request_id=ev["request_id"])
        self.assertEqual(self.egress_events(self.parent), [])
        self.assertEqual(len(self.upstream.requests), 1)

    def test_a_group_with_its_own_parent(self):
        second = self.start_proxy()  # another parent, with the default policy as well
        child = self.start_child(own_parent="http://127.0.0.1:%d" % second.port)
        c, resp = self.tunnel(child, "tls.test", self.echo.port)
        with c:
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(self.echo_through(c, b"own parent"), b"own parent")
        ev = child.wait_event(event="egress.allow", host="tls.test")
        self.assertEqual(ev["upstream"], self.parent_addr(second))
        second.wait_event(event="egress.allow", host="tls.test", method="CONNECT")
        c, resp = self.tunnel(child, "allowed.test", self.echo.port)
        with c:
            self.assertEqual(resp.status, 200, resp)
        self.parent.wait_event(event="egress.allow", host="allowed.test", method="CONNECT")
        self.assertEqual([e for e in self.egress_events(self.parent) if e.get("host") == "tls.test"], [])
        self.assertEqual([e for e in self.egress_events(second) if e.get("host") == "allowed.test"], [])

    # -- the address guard on the parent's address ------------------------------------------------------
    def test_the_guard_refuses_a_loopback_parent_unless_excepted(self):
        for url in ("http://127.0.0.1:%d" % self.parent.port, "http://parent.test:%d" % self.parent.port):
            child = self.start_child(url, guard_except=())
            c, resp = self.tunnel(child, "allowed.test", self.echo.port)
            c.close()
            self.assertEqual(resp.status, 403, (url, resp))
            self.assertEqual(resp.header("X-Egressd-Reason"), "address_guard")
            deny = child.wait_event(event="egress.deny", method="CONNECT")
            self.assertEqual(deny["guard"], "loopback", deny)
            self.assertIn("a guarded address", deny["detail"])
            self.assertEqual(deny["upstream"], url[len("http://"):])
        self.assertEqual(self.egress_events(self.parent), [], "a guarded parent was connected to")
        # Excepted, the parent by name is resolved by the child and used.
        child = self.start_child("http://parent.test:%d" % self.parent.port)
        c, resp = self.tunnel(child, "allowed.test", self.echo.port)
        with c:
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(self.echo_through(c, b"by name"), b"by name")
        ev = child.wait_event(event="egress.allow", method="CONNECT")
        self.assertEqual(ev["upstream"], "parent.test:%d" % self.parent.port)

    # -- reloads ----------------------------------------------------------------------------------------
    def test_a_reload_changing_the_parent_applies_to_new_connections(self):
        second = self.start_proxy()
        old, resp = self.tunnel(self.child, "allowed.test", self.echo.port)
        self.addCleanup(old.close)
        self.assertEqual(resp.status, 200, resp)
        with open(self.child.config_path) as f:
            config = f.read()
        config = re.sub(r"^upstream_proxy: .*$", "upstream_proxy: http://127.0.0.1:%d" % second.port, config,
                        flags=re.M)
        with open(self.child.config_path, "w") as f:
            f.write(config)
        mark = self.child.event_count()
        self.assertEqual(self.child.sighup_reload()["event"], "egressd.reload")
        restart = self.child.wait_for_event("egressd.restart_needed", after=mark, timeout=0.5, fail=False)
        self.assertIsNone(restart, "upstream_proxy applies on reload: %r" % restart)
        c, resp = self.tunnel(self.child, "allowed.test", self.echo.port)
        with c:
            self.assertEqual(resp.status, 200, resp)
        second.wait_event(event="egress.allow", method="CONNECT", host="allowed.test")
        self.assertEqual(len(self.parent.events(event="egress.allow")), 1, "only the tunnel opened before")
        # The tunnel opened before the reload keeps its parent.
        self.assertEqual(self.echo_through(old, b"still through the first"), b"still through the first")

    def test_a_policy_change_revokes_a_tunnel_through_the_parent(self):
        c, resp = self.tunnel(self.child, "allowed.test", self.echo.port)
        self.addCleanup(c.close)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(self.echo_through(c, b"before"), b"before")
        allow = self.child.wait_event(event="egress.allow", method="CONNECT")
        self.child.write_policy(self.child_policy(names_via_parent=("other.test",)))
        self.assertEqual(self.child.sighup_reload()["event"], "egressd.reload")
        revoke = self.child.wait_event(event="egress.revoke", request_id=allow["request_id"])
        self.assertEqual(revoke["reason"], "no_matching_rule", revoke)
        self.assertTrue(c.closed_by_peer(timeout=5), "the revoked tunnel stayed open")
        close = self.child.wait_event(event="egress.close", request_id=allow["request_id"])
        self.assertEqual(close["cause"], "policy_revoked")
        # The parent's side of the tunnel ends with it.
        self.parent.wait_event(event="egress.close", method="CONNECT", timeout=5)


if __name__ == "__main__":
    unittest.main()
