"""SNI in every ClientHello of a tunnel: a TLS 1.3 client can make the server send a HelloRetryRequest (its first
ClientHello offers only a key share the server cannot use) and then name another server in its second
ClientHello. The upstream is a real TLS 1.3 server (Python's ssl, OpenSSL) that only takes P-256 and records
every name its SNI callback is asked for; the client sends hand-built ClientHellos on a raw socket. A changed
name must be refused (sni_mismatch) before the second ClientHello reaches the server, so the server's list of
names is the check that matters.
"""

import os
import shutil
import socket
import ssl
import threading
import time
import unittest

import harness

harness.isolate_network()

ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"
RETRY_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
CHANGE_CIPHER_SPEC = b"\x14\x03\x03\x00\x01\x01"
X25519, SECP256R1 = 0x001d, 0x0017
# A valid P-256 key share: the curve's generator point, uncompressed.
P256_GENERATOR = bytes.fromhex(
    "04" "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"
    "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5")
BANNER = b"SSH-2.0-e2e-upstream\r\n"


def u16(n):
    return n.to_bytes(2, "big")


def ext(kind, data):
    return u16(kind) + u16(len(data)) + data


class Hello:
    """One client's ClientHellos: the same random and session id in both, as RFC 8446 4.1.2 asks."""

    def __init__(self):
        self.random = os.urandom(32)
        self.session_id = os.urandom(32)

    def record(self, sni, group, key):
        exts = b""
        if sni is not None:
            name = sni.encode()
            exts += ext(0, u16(len(name) + 3) + b"\x00" + u16(len(name)) + name)
        exts += ext(10, u16(4) + u16(X25519) + u16(SECP256R1))  # supported_groups: both
        algorithms = b"".join(u16(a) for a in (0x0403, 0x0804, 0x0401, 0x0805, 0x0501, 0x0806, 0x0601))
        exts += ext(13, u16(len(algorithms)) + algorithms)
        exts += ext(43, b"\x02\x03\x04")  # supported_versions: TLS 1.3
        exts += ext(45, b"\x01\x01")  # psk_key_exchange_modes
        share = u16(group) + u16(len(key)) + key
        exts += ext(51, u16(len(share)) + share)  # key_share: one group only
        suites = u16(0x1301) + u16(0x1302) + u16(0x1303)
        body = (b"\x03\x03" + self.random + bytes([len(self.session_id)]) + self.session_id + u16(len(suites))
                + suites + b"\x01\x00" + u16(len(exts)) + exts)
        message = b"\x01" + len(body).to_bytes(3, "big") + body
        return b"\x16\x03\x01" + u16(len(message)) + message

    def first(self, sni):
        """A key share the server cannot use (x25519): it must answer with a HelloRetryRequest."""
        return self.record(sni, X25519, os.urandom(32))

    def second(self, sni):
        """After the retry: the compatibility ChangeCipherSpec, then a P-256 key share."""
        return CHANGE_CIPHER_SPEC + self.record(sni, SECP256R1, P256_GENERATOR)


