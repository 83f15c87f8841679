"""SNI enforcement on CONNECT: the tunnel's first bytes against the tls mode (require, allow, off) of the rule
that allowed the CONNECT, with openssl s_client, curl, real ClientHellos sent whole or byte by byte, non-TLS
bytes and TLS-looking garbage. Whenever a tunnel is refused, the upstream behind it must have received nothing.
"""

import shutil
import socket
import ssl
import subprocess
import time
import unittest

import harness

harness.isolate_network()

ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"
HTTP_GET = b"GET / HTTP/1.1\r\nHost: tls.test\r\nConnection: close\r\n\r\n"
NOT_TLS = [b"GET / HTTP/1.1\r\n\r\n", b"SSH-2.0-x\r\n"]
BANNER = b"SSH-2.0-e2e-upstream\r\n"


def records(version, message, size):
    """A handshake message carried by TLS handshake records of at most `size` payload bytes each."""
    out = b""
    for i in range(0, len(message), size):
        part = message[i:i + size]
        out += b"\x16" + version + len(part).to_bytes(2, "big") + part
    return out


def split_into_records(hello, size):
    """The same ClientHello (captured as one record), carried by several records of at most `size` bytes."""
    assert hello[0] == 0x16 and len(hello) == 5 + int.from_bytes(hello[3:5], "big"), "one record expected"
    return records(hello[1:3], hello[5:], size)


def padded_message(hello, message_size):
    """The ClientHello handshake message of hello (one record) with a padding extension (21) added, so that
    the message, its 4-byte header included, is exactly message_size bytes."""
    message = bytearray(hello[5:])
    pos = 4 + 2 + 32
    pos += 1 + message[pos]                                   # session id
    pos += 2 + int.from_bytes(message[pos:pos + 2], "big")    # cipher suites
    pos += 1 + message[pos]                                   # compression methods
    ext_len = int.from_bytes(message[pos:pos + 2], "big")
    assert pos + 2 + ext_len == len(message), "extensions must end the hello"
    types, i = [], pos + 2
    while i < len(message):
        types.append(int.from_bytes(message[i:i + 2], "big"))
        i += 4 + int.from_bytes(message[i + 2:i + 4], "big")
    assert 21 not in types and 41 not in types, "no padding or pre_shared_key extension expected"
    n = message_size - len(message) - 4
    assert n >= 0
    message += b"\x00\x15" + n.to_bytes(2, "big") + bytes(n)
    message[pos:pos + 2] = (ext_len + 4 + n).to_bytes(2, "big")
    message[1:4] = (len(message) - 4).to_bytes(3, "big")
    assert len(message) == message_size
    return bytes(message)


