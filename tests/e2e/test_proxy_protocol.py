"""PROXY protocol v1 and v2 on a listener behind a trusted load balancer: the header's source address is the
client the policy sees; a trusted source must send one, an untrusted source must not, and a malformed, slow or
missing header never changes anyone's identity. The addresses in the headers (203.0.113.0/24, 2001:db8::/32)
are documentation ranges, only ever carried as header contents, never contacted.
"""

import socket
import struct
import time
import unittest

import harness

harness.isolate_network()

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
TRUSTED_LISTENER = {"address": "127.0.0.1:0", "proxy_protocol": {"trusted": ["127.0.0.1/32"]}}
UNTRUSTED_SOURCE = "127.0.0.2"  # on loopback, but not in the listener's trusted list


def v1(src="203.0.113.7", dst="127.0.0.1", sport=40000, dport=80, family="TCP4"):
    return ("PROXY %s %s %s %d %d\r\n" % (family, src, dst, sport, dport)).encode()


def v2(command=1, family=0x11, block=b""):
    """A v2 header: version 2, command (0 LOCAL, 1 PROXY), family/protocol byte, then the address block."""
    return V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(block)) + block


def v2_inet(src, dst, sport, dport, tlvs=b""):
    return v2(1, 0x11, socket.inet_pton(socket.AF_INET, src) + socket.inet_pton(socket.AF_INET, dst) +
              struct.pack("!HH", sport, dport) + tlvs)


def v2_inet6(src, dst, sport, dport, tlvs=b""):
    return v2(1, 0x21, socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst) +
              struct.pack("!HH", sport, dport) + tlvs)


def tlv(kind, value):
    return bytes([kind]) + struct.pack("!H", len(value)) + value


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def with_crc32c(src, dst, sport, dport, wrong=False):
    """A v2 IPv4 header whose last TLV is a CRC32C of the whole header (computed with the value zeroed)."""
    zeroed = v2_inet(src, dst, sport, dport, tlvs=tlv(0x03, bytes(4)))
    crc = crc32c(zeroed) ^ (1 if wrong else 0)
    return zeroed[:-4] + struct.pack("!I", crc)