class RetryServer:
    """TLS 1.3 only, P-256 only, on loopback; records every name its SNI callback sees, in order."""

    def __init__(self, cert, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        self.ctx.set_ecdh_curve("prime256v1")
        self.ctx.sni_callback = self._sni
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.names = []
        self.open = 0
        self.accepted = 0
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="retry-%d" % self.port, daemon=True)
        self._thread.start()

    def _sni(self, sslobj, name, ctx):
        with self.cond:
            self.names.append(name)
            self.cond.notify_all()

    def _accept(self):
        for _ in range(100000):
            if self._stop.is_set():
                return
            try:
                conn, _ = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            with self.cond:
                self.open += 1
                self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(10)
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                line = tls.recv(1024)
                if line:
                    tls.sendall(b"hello over tls 1.3: " + line)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()
            with self.cond:
                self.open -= 1
                self.cond.notify_all()

    def wait_idle(self, timeout=10.0):
        """True once every accepted connection has ended (its names are then all recorded)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            for _ in range(1000):
                remaining = deadline - time.monotonic()
                if self.open == 0 or remaining <= 0:
                    break
                self.cond.wait(timeout=min(remaining, 0.1))
            return self.open == 0

    def seen(self):
        with self.lock:
            return list(self.names)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.listener.close()


class SniRetryTest(harness.ProxyTestCase):
    needs_tls = True
    egressd_settings = {"timeouts": {"tls_peek": "3s"}}

    def setUp(self):
        if shutil.which("openssl") is None:
            self.skipTest("no openssl command")
        # Created before the proxy starts (policy_text names their ports).
        self.retry = RetryServer(self.cert, self.key)
        self.addCleanup(self.retry.stop)
        self.banner = harness.RecordingServer(banner=BANNER)  # speaks first, then echoes
        self.addCleanup(self.banner.stop)
        super().setUp()

    def policy_text(self):
        ports = harness._yaml_list([self.retry.port, self.tls.port, self.banner.port, self.echo.port])
        return f"""version: 1
mode: enforce
groups:
  retry:
    description: the retry server, the TLS upstream, the banner server and the echo server
    rules:
      - description: require rule
        ports: {ports}
        destinations: [tls.test]
        tls: require
      - description: allow rule
        ports: {ports}
        destinations: [allowed.test]
        tls: allow
      - description: off rule
        ports: {ports}
        destinations: [other.test]
        tls: off
      - description: loopback by address (opens 127.0.0.1 through the guard)
        ports: {ports}
        destinations: [127.0.0.1/32]
clients:
  tests:
    description: the test process
    sources: [127.0.0.1/32]
    groups: [retry]
  watch:
    description: the test process from 127.0.0.4, in report mode
    sources: [127.0.0.4/32]
    groups: [retry]
    mode: report
