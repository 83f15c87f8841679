"""Limits: head size, header count, request line, header deadline (slowloris), connections per client."""

import socket
import threading
import time
import unittest

import harness

harness.isolate_network()


class LimitsTest(harness.ProxyTestCase):

    def send_and_read(self, data, timeout=5.0):
        with self.proxy.connect(timeout=timeout) as c:
            try:
                c.send(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the proxy may stop reading at the limit; its answer is still expected
            try:
                return c.read_response()
            except harness.ConnectionClosed:
                return None

    def test_oversized_head_431(self):
        head = "GET %s HTTP/1.1\r\nHost: allowed.test\r\n" % self.up_url()
        head += "".join("X-Big-%02d: %s\r\n" % (i, "a" * 4000) for i in range(20))  # ~80 KiB, 22 fields
        resp = self.send_and_read((head + "\r\n").encode())
        self.assertIsNotNone(resp, "closed without a 431")
        self.assertEqual(resp.status, 431, resp)
        self.assertEqual(resp.header("X-Egressd-Reason"), "head_too_large")
        self.assert_upstreams_untouched()

    def test_too_many_headers_431(self):
        head = "GET %s HTTP/1.1\r\nHost: allowed.test\r\n" % self.up_url()
        head += "".join("X-H-%03d: v\r\n" % i for i in range(150))
        resp = self.send_and_read((head + "\r\n").encode())
        self.assertIsNotNone(resp)
        self.assertEqual(resp.status, 431, resp)
        self.assert_upstreams_untouched()

    def test_head_just_under_limits_passes(self):
        head = "GET %s HTTP/1.1\r\nHost: allowed.test\r\n" % self.up_url()
        head += "".join("X-H-%03d: %s\r\n" % (i, "b" * 500) for i in range(90))  # ~46 KiB, 91 fields
        resp = self.send_and_read((head + "\r\n").encode())
        self.assertEqual((resp.status, resp.body), (200, b"hello"))

    def test_request_line_too_long_414(self):
        path = "/hello?" + "q" * 9000
        resp = self.send_and_read(("GET %s HTTP/1.1\r\nHost: allowed.test\r\n\r\n" % self.up_url(path=path)).encode())
        self.assertIsNotNone(resp)
        self.assertEqual(resp.status, 414, resp)
        self.assertEqual(resp.header("X-Egressd-Reason"), "request_line_too_long")
        self.assert_upstreams_untouched()

    def test_slowloris_is_cut_and_others_served(self):
        request = ("GET %s HTTP/1.1\r\nHost: allowed.test\r\nX-Slow: %s\r\n\r\n" % (self.up_url(), "s" * 40)).encode()
        result = {}

        def slow_client():
            s = socket.create_connection((self.proxy.host, self.proxy.port), timeout=10)
            started = time.monotonic()
            try:
                for i in range(len(request)):  # one byte every 300 ms: ~30 s if never cut
                    if time.monotonic() - started > 10:
                        break
                    try:
                        s.sendall(request[i:i + 1])
                    except OSError:
                        break
                    s.settimeout(0.3)
                    try:
                        data = s.recv(4096)
                        result["data"] = data
                        break
                    except socket.timeout:
                        continue
                    except OSError:
                        result["data"] = b""
                        break
                result["elapsed"] = time.monotonic() - started
            finally:
                s.close()

        t = threading.Thread(target=slow_client, daemon=True)
        t.start()
        statuses = []
        for _ in range(20):
            resp = self.get(self.up_url())
            statuses.append((resp.status, resp.body))
        t.join(timeout=15)
        self.assertFalse(t.is_alive(), "the slow client was never cut off")
        self.assertEqual(statuses, [(200, b"hello")] * 20)
        self.assertIn("data", result, "the slow client was never cut off: %r" % result)
        self.assertLess(result["elapsed"], 5.0, result)
        if result["data"]:
            self.assertTrue(result["data"].startswith(b"HTTP/1.1 408 "), result)
        self.assertEqual(len(self.upstream.requests), 20)
        ev = self.proxy.wait_event(lambda e: e["event"] == "egress.close" and e["cause"] == "header_timeout")
        self.assertEqual(ev["requests"], 0)

    def test_connections_per_client_503(self):
        proxy = self.start_proxy({"limits": {"max_connections_per_client": 2}})
        with proxy.connect() as a, proxy.connect() as b:
            # Two live sessions (each has finished a request and is idle, held open by keep-alive).
            for c in (a, b):
                self.assertEqual(self.get(self.up_url(), conn=c).status, 200)
            with proxy.connect() as third:
                third.send("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.up_url())
                try:
                    resp = third.read_response()
                except (harness.ConnectionClosed, OSError):
                    resp = None
                self.assertIsNotNone(resp, "the third connection was closed without a 503")
                self.assertEqual(resp.status, 503, resp)
            # The two admitted ones still work.
            self.assertEqual(self.get(self.up_url(), conn=a).status, 200)
        proxy.wait_event(event="egress.close", cause="over_limit")
        # Once they are gone, a new connection is admitted again.
        for _ in range(50):
            with proxy.connect() as d:
                d.send("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.up_url())
                resp = d.read_response()
            if resp.status == 200:
                break
            time.sleep(0.1)
        self.assertEqual(resp.status, 200)


    def test_upstream_response_timeout_504(self):
        proxy = self.start_proxy({"timeouts": {"upstream_response": "1s"}})
        with proxy.connect(timeout=10) as c:
            c.send("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.up_url(path="/slow?ms=3000"))
            resp = c.read_response(timeout=8)
            self.assertEqual(resp.status, 504, resp)
            self.assertEqual(resp.header("X-Egressd-Reason"), "upstream_timeout")
            self.assertTrue(c.closed_by_peer())
        ev = proxy.wait_event(event="egress.close", request_id=resp.header("X-Egressd-Request-Id"))
        self.assertEqual(ev["cause"], "upstream_timeout", ev)

    def test_connect_failure_502(self):
        # Bound but never listening: a connection to it is refused, and while the socket stays open no other
        # test running in parallel can take the port and accept.
        s = socket.socket()
        self.addCleanup(s.close)
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
        policy = self.policy_text().replace("ports: [%d, " % self.upstream.port,
                                            "ports: [%d, %d, " % (closed_port, self.upstream.port))
        self.assertIn(str(closed_port), policy)
        proxy = self.start_proxy(policy_text=policy)
        with proxy.connect() as c:
            c.send("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.up_url(port=closed_port))
            resp = c.read_response()
        self.assertEqual(resp.status, 502, resp)
        self.assertEqual(resp.header("X-Egressd-Reason"), "connect_failed")
        c, resp = self.connect_tunnel("allowed.test:%d" % closed_port, conn=proxy.connect())
        with c:
            self.assertEqual(resp.status, 502, resp)

    def test_idle_tunnel_is_closed(self):
        proxy = self.start_proxy({"timeouts": {"idle": "1s"}})
        c, resp = self.connect_tunnel("127.0.0.1:%d" % self.echo.port, conn=proxy.connect(timeout=10))
        with c:
            self.assertEqual(resp.status, 200)
            c.send(b"x")
            self.assertEqual(c.recv_exact(1), b"x")
            started = time.monotonic()
            self.assertTrue(c.closed_by_peer(timeout=6), "an idle tunnel outlived the idle timeout")
            self.assertLess(time.monotonic() - started, 4.0)
        ev = proxy.wait_event(event="egress.close", method="CONNECT")
        self.assertEqual(ev["cause"], "idle_timeout", ev)

    def test_keep_alive_idle_longer_than_header_timeout(self):
        # Between requests the idle timeout (5s) applies, not the header timeout (1s).
        with self.proxy.connect(timeout=10) as c:
            self.assertEqual(self.get(self.up_url(), conn=c).status, 200)
            time.sleep(1.6)
            self.assertEqual(self.get(self.up_url(), conn=c).status, 200)
        with self.proxy.connect(timeout=10) as c:
            c.send("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n" % self.echo.port)
            self.assertEqual(c.read_response(method="CONNECT").status, 200)
            time.sleep(1.6)  # a quiet tunnel is not a slow request head
            c.send(b"still here")
            self.assertEqual(c.recv_exact(10), b"still here")

    def test_silent_connection_is_closed(self):
        with self.proxy.connect(timeout=10) as c:
            started = time.monotonic()
            self.assertTrue(c.closed_by_peer(timeout=5), "a connection that never sends a byte was kept")
            self.assertLess(time.monotonic() - started, 4.0)

if __name__ == "__main__":
    unittest.main()