class ProxyProtocolTest(harness.ProxyTestCase):
    egressd_settings = {"listeners": [TRUSTED_LISTENER]}

    def policy_text(self):
        lb_ports = harness._yaml_list([self.upstream.port, self.echo.port])
        return f"""version: 1
mode: enforce
groups:
  lb-web:
    description: what the clients behind the load balancer may reach
    rules:
      - description: allowed.test for the load balancer's clients
        ports: {lb_ports}
        destinations: [allowed.test]
      - description: loopback by address (guard exemption)
        ports: {lb_ports}
        destinations: [127.0.0.1/32]
  local-web:
    description: what local connections may reach
    rules:
      - description: intranet for local connections
        ports: [{self.upstream.port}]
        destinations: [intranet]
      - description: loopback by address (guard exemption)
        ports: [{self.upstream.port}]
        destinations: [127.0.0.1/32]
clients:
  lb-clients:
    description: the clients behind the load balancer, as its PROXY headers name them
    sources: [203.0.113.0/24, "2001:db8::/32"]
    groups: [lb-web]
  local:
    description: connections from loopback, the load balancer itself included
    sources: [127.0.0.0/8]
    groups: [local-web]
"""

    # -- helpers ---------------------------------------------------------------------------------------
    def request(self, host="allowed.test", path="/hello"):
        return ("GET http://%s:%d%s HTTP/1.1\r\nHost: %s\r\n\r\n" % (host, self.upstream.port, path, host)).encode()

    def exchange(self, data, source=None, proxy=None):
        """Sends data on a fresh connection (from source); returns (response or None, the client's own address)."""
        with (proxy or self.proxy).connect(source=source) as c:
            own = "%s:%d" % c.sock.getsockname()[:2]
            c.send(data)
            try:
                return c.read_response(), own
            except harness.ConnectionClosed:
                return None, own

    def assert_served_as(self, resp, client, source, status=200, host="allowed.test"):
        self.assertIsNotNone(resp)
        self.assertEqual(resp.status, status, resp)
        rid = resp.header("X-Egressd-Request-Id")
        if status == 200:
            self.assertEqual(resp.body, b"hello")
            ev = self.proxy.wait_event(event="egress.allow", host=host, source=source)
        else:
            ev = self.proxy.wait_event(event="egress.deny", request_id=rid)
        self.assertEqual(ev["client"], client, ev)
        self.assertEqual(ev["source"], source, ev)
        return ev

    def assert_header_refused(self, resp, reason, source):
        """400 with the reason, the connection's own source in the close event, and no decision at all."""
        self.assertIsNotNone(resp, "closed without a response")
        self.assertEqual(resp.status, 400, resp)
        self.assertEqual(resp.header("X-Egressd-Reason"), reason, resp)
        self.assertEqual(resp.header("Connection"), "close", resp)
        self.assertIn(reason.encode(), resp.body)
        rid = resp.header("X-Egressd-Request-Id")
        self.assertTrue(rid and rid != "-", resp)
        close = self.proxy.wait_event(event="egress.close", request_id=rid)
        self.assertEqual(close["cause"], reason, close)
        self.assertEqual(close["source"], source, close)
        return close

    def assert_nothing_decided(self, proxy=None):
        decided = (proxy or self.proxy).events(lambda e: e.get("event", "").startswith("egress.") and
                                               e["event"] != "egress.close")
        self.assertEqual(decided, [])
        self.assert_upstreams_untouched()

    # -- trusted load balancer, good headers -------------------------------------------------------------
    def test_listening_event_says_proxy_protocol_on(self):
        ev = self.proxy.wait_event(event="egressd.listening")
        self.assertEqual(ev["proxy_protocol"], "on")

    def test_v1_header_names_the_client(self):
        with self.proxy.connect() as c:
            c.send(v1("203.0.113.7", "127.0.0.1", 40000, 80) + self.request())
            resp = c.read_response()
            ev = self.assert_served_as(resp, "lb-clients", "203.0.113.7:40000")
            self.assertEqual(ev["rule_group"], "lb-web")
            # The identity holds for the whole connection: the next request is decided for the same client.
            c.send(self.request(host="intranet"))
            resp = c.read_response()
            self.assertEqual(resp.status, 403, resp)
            self.assertEqual(resp.header("X-Egressd-Reason"), "no_matching_rule")
            self.assert_served_as(resp, "lb-clients", "203.0.113.7:40000", status=403)
        close = self.proxy.wait_event(event="egress.close", source="203.0.113.7:40000")
        self.assertEqual((close["client"], close["requests"]), ("lb-clients", 2), close)
        self.assertEqual(len(self.upstream.requests), 1)
        self.assertEqual(self.upstream.requests[0]["peer"], "127.0.0.1")  # egressd itself, as ever

    def test_v1_tcp6_header(self):
        resp, _ = self.exchange(v1("2001:db8::9", "::1", 40009, 3128, family="TCP6") + self.request())
        self.assert_served_as(resp, "lb-clients", "[2001:db8::9]:40009")

    def test_v2_ipv4_header(self):
        resp, _ = self.exchange(v2_inet("203.0.113.8", "127.0.0.1", 40001, 80) + self.request())
        self.assert_served_as(resp, "lb-clients", "203.0.113.8:40001")

    def test_v2_ipv6_header(self):
        resp, _ = self.exchange(v2_inet6("2001:db8::7", "2001:db8::1", 40002, 3128) + self.request())
        self.assert_served_as(resp, "lb-clients", "[2001:db8::7]:40002")

    def test_v2_ipv4_mapped_source_is_the_ipv4_client(self):
        resp, _ = self.exchange(v2_inet6("::ffff:203.0.113.9", "::ffff:127.0.0.1", 40003, 80) + self.request())
        self.assert_served_as(resp, "lb-clients", "203.0.113.9:40003")

    def test_v2_header_with_tlvs_sent_byte_by_byte(self):
        header = v2_inet("203.0.113.10", "127.0.0.1", 40004, 80,
                         tlvs=tlv(0x02, b"allowed.test") + tlv(0x05, b"e2e-unique-id") + tlv(0x04, b""))
        with self.proxy.connect() as c:
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(len(header)):
                c.sock.send(header[i:i + 1])
                time.sleep(0.002)
            c.send(self.request())
            resp = c.read_response()
        self.assert_served_as(resp, "lb-clients", "203.0.113.10:40004")

    def test_v2_header_with_crc32c(self):
        resp, _ = self.exchange(with_crc32c("203.0.113.13", "127.0.0.1", 40006, 80) + self.request())
        self.assert_served_as(resp, "lb-clients", "203.0.113.13:40006")

    def test_connect_tunnel_after_header(self):
        with self.proxy.connect() as c:
            c.send(v1("203.0.113.11", "127.0.0.1", 40005, 443) +
                   b"CONNECT allowed.test:%d HTTP/1.1\r\nHost: allowed.test\r\n\r\n" % self.echo.port)
            resp = c.read_response(method="CONNECT")
            self.assertEqual(resp.status, 200, resp)
            c.send(b"through the tunnel")
            self.assertEqual(c.recv_exact(18), b"through the tunnel")
        ev = self.proxy.wait_event(event="egress.allow", method="CONNECT")
        self.assertEqual((ev["client"], ev["source"]), ("lb-clients", "203.0.113.11:40005"))

    def test_v2_local_command_is_the_connection_itself(self):
        cases = [
            ("v2 LOCAL", v2(0, 0x00)),
            ("v2 LOCAL with an address block, ignored", v2(0, 0x11, socket.inet_aton("203.0.113.12") +
                                                              socket.inet_aton("127.0.0.1") + b"\x9c\x4d\x00\x50")),
            ("v2 PROXY UNSPEC", v2(1, 0x00)),
            ("v1 UNKNOWN", b"PROXY UNKNOWN\r\n"),
        ]
        for name, header in cases:
            with self.subTest(case=name):
                resp, own = self.exchange(header + self.request(host="intranet"))
                self.assert_served_as(resp, "local", own, host="intranet")
        self.assertEqual(self.proxy.events(lambda e: "203.0.113" in e.get("source", "")), [])

    # -- refusals ----------------------------------------------------------------------------------------
    def test_trusted_source_without_header_refused(self):
        resp, own = self.exchange(self.request())
        self.assert_header_refused(resp, "missing_proxy_header", own)
        self.assert_nothing_decided()

    def test_malformed_headers_refused(self):
        cases = [
            ("v1 nonsense", b"PROXY TCP4 203.0.113.7 nonsense\r\n"),
            ("v1 leading zero port", b"PROXY TCP4 203.0.113.7 127.0.0.1 040000 80\r\n"),
            ("v1 bare LF", b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\n"),
            ("v1 IPv6 address as TCP4", v1("2001:db8::7", "127.0.0.1")),
            ("v1 non-canonical IPv4", v1("203.0.113.007", "127.0.0.1")),
            ("v1 double space", b"PROXY TCP4  203.0.113.7 127.0.0.1 40000 80\r\n"),
            ("v1 port above 65535", b"PROXY TCP4 203.0.113.7 127.0.0.1 65536 80\r\n"),
            ("v1 line too long", b"PROXY UNKNOWN " + b"x" * 120 + b"\r\n"),
            ("v2 version 1", V2_SIGNATURE + b"\x11\x11\x00\x0c" + bytes(12)),
            ("v2 UDP", v2(1, 0x12, bytes(12))),
            ("v2 address block too short", v2(1, 0x11, bytes(11))),
            ("v2 length over the bound", v2(1, 0x11, bytes(12) + tlv(0x05, bytes(1100)))),
            ("v2 TLV overrunning", v2(1, 0x11, bytes(12) + b"\x05\x00\x09abc")),
            ("v2 wrong CRC32C", with_crc32c("203.0.113.7", "127.0.0.1", 40000, 80, wrong=True)),
        ]
        for name, header in cases:
            with self.subTest(case=name):
                resp, own = self.exchange(header + self.request())
                self.assert_header_refused(resp, "bad_proxy_header", own)
        self.assert_nothing_decided()

    def test_untrusted_source_with_header_refused(self):
        for header in (v1("203.0.113.7", "127.0.0.1", 40000, 80), v2_inet("203.0.113.7", "127.0.0.1", 40000, 80)):
            with self.subTest(version=1 if header.startswith(b"PROXY") else 2):
                resp, own = self.exchange(header + self.request(), source=UNTRUSTED_SOURCE)
                self.assertTrue(own.startswith(UNTRUSTED_SOURCE + ":"))
                self.assert_header_refused(resp, "untrusted_proxy_header", own)
        self.assert_nothing_decided()
        self.assertEqual(self.proxy.events(lambda e: "203.0.113" in e.get("source", "")), [])

    def test_untrusted_source_without_header_is_itself(self):
        resp, own = self.exchange(self.request(host="intranet"), source=UNTRUSTED_SOURCE)
        self.assert_served_as(resp, "local", own, host="intranet")
        resp, own = self.exchange(self.request(), source=UNTRUSTED_SOURCE)
        ev = self.assert_served_as(resp, "local", own, status=403)
        self.assertEqual(ev["reason"], "no_matching_rule")

    def test_second_header_is_a_bad_request_not_a_new_identity(self):
        with self.proxy.connect() as c:
            c.send(v1("203.0.113.7", "127.0.0.1", 40000, 80) + v1("203.0.113.99", "127.0.0.1", 40099, 80) +
                   self.request())
            resp = c.read_response()
            self.assertEqual(resp.status, 400, resp)
            self.assertEqual(resp.header("X-Egressd-Reason"), "bad_request")
            self.assertTrue(c.closed_by_peer())
        close = self.proxy.wait_event(event="egress.close", cause="bad_request")
        self.assertEqual(close["source"], "203.0.113.7:40000")
        self.assert_nothing_decided()

    def test_slow_header_times_out(self):
        with self.proxy.connect(timeout=10) as c:
            own = "%s:%d" % c.sock.getsockname()[:2]
            c.send(b"PROXY TCP4 203.0.")
            t0 = time.monotonic()
            data = c.read_until_close(timeout=8)
            elapsed = time.monotonic() - t0
            self.assertTrue(c.eof, "the connection was not closed")
        self.assertGreater(elapsed, 0.5)
        self.assertLess(elapsed, 8)
        self.assertFalse(data.startswith(b"HTTP/1.1 200"), data)
        close = self.proxy.wait_event(event="egress.close", source=own)
        self.assertEqual(close["cause"], "header_timeout", close)
        self.assert_nothing_decided()

    def test_listener_without_proxy_protocol_rejects_headers(self):
        plain = self.start_proxy({"listeners": ["127.0.0.1:0"]})
        self.assertEqual(plain.wait_event(event="egressd.listening")["proxy_protocol"], "off")
        for header in (v1("203.0.113.7", "127.0.0.1", 40000, 80), v2_inet("203.0.113.7", "127.0.0.1", 40000, 80)):
            with self.subTest(version=1 if header.startswith(b"PROXY") else 2):
                with plain.connect() as c:
                    c.send(header + self.request())
                    resp = c.read_response()
                    self.assertEqual(resp.status, 400, resp)
                    self.assertEqual(resp.header("X-Egressd-Reason"), "bad_request")
                    self.assertTrue(c.closed_by_peer())
        self.assertEqual(plain.events(lambda e: "203.0.113" in e.get("source", "")), [])
        self.assert_nothing_decided(plain)
        # And the plain listener serves the connection itself as usual.
        with plain.connect() as c:
            own = "%s:%d" % c.sock.getsockname()[:2]
            c.send(self.request(host="intranet"))
            resp = c.read_response()
        self.assertEqual((resp.status, resp.body), (200, b"hello"))
        ev = plain.wait_event(event="egress.allow")
        self.assertEqual((ev["client"], ev["source"]), ("local", own))


if __name__ == "__main__":
    unittest.main()
