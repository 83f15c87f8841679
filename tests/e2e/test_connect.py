"""CONNECT tunnels: TLS end to end, the exact 200 reply, refusals, half-close, IPv6."""

import os
import shutil
import socket
import ssl
import subprocess
import threading
import unittest

import harness

harness.isolate_network()

ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"


class ConnectTest(harness.ProxyTestCase):
    needs_tls = True

    def test_tls_through_tunnel_with_curl(self):
        r = harness.curl("--cacert", self.cert, "-x", "http://127.0.0.1:%d" % self.proxy.port,
                         "https://allowed.test:%d/" % self.tls.port)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"hello over tls")
        ev = self.proxy.wait_event(event="egress.allow", method="CONNECT")
        self.assertEqual(ev["host"], "allowed.test")
        self.assertEqual(ev["port"], self.tls.port)
        self.assertEqual(ev["address"], "127.0.0.1")
        self.assertEqual(ev["client"], "tests")
        close = self.proxy.wait_event(event="egress.close", request_id=ev["request_id"])
        self.assertGreater(close["bytes_to_client"], 100)
        self.assertGreater(close["bytes_from_client"], 100)
        self.assertEqual(self.tls.requests[0]["path"], "/")

    def test_tls_through_tunnel_with_openssl_s_client(self):
        if shutil.which("openssl") is None:
            self.skipTest("no openssl command")
        proc = subprocess.run(
            ["openssl", "s_client", "-connect", "allowed.test:%d" % self.tls.port,
             "-proxy", "127.0.0.1:%d" % self.proxy.port, "-servername", "allowed.test",
             "-CAfile", self.cert, "-verify_return_error", "-quiet"],
            input=b"GET / HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n",
            capture_output=True, timeout=20)
        self.assertTrue(proc.stdout.startswith(b"HTTP/1.1 200"), (proc.stdout, proc.stderr))
        self.assertTrue(proc.stdout.endswith(b"hello over tls"), proc.stdout)
        ev = self.proxy.wait_event(event="egress.allow", method="CONNECT")
        self.assertEqual(ev["host"], "allowed.test")

    def test_connect_reply_is_exact_and_tls_works(self):
        with self.proxy.connect() as c:
            c.send("CONNECT allowed.test:%d HTTP/1.1\r\nHost: allowed.test:%d\r\n\r\n" % (self.tls.port, self.tls.port))
            head = c.read_head()
            # RFC 9110 9.3.6: no Content-Length or Transfer-Encoding on a 2xx reply to CONNECT.
            self.assertEqual(head, ESTABLISHED)
            self.assertEqual(bytes(c.buf), b"")
            ctx = ssl.create_default_context(cafile=self.cert)
            tls = ctx.wrap_socket(c.sock, server_hostname="allowed.test")
            tls.sendall(b"GET / HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n")
            data = b""
            for _ in range(100):
                chunk = tls.recv(65536)
                if not chunk:
                    break
                data += chunk
                if data.endswith(b"hello over tls"):
                    break
            self.assertTrue(data.startswith(b"HTTP/1.1 200"), data)
            self.assertTrue(data.endswith(b"hello over tls"), data)
            tls.close()

    def test_client_bytes_right_behind_connect_are_forwarded(self):
        with self.proxy.connect() as c:
            c.send("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\nearly bytes" % self.echo.port)
            self.assertEqual(c.read_head(), ESTABLISHED)
            self.assertEqual(c.recv_exact(len(b"early bytes")), b"early bytes")

    def test_connect_denied(self):
        c, resp = self.connect_tunnel("denied.test:%d" % self.tls.port)
        with c:
            self.assert_refused(resp, 403, "no_matching_rule")
            self.assertTrue(c.closed_by_peer(), "a refused CONNECT ends the connection")
        c, resp = self.connect_tunnel("evil.test:%d" % self.echo.port)
        with c:
            self.assert_refused(resp, 403, "explicit_deny")
        c, resp = self.connect_tunnel("allowed.test:%d" % self.other.port)
        with c:
            self.assert_refused(resp, 403, "port_not_allowed")
        c, resp = self.connect_tunnel("loop2.guard.test:%d" % self.echo.port)
        with c:
            self.assert_refused(resp, 403, "address_guard")
        self.assert_upstreams_untouched()

    def test_half_close_propagates(self):
        c, resp = self.connect_tunnel("allowed.test:%d" % self.echo.port)
        with c:
            self.assertEqual(resp.status, 200)
            c.send(b"ping")
            c.sock.shutdown(socket.SHUT_WR)
            data = c.read_until_close(timeout=5)
            self.assertEqual(data, b"ping" + b"BYE\n")
            self.assertTrue(c.eof)
        self.assertEqual(self.echo.eofs, 1)
        ev = self.proxy.wait_event(event="egress.close", method="CONNECT")
        self.assertEqual(ev["cause"], "client_closed")
        self.assertEqual(ev["bytes_from_client"] >= 4, True, ev)

    def test_tunnel_carries_both_ways_many_times(self):
        c, resp = self.connect_tunnel("127.0.0.1:%d" % self.echo.port)
        with c:
            self.assertEqual(resp.status, 200)
            for i in range(20):
                msg = b"message %d " % i * 50
                c.send(msg)
                got = c.recv_exact(len(msg))
                self.assertEqual(got, msg)
        ev = self.proxy.wait_event(event="egress.allow", method="CONNECT")
        self.assertEqual(ev["host"], "127.0.0.1")
        self.assertEqual(ev["address"], "127.0.0.1")

    def test_ipv6_literal_tunnel(self):
        if self.echo6 is None:
            self.skipTest("::1 is not available on this machine")
        c, resp = self.connect_tunnel("[::1]:%d" % self.echo6.port)
        with c:
            self.assertEqual(resp.status, 200, resp)
            c.send(b"ping6")
            c.sock.shutdown(socket.SHUT_WR)
            self.assertEqual(c.read_until_close(timeout=5), b"ping6BYE\n")
        ev = self.proxy.wait_event(event="egress.allow", method="CONNECT")
        self.assertEqual(ev["address"], "::1")
        self.assertEqual(self.echo6.connections, 1)
        # The IPv6 CIDR opens ::1 only on the IPv6 echo port.
        c, resp = self.connect_tunnel("[::1]:%d" % self.echo.port)
        with c:
            self.assertEqual(resp.status, 403)
        self.assertEqual(self.echo.connections, 0)


    def test_malformed_connect_targets(self):
        cases = [
            "CONNECT allowed.test HTTP/1.1\r\nHost: allowed.test\r\n\r\n",  # no port
            "CONNECT allowed.test:0 HTTP/1.1\r\nHost: x\r\n\r\n",
            "CONNECT allowed.test:99999 HTTP/1.1\r\nHost: x\r\n\r\n",
            "CONNECT http://allowed.test:%d/ HTTP/1.1\r\nHost: x\r\n\r\n" % self.echo.port,
            "CONNECT user@allowed.test:%d HTTP/1.1\r\nHost: x\r\n\r\n" % self.echo.port,
            "CONNECT ::1:%d HTTP/1.1\r\nHost: x\r\n\r\n" % self.echo.port,  # IPv6 without brackets
            "CONNECT allowed.test:%d HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody" % self.echo.port,
        ]
        for raw in cases:
            with self.subTest(request=raw.split("\r\n")[0]):
                resp = self.proxy.send_raw(raw.encode())
                self.assertIsNotNone(resp)
                self.assertEqual(resp.status, 400, resp)
                self.assertEqual(resp.header("X-Egressd-Reason"), "bad_request")
        self.assert_upstreams_untouched()
        self.assertEqual(self.proxy.events(event="egress.allow"), [])

    def test_connect_close_event(self):
        c, resp = self.connect_tunnel("allowed.test:%d" % self.echo.port)
        with c:
            self.assertEqual(resp.status, 200)
            c.send(b"0123456789")
            self.assertEqual(c.recv_exact(10), b"0123456789")
        allow = self.proxy.wait_event(event="egress.allow", method="CONNECT")
        close = self.proxy.wait_event(event="egress.close", request_id=allow["request_id"])
        self.assertEqual(close["cause"], "client_closed")
        self.assertEqual(close["host"], "allowed.test")
        self.assertEqual(close["port"], self.echo.port)
        self.assertEqual(close["address"], "127.0.0.1")
        self.assertEqual(close["client"], "tests")
        # bytes count the tunnel's payload plus the CONNECT exchange itself
        self.assertGreaterEqual(close["bytes_from_client"], 10)
        self.assertGreaterEqual(close["bytes_to_client"], 10)
        c, resp = self.connect_tunnel("denied.test:%d" % self.echo.port)
        c.close()
        rid = resp.header("X-Egressd-Request-Id")
        close = self.proxy.wait_event(event="egress.close", request_id=rid)
        self.assertEqual(close["cause"], "denied")

    def test_tunnel_large_transfer_both_ways(self):
        payload = os.urandom(1 << 20) * 4  # 4 MiB, echoed back while it is still being sent
        c, resp = self.connect_tunnel("allowed.test:%d" % self.echo.port, timeout=20)
        with c:
            self.assertEqual(resp.status, 200)
            errors = []

            def sender():
                try:
                    c.sock.sendall(payload)
                    c.sock.shutdown(socket.SHUT_WR)
                except OSError as e:
                    errors.append(e)

            t = threading.Thread(target=sender, daemon=True)
            t.start()
            data = c.read_until_close(timeout=20)
            t.join(timeout=20)
            self.assertEqual(errors, [])
        self.assertEqual(len(data), len(payload) + 4)
        self.assertTrue(data[:-4] == payload, "the tunnel corrupted the stream")
        self.assertEqual(data[-4:], b"BYE\n")
        close = self.proxy.wait_event(event="egress.close", method="CONNECT")
        self.assertGreaterEqual(close["bytes_from_client"], len(payload))
        self.assertGreaterEqual(close["bytes_to_client"], len(payload) + 4)

    def test_upstream_closes_first(self):
        # Through a tunnel to the HTTP upstream: it answers /close and closes; the client gets all of it,
        # then EOF, while its own side was never closed.
        c, resp = self.connect_tunnel("allowed.test:%d" % self.upstream.port, timeout=10)
        with c:
            self.assertEqual(resp.status, 200)
            c.send("GET /close HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
            data = c.read_until_close(timeout=10)
            self.assertTrue(c.eof)
        self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data[:100])
        self.assertTrue(data.endswith(harness.CLOSE_BODY))
        ev = self.proxy.wait_event(event="egress.close", method="CONNECT")
        self.assertEqual(ev["cause"], "upstream_closed")

    def test_ipv6_listener(self):
        if self.echo6 is None:
            self.skipTest("::1 is not available on this machine")
        proxy = self.start_proxy({"listeners": ["[::1]:0"]})
        self.assertEqual(proxy.host, "::1")
        with proxy.connect() as c:  # the client is ::1, which the tests client's sources include
            c.send("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.up_url())
            resp = c.read_response()
        self.assertEqual((resp.status, resp.body), (200, b"hello"))
        ev = proxy.wait_event(event="egress.allow")
        self.assertEqual(ev["client"], "tests")
        self.assertTrue(ev["source"].startswith("[::1]:"), ev)

if __name__ == "__main__":
    unittest.main()