"""

    # -- helpers ---------------------------------------------------------------------------------------
    def tunnel(self, authority, source=None):
        c = self.proxy.connect(source=source)
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.send(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority)).encode())
        head = c.read_head()
        if head != ESTABLISHED:
            c.close()
            self.fail("CONNECT %s: %r" % (authority, head))
        return c

    def read_record(self, c, timeout=5):
        head = c.recv_exact(5, timeout=timeout)
        return head + c.recv_exact(int.from_bytes(head[3:5], "big"), timeout=timeout)

    def read_server_hello(self, c):
        """The server's first handshake record (ChangeCipherSpec records skipped): its random."""
        for _ in range(4):
            record = self.read_record(c)
            if record[0] == 0x16:
                self.assertEqual(record[5], 2, "not a ServerHello: %r" % record[:16])
                return record[11:43]
            self.assertEqual(record, CHANGE_CIPHER_SPEC, record)
        self.fail("no ServerHello")

    def retry_through(self, authority, first_sni, second_sni, source=None, bytewise=False):
        """A tunnel in which the server sends a HelloRetryRequest, then the second ClientHello is sent. Returns
        the tunnel, still open or not."""
        hello = Hello()
        c = self.tunnel(authority, source=source)
        c.send(hello.first(first_sni))
        self.assertEqual(self.read_server_hello(c), RETRY_RANDOM, "the server sent no HelloRetryRequest")
        second = hello.second(second_sni)
        if bytewise:
            for i in range(len(second)):
                c.sock.send(second[i:i + 1])
                time.sleep(0.001)
        else:
            c.send(second)
        return c

    def assert_refused(self, reason, host, sni, event="egress.deny", client="tests"):
        ev = self.proxy.wait_event(lambda e: e.get("sni") == sni, event=event, reason=reason, host=host,
                                   timeout=10)
        self.assertEqual(ev["method"], "CONNECT", ev)
        self.assertEqual(ev["client"], client, ev)
        if event == "egress.deny":
            self.assertEqual(ev["mode"], "enforce", ev)
            close = self.proxy.wait_event(event="egress.close", request_id=ev["request_id"], timeout=10)
            self.assertEqual(close["cause"], "denied", close)
        else:
            self.assertEqual(ev["mode"], "report", ev)
        return ev

    def assert_closed(self, c):
        """The proxy ends the tunnel; returns what the client had not read yet (the server's compatibility
        ChangeCipherSpec may follow its HelloRetryRequest)."""
        try:
            rest = c.read_until_close(timeout=5)
        except socket.timeout:
            self.fail("the tunnel stayed open")
        self.assertTrue(c.eof, "the tunnel stayed open")
        return rest

    def assert_no_denials(self):
        bad = self.proxy.events(lambda e: e.get("event") in ("egress.deny", "egress.would_deny"))
        self.assertEqual(bad, [])

    def assert_server_saw(self, names):
        self.assertTrue(self.retry.wait_idle(), "the upstream connection stayed open")
        self.assertEqual(self.retry.seen(), names)

    # -- a changed name after the retry ----------------------------------------------------------------------
    def test_changed_sni_after_retry_is_refused_under_require(self):
        with self.retry_through("tls.test:%d" % self.retry.port, "tls.test", "other.test") as c:
            self.assert_refused("sni_mismatch", "tls.test", "other.test")
            self.assertIn(self.assert_closed(c), (b"", CHANGE_CIPHER_SPEC))
        self.assert_server_saw(["tls.test"])

    def test_changed_sni_after_retry_is_refused_under_allow(self):
        with self.retry_through("allowed.test:%d" % self.retry.port, "allowed.test", "other.test") as c:
            self.assert_refused("sni_mismatch", "allowed.test", "other.test")
            self.assertIn(self.assert_closed(c), (b"", CHANGE_CIPHER_SPEC))
        self.assert_server_saw(["allowed.test"])

    def test_a_name_added_after_the_retry_is_a_change(self):
        # tls: allow lets a first ClientHello without a name through; a name in the second one is a change.
        with self.retry_through("allowed.test:%d" % self.retry.port, None, "allowed.test") as c:
            self.assert_refused("sni_mismatch", "allowed.test", "allowed.test")
            self.assertIn(self.assert_closed(c), (b"", CHANGE_CIPHER_SPEC))
        self.assert_server_saw([None])  # Python calls the SNI callback with None for a hello without a name

    def test_a_name_dropped_after_the_retry_is_a_change(self):
        with self.retry_through("allowed.test:%d" % self.retry.port, "allowed.test", None) as c:
            self.assert_refused("sni_mismatch", "allowed.test", None)
            self.assertIn(self.assert_closed(c), (b"", CHANGE_CIPHER_SPEC))
        self.assert_server_saw(["allowed.test"])

    def test_changed_sni_sent_byte_by_byte(self):
        with self.retry_through("tls.test:%d" % self.retry.port, "tls.test", "other.test", bytewise=True) as c:
            self.assert_refused("sni_mismatch", "tls.test", "other.test")
            self.assertIn(self.assert_closed(c), (b"", CHANGE_CIPHER_SPEC))
        self.assert_server_saw(["tls.test"])

    def test_changed_sni_sent_before_the_retry_arrives(self):
        # The client knows the server will ask again, so it sends both ClientHellos at once: the second must be
        # held until the server has answered the first.
        hello = Hello()
        with self.tunnel("tls.test:%d" % self.retry.port) as c:
            c.send(hello.first("tls.test") + hello.second("other.test"))
            self.assert_refused("sni_mismatch", "tls.test", "other.test")
            rest = self.assert_closed(c)
            self.assertEqual(rest[11:43], RETRY_RANDOM, "the HelloRetryRequest did not reach the client")
        self.assert_server_saw(["tls.test"])

    def test_partial_second_hello_is_refused_at_tls_peek_under_require(self):
        # The second ClientHello has the tls_peek deadline of the first: half of one is no ClientHello.
        hello = Hello()
        with self.tunnel("tls.test:%d" % self.retry.port) as c:
            c.send(hello.first("tls.test"))
            self.assertEqual(self.read_server_hello(c), RETRY_RANDOM)
            second = hello.second("tls.test")
            c.send(second[:len(second) // 2])
            self.assert_refused("not_tls", "tls.test", None)
            self.assertIn(self.assert_closed(c), (b"", CHANGE_CIPHER_SPEC))
        self.assert_server_saw(["tls.test"])

    # -- the same name after the retry -----------------------------------------------------------------------
    def test_same_sni_after_retry_proceeds_under_require(self):
        with self.retry_through("tls.test:%d" % self.retry.port, "tls.test", "tls.test") as c:
            self.assertNotEqual(self.read_server_hello(c), RETRY_RANDOM)
        self.assert_server_saw(["tls.test", "tls.test"])
        self.assert_no_denials()

    def test_same_sni_after_retry_proceeds_under_allow(self):
        with self.retry_through("allowed.test:%d" % self.retry.port, "allowed.test", "allowed.test") as c:
            self.assertNotEqual(self.read_server_hello(c), RETRY_RANDOM)
        self.assert_server_saw(["allowed.test", "allowed.test"])
        self.assert_no_denials()

    def test_openssl_client_retries_through_the_proxy(self):
        # Python's client (OpenSSL) offers an x25519 key share first, so this handshake has a real retry in it.
        ctx = ssl.create_default_context(cafile=self.cert)
        with self.tunnel("tls.test:%d" % self.retry.port) as c:
            with ctx.wrap_socket(c.sock, server_hostname="tls.test", do_handshake_on_connect=False) as tls:
                tls.settimeout(10)
                tls.do_handshake()
                self.assertEqual(tls.version(), "TLSv1.3")
                tls.sendall(b"ping\n")
                self.assertEqual(tls.recv(1024), b"hello over tls 1.3: ping\n")
        self.assert_server_saw(["tls.test", "tls.test"])
        self.assert_no_denials()

    # -- report mode -------------------------------------------------------------------------------------------
    def test_report_mode_logs_would_deny_and_lets_it_through(self):
        with self.retry_through("tls.test:%d" % self.retry.port, "tls.test", "other.test", source="127.0.0.4") as c:
            self.assertNotEqual(self.read_server_hello(c), RETRY_RANDOM)
            self.assert_refused("sni_mismatch", "tls.test", "other.test", event="egress.would_deny",
                                client="watch")
        self.assert_server_saw(["tls.test", "other.test"])
        self.assertEqual(self.proxy.events(event="egress.deny"), [])

    # -- no regression ---------------------------------------------------------------------------------------
    def test_handshake_without_retry_through_curl(self):
        proc = harness.curl("--cacert", self.cert, "--proxy", "http://127.0.0.1:%d" % self.proxy.port,
                            "--tlsv1.3", "https://tls.test:%d/" % self.tls.port)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stdout, b"hello over tls")
        self.assert_no_denials()

    def test_server_speaks_first_under_allow(self):
        with self.tunnel("allowed.test:%d" % self.banner.port) as c:
            self.assertEqual(c.recv_exact(len(BANNER), timeout=5), BANNER)
            c.send(b"SSH-2.0-client\r\n")
            self.assertEqual(c.recv_exact(16, timeout=5), b"SSH-2.0-client\r\n")
        self.assert_no_denials()

    def test_plain_bytes_are_spliced_under_off(self):
        data = os.urandom(256 * 1024)
        with self.tunnel("other.test:%d" % self.echo.port) as c:
            c.send(data)
            self.assertEqual(c.recv_exact(len(data), timeout=10), data)
        self.assert_no_denials()


if __name__ == "__main__":
    unittest.main()