class SniTest(harness.ProxyTestCase):
    needs_tls = True
    # The class's egressd: a generous tls_peek, so that a hello sent byte by byte makes it in time.
    egressd_settings = {"timeouts": {"tls_peek": "5s"}}

    def setUp(self):
        if shutil.which("openssl") is None:
            self.skipTest("no openssl command")
        # Created before the proxy starts (policy_text names their ports).
        self.rec = harness.RecordingServer()  # records every byte, echoes it back
        self.addCleanup(self.rec.stop)
        self.banner = harness.RecordingServer(banner=BANNER)  # speaks first, then echoes
        self.addCleanup(self.banner.stop)
        super().setUp()

    def dns_records(self):
        records = harness.default_records()
        lo = {"A": ["127.0.0.1"], "ttl": 60}
        for name in ("off.test", "dflt.test", "elsewhere.test"):
            records[name] = lo
        return records

    def policy_text(self):
        ports = harness._yaml_list([self.tls.port, self.rec.port, self.banner.port])
        return f"""version: 1
mode: enforce
tls: require
groups:
  sni:
    description: one rule per tls mode, all on the TLS upstream, the recorder and the banner server
    rules:
      - description: require rule
        ports: {ports}
        destinations: [tls.test, evil.test]
        tls: require
      - description: allow rule
        ports: {ports}
        destinations: [allowed.test]
        tls: allow
      - description: off rule
        ports: {ports}
        destinations: [off.test]
        tls: off
      - description: policy default rule
        ports: {ports}
        destinations: [dflt.test]
      - description: a name allowed on another port only
        ports: [{self.other.port}]
        destinations: [elsewhere.test]
      - description: loopback by address (opens 127.0.0.1 through the guard; the policy's tls)
        ports: {ports}
        destinations: [127.0.0.1/32]
clients:
  tests:
    description: the test process
    sources: [127.0.0.1/32]
    groups: [sni]
  watch:
    description: the test process from 127.0.0.4, in report mode
    sources: [127.0.0.4/32]
    groups: [sni]
    mode: report
deny:
  - description: a name the require rule also allows, so the deny list must win
    destinations: [evil.test]
"""

    # -- helpers ---------------------------------------------------------------------------------------
    def s_client(self, connect, servername=None, proxy=None, stdin=HTTP_GET):
        """openssl s_client through the proxy's CONNECT; servername None: -noservername."""
        args = ["openssl", "s_client", "-proxy", "127.0.0.1:%d" % (proxy or self.proxy).port, "-connect", connect,
                "-CAfile", self.cert, "-verify_return_error", "-quiet"]
        args += ["-noservername"] if servername is None else ["-servername", servername]
        return subprocess.run(args, input=stdin, capture_output=True, timeout=30)

    def assert_s_client_ok(self, proc):
        # Not the exit status: the Python upstream closes without a close_notify, which s_client reports as
        # an error after the whole response arrived.
        self.assertIn(b"verify return:1", proc.stderr)
        self.assertTrue(proc.stdout.startswith(b"HTTP/1.1 200"), (proc.stdout, proc.stderr))
        self.assertTrue(proc.stdout.endswith(b"hello over tls"), proc.stdout)

    def tunnel(self, authority, source=None, proxy=None):
        c = (proxy or self.proxy).connect(source=source)
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.send("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority))
        head = c.read_head()
        if head != ESTABLISHED:
            c.close()
            self.fail("CONNECT %s: %r" % (authority, head))
        return c

    def send_bytewise(self, c, data, pause=0.001):
        """Sends data one byte per send(); returns the time just before the last byte was sent."""
        last = time.monotonic()
        for i in range(len(data)):
            if i == len(data) - 1:
                last = time.monotonic()
            c.sock.send(data[i:i + 1])
            time.sleep(pause)
        return last

    def assert_tunnel_refused(self, reason, host, sni=None, proxy=None, event="egress.deny", client="tests"):
        """The refusal's decision event and close event; returns the decision event."""
        proxy = proxy or self.proxy
        ev = proxy.wait_event(lambda e: e.get("sni") == sni, event=event, reason=reason, host=host, timeout=10)
        self.assertEqual(ev["method"], "CONNECT", ev)
        self.assertEqual(ev["client"], client, ev)
        self.assertEqual(ev["address"], "127.0.0.1", ev)
        if sni is None:
            self.assertNotIn("sni", ev)
        else:
            self.assertEqual(ev.get("sni"), sni, ev)
        if event == "egress.deny":
            self.assertEqual(ev["mode"], "enforce", ev)
            close = proxy.wait_event(event="egress.close", request_id=ev["request_id"], timeout=10)
            self.assertEqual(close["cause"], "denied", close)
        return ev

    def assert_recorder_got_nothing(self):
        # The connection (made before the 200) must end without a byte; once it has ended, everything that
        # was ever sent on it has been recorded.
        self.assertTrue(self.rec.wait_all_closed(timeout=10), "the upstream connection stayed open")
        self.assertEqual(self.rec.received(), b"", "client bytes reached the upstream of a refused tunnel")

    def assert_no_tunnel_denials(self, proxy=None):
        bad = (proxy or self.proxy).events(lambda e: e.get("event") in ("egress.deny", "egress.would_deny"))
        self.assertEqual(bad, [])

    def echo_through(self, c, data):
        c.send(data)
        self.assertEqual(c.recv_exact(len(data), timeout=5), data)

    # -- openssl s_client --------------------------------------------------------------------------------
    def test_matching_sni_handshake_completes_under_require(self):
        proc = self.s_client("tls.test:%d" % self.tls.port, servername="tls.test")
        self.assert_s_client_ok(proc)
        ev = self.proxy.wait_event(event="egress.allow", method="CONNECT")
        self.assertEqual((ev["host"], ev["client"]), ("tls.test", "tests"))
        close = self.proxy.wait_event(event="egress.close", request_id=ev["request_id"])
        self.assertIn(close["cause"], ("upstream_closed", "client_closed"), close)
        self.assert_no_tunnel_denials()

    def test_mismatching_sni_closes_tunnel_and_upstream_gets_nothing(self):
        proc = self.s_client("tls.test:%d" % self.rec.port, servername="other.test")
        self.assertNotEqual(proc.returncode, 0, proc.stdout)
        self.assertNotIn(b"HTTP/1.1", proc.stdout)
        ev = self.assert_tunnel_refused("sni_mismatch", "tls.test", sni="other.test")
        self.assertEqual(ev["port"], self.rec.port)
        self.assertEqual((ev["rule_group"], ev["rule_description"]), ("sni", "require rule"), ev)
        self.assert_recorder_got_nothing()
        # Against the TLS upstream too: the handshake never happens.
        proc = self.s_client("tls.test:%d" % self.tls.port, servername="other.test")
        self.assertNotEqual(proc.returncode, 0)
        self.assertEqual(self.tls.requests, [])

    def test_mismatching_sni_refused_under_allow(self):
        proc = self.s_client("allowed.test:%d" % self.rec.port, servername="tls.test")
        self.assertNotEqual(proc.returncode, 0, proc.stdout)
        ev = self.assert_tunnel_refused("sni_mismatch", "allowed.test", sni="tls.test")
        self.assertEqual(ev["rule_description"], "allow rule")
        self.assert_recorder_got_nothing()

    def test_no_sni_refused_under_require(self):
        proc = self.s_client("tls.test:%d" % self.rec.port, servername=None)
        self.assertNotEqual(proc.returncode, 0, proc.stdout)
        self.assert_tunnel_refused("sni_missing", "tls.test", sni=None)
        self.assert_recorder_got_nothing()

    def test_no_sni_passes_under_allow(self):
        proc = self.s_client("allowed.test:%d" % self.tls.port, servername=None)
        self.assert_s_client_ok(proc)
        self.proxy.wait_event(event="egress.allow", host="allowed.test")
        self.assert_no_tunnel_denials()

    def test_sni_compared_case_insensitively_and_without_trailing_dot(self):
        for connect, servername in (("tls.test", "TLS.Test."), ("TLS.TEST", "tls.test"), ("tls.test.", "tls.test")):
            with self.subTest(connect=connect, sni=servername):
                proc = self.s_client("%s:%d" % (connect, self.tls.port), servername=servername)
                self.assert_s_client_ok(proc)
        self.assert_no_tunnel_denials()

    # -- a real ClientHello, whole, byte by byte and across records --------------------------------------
    def test_hello_split_byte_by_byte_goes_up_once_complete(self):
        hello = harness.capture_client_hello("tls.test")
        with self.tunnel("tls.test:%d" % self.rec.port) as c:
            last_sent = self.send_bytewise(c, hello)
            # The recorder echoes: the hello comes back exactly once.
            self.assertEqual(c.recv_exact(len(hello), timeout=5), hello)
            self.assertTrue(c.still_open(wait=0.3), "nothing more was expected")
        self.assertTrue(self.rec.wait_all_closed())
        self.assertEqual(self.rec.connections, 1)
        self.assertEqual(self.rec.received(), hello)
        chunks = self.rec.chunks(0)
        # Not one byte before the hello was complete: the first arrival follows the last byte's send, and it
        # carries the whole hello (one write).
        self.assertGreaterEqual(chunks[0][0], last_sent)
        self.assertEqual(chunks[0][1], hello, "the hello went up in %d pieces" % len(chunks))
        self.assert_no_tunnel_denials()

    def test_mismatching_hello_split_byte_by_byte_is_refused(self):
        hello = harness.capture_client_hello("other.test")
        with self.tunnel("tls.test:%d" % self.rec.port) as c:
            self.send_bytewise(c, hello)
            self.assertTrue(c.closed_by_peer(timeout=5))
        self.assert_tunnel_refused("sni_mismatch", "tls.test", sni="other.test")
        self.assert_recorder_got_nothing()

    def test_hello_split_across_records(self):
        hello = harness.capture_client_hello("allowed.test")
        for size in (1, 7, 100):
            with self.subTest(record_payload=size):
                fragmented = split_into_records(hello, size)
                with self.tunnel("allowed.test:%d" % self.rec.port) as c:
                    c.send(fragmented)
                    self.assertEqual(c.recv_exact(len(fragmented), timeout=5), fragmented)
        self.assertEqual(self.rec.received(), split_into_records(hello, 1) + split_into_records(hello, 7) +
                         split_into_records(hello, 100))
        bad = split_into_records(harness.capture_client_hello("other.test"), 7)
        with self.tunnel("allowed.test:%d" % self.rec.port) as c:
            self.send_bytewise(c, bad[:40])
            c.send(bad[40:])
            self.assertTrue(c.closed_by_peer(timeout=5))
        self.assert_tunnel_refused("sni_mismatch", "allowed.test", sni="other.test")
        self.assertTrue(self.rec.wait_all_closed())
        self.assertEqual(self.rec.connections, 4)
        self.assertEqual(self.rec.chunks(3), [], "bytes of the refused hello reached the upstream")

    def test_hello_and_early_bytes_in_one_segment_with_the_connect(self):
        hello = harness.capture_client_hello("tls.test")
        with self.proxy.connect() as c:
            c.send(b"CONNECT tls.test:%d HTTP/1.1\r\nHost: tls.test\r\n\r\n" % self.rec.port + hello + b"after")
            self.assertEqual(c.read_head(), ESTABLISHED)
            self.assertEqual(c.recv_exact(len(hello) + 5, timeout=5), hello + b"after")
        self.assertTrue(self.rec.wait_all_closed())
        self.assertEqual(self.rec.received(), hello + b"after")

    # -- not TLS -----------------------------------------------------------------------------------------
    def test_not_tls_refused_under_require(self):
        for data in NOT_TLS:
            with self.subTest(data=data):
                with self.tunnel("tls.test:%d" % self.rec.port) as c:
                    c.send(data)
                    self.assertTrue(c.closed_by_peer(timeout=5))
        evs = self.proxy.wait_events(len(NOT_TLS), event="egress.deny", reason="not_tls", timeout=10)
        self.assertEqual(len(evs), len(NOT_TLS), self.proxy.dump_events())
        self.assert_tunnel_refused("not_tls", "tls.test", sni=None)
        self.assert_recorder_got_nothing()

    def test_policy_default_require_applies_to_rules_without_tls(self):
        with self.tunnel("dflt.test:%d" % self.rec.port) as c:
            c.send(NOT_TLS[1])
            self.assertTrue(c.closed_by_peer(timeout=5))
        ev = self.assert_tunnel_refused("not_tls", "dflt.test")
        self.assertEqual(ev["rule_description"], "policy default rule")
        self.assert_recorder_got_nothing()

    def test_not_tls_passes_under_allow(self):
        for data in NOT_TLS:
            with self.subTest(data=data):
                with self.tunnel("allowed.test:%d" % self.rec.port) as c:
                    self.echo_through(c, data)
                    self.echo_through(c, b"more")
        self.assertEqual(self.rec.received(0) + self.rec.received(1), b"".join(d + b"more" for d in NOT_TLS))
        self.assert_no_tunnel_denials()

    def test_off_rule_passes_anything(self):
        hello = harness.capture_client_hello("other.test")
        for data in NOT_TLS + [hello]:
            with self.subTest(data=data[:12]):
                with self.tunnel("off.test:%d" % self.rec.port) as c:
                    self.echo_through(c, data)
        self.assert_no_tunnel_denials()
        proc = self.s_client("off.test:%d" % self.tls.port, servername="tls.test")
        self.assert_s_client_ok(proc)

    def test_tls_looking_garbage_refused_under_allow(self):
        hello = harness.capture_client_hello("allowed.test")
        cases = [
            ("not a ClientHello", b"\x16\x03\x01\x00\x05hello"),
            ("record too large", b"\x16\x03\x03\xff\xff" + b"A" * 64),
            ("empty record", b"\x16\x03\x01\x00\x00"),
            ("hello length overruns", b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00"),
            ("a hello fragment, then an alert record", split_into_records(hello, 50)[:55] + b"\x15\x03\x03\x00\x02\x02\x28"),
        ]
        for name, data in cases:
            with self.subTest(case=name):
                with self.tunnel("allowed.test:%d" % self.rec.port) as c:
                    c.send(data)
                    self.assertTrue(c.closed_by_peer(timeout=5))
        evs = self.proxy.wait_events(len(cases), event="egress.deny", reason="not_tls", timeout=10)
        self.assertEqual(len(evs), len(cases), self.proxy.dump_events())
        for ev in evs:
            self.assertEqual((ev["host"], ev["rule_description"]), ("allowed.test", "allow rule"))
        self.assert_recorder_got_nothing()

    def test_hello_size_limit_is_16_kib(self):
        hello = harness.capture_client_hello("allowed.test")
        # 16 KiB exactly (the handshake message, header included), across records: checked and passed on whole.
        ok = records(hello[1:3], padded_message(hello, 16384), 4096)
        with self.tunnel("allowed.test:%d" % self.rec.port) as c:
            c.send(ok)
            self.assertEqual(c.recv_exact(len(ok), timeout=5), ok)
        self.assertTrue(self.rec.wait_all_closed())
        self.assertEqual(self.rec.received(), ok)
        self.assert_no_tunnel_denials()
        # One byte more: refused (not_tls, even under allow), and not a byte of it goes up.
        big = records(hello[1:3], padded_message(hello, 16385), 4096)
        with self.tunnel("allowed.test:%d" % self.rec.port) as c:
            c.send(big)
            self.assertTrue(c.closed_by_peer(timeout=5))
        self.assert_tunnel_refused("not_tls", "allowed.test")
        self.assertTrue(self.rec.wait_all_closed())
        self.assertEqual(self.rec.connections, 2)
        self.assertEqual(self.rec.chunks(1), [])

    def test_truncated_hello_then_eof_refused_under_allow(self):
        hello = harness.capture_client_hello("allowed.test")
        with self.tunnel("allowed.test:%d" % self.rec.port) as c:
            c.send(hello[:len(hello) // 2])
            c.sock.shutdown(socket.SHUT_WR)
            self.assertTrue(c.closed_by_peer(timeout=5))
        self.assert_tunnel_refused("not_tls", "allowed.test")
        self.assert_recorder_got_nothing()

    # -- CONNECT to an IP literal --------------------------------------------------------------------------
    def test_ip_literal_connect_needs_an_allowed_name_as_sni(self):
        proc = self.s_client("127.0.0.1:%d" % self.tls.port, servername="tls.test")
        self.assert_s_client_ok(proc)
        proc = self.s_client("127.0.0.1:%d" % self.tls.port, servername="allowed.test")
        self.assert_s_client_ok(proc)
        self.assert_no_tunnel_denials()
        refused = [
            ("other.test", "sni_mismatch"),      # allowed nowhere
            ("elsewhere.test", "sni_mismatch"),  # allowed, but on another port only
            ("evil.test", "sni_mismatch"),       # allowed by a rule, but deny-listed
            ("127.0.0.1", "sni_mismatch"),       # an address as SNI is not a name
            (None, "sni_missing"),               # the CIDR rule has the policy's tls: require
        ]
        for sni, reason in refused:
            with self.subTest(sni=sni):
                hello = harness.capture_client_hello(sni)
                with self.tunnel("127.0.0.1:%d" % self.rec.port) as c:
                    c.send(hello)
                    self.assertTrue(c.closed_by_peer(timeout=5))
                ev = self.assert_tunnel_refused(reason, "127.0.0.1", sni=sni)
                self.assertEqual(ev["rule_description"], "loopback by address (opens 127.0.0.1 through the guard; the policy's tls)")
        self.assert_recorder_got_nothing()

    # -- report mode ---------------------------------------------------------------------------------------
    def test_report_mode_logs_would_deny_and_tunnel_works(self):
        ctx = ssl.create_default_context(cafile=self.cert)
        ctx.check_hostname = False  # the certificate is for tls.test; the SNI says other.test
        with self.tunnel("tls.test:%d" % self.tls.port, source="127.0.0.4") as c:
            tls = ctx.wrap_socket(c.sock, server_hostname="other.test")
            tls.sendall(HTTP_GET)
            data = b""
            for _ in range(100):
                chunk = tls.recv(65536)
                if not chunk:
                    break
                data += chunk
                if data.endswith(b"hello over tls"):
                    break
            tls.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 200") and data.endswith(b"hello over tls"), data)
        ev = self.assert_tunnel_refused("sni_mismatch", "tls.test", sni="other.test", event="egress.would_deny",
                                        client="watch")
        self.assertEqual(ev["mode"], "report")
        self.assertEqual(self.proxy.events(event="egress.deny"), [])
        # Not TLS at all under require: reported, and relayed.
        with self.tunnel("tls.test:%d" % self.rec.port, source="127.0.0.4") as c:
            self.echo_through(c, NOT_TLS[0])
        self.assert_tunnel_refused("not_tls", "tls.test", event="egress.would_deny", client="watch")
        self.assertEqual(self.rec.received(), NOT_TLS[0])

    def test_report_mode_silent_client_keeps_tunnel_after_tls_peek(self):
        # Report mode lets traffic pass: a server-speaks-first protocol under a require rule, with a client
        # that only answers after tls_peek, is logged as would_deny (not_tls) and must keep working.
        proxy = self.start_proxy({"timeouts": {"tls_peek": "1s"}})
        with self.tunnel("tls.test:%d" % self.banner.port, source="127.0.0.4", proxy=proxy) as c:
            self.assertEqual(c.recv_exact(len(BANNER), timeout=5), BANNER)
            proxy.wait_event(event="egress.would_deny", reason="not_tls", timeout=5)
            self.assertTrue(c.still_open(wait=0.5), "the report-mode tunnel was closed at tls_peek")
            self.echo_through(c, b"SSH-2.0-e2e-client\r\n")
        self.assertEqual(self.banner.wait_bytes(20), b"SSH-2.0-e2e-client\r\n")
        self.assertEqual(proxy.events(event="egress.deny"), [])

    # -- server speaks first, and a silent client ------------------------------------------------------------
    def test_server_speaks_first_under_allow(self):
        with self.tunnel("allowed.test:%d" % self.banner.port) as c:
            # Nothing sent yet: the banner must come through anyway.
            self.assertEqual(c.recv_exact(len(BANNER), timeout=5), BANNER)
            self.assertEqual(self.banner.received(), b"")
            c.send(b"SSH-2.0-e2e-client\r\n")
            self.assertEqual(c.recv_exact(20, timeout=5), b"SSH-2.0-e2e-client\r\n")
        self.assertEqual(self.banner.wait_bytes(20), b"SSH-2.0-e2e-client\r\n")
        self.assert_no_tunnel_denials()

    def test_silent_client_closed_after_tls_peek_under_require(self):
        proxy = self.start_proxy({"timeouts": {"tls_peek": "1s"}})
        with self.tunnel("tls.test:%d" % self.rec.port, proxy=proxy) as c:
            t0 = time.monotonic()
            self.assertTrue(c.closed_by_peer(timeout=8), "the silent tunnel was not closed")
            elapsed = time.monotonic() - t0
        self.assertGreater(elapsed, 0.5)
        self.assert_tunnel_refused("not_tls", "tls.test", proxy=proxy)
        self.assert_recorder_got_nothing()

    def test_silent_client_waits_under_allow(self):
        proxy = self.start_proxy({"timeouts": {"tls_peek": "1s"}})
        with self.tunnel("allowed.test:%d" % self.rec.port, proxy=proxy) as c:
            self.assertTrue(c.still_open(wait=2.0), "tls_peek must not cut off a tunnel under allow")
            self.echo_through(c, b"late first bytes")
        self.assert_no_tunnel_denials(proxy)

    # -- curl --------------------------------------------------------------------------------------------------
    def test_curl_https_through_require(self):
        for name in ("tls.test", "allowed.test"):
            with self.subTest(name=name):
                r = harness.curl("--proxy", "http://127.0.0.1:%d" % self.proxy.port, "--cacert", self.cert,
                                 "https://%s:%d/" % (name, self.tls.port))
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout, b"hello over tls")
        self.proxy.wait_event(event="egress.allow", host="tls.test")
        self.assert_no_tunnel_denials()


if __name__ == "__main__":
    unittest.main()
