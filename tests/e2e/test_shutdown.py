"""SIGTERM: in-flight work finishes within the grace period, idle connections close, the process exits 0."""

import signal
import time
import unittest

import harness

harness.isolate_network()


class ShutdownTest(harness.ProxyTestCase):

    def wait_for(self, cond, timeout=5.0):
        deadline = time.monotonic() + timeout
        for _ in range(10000):
            if cond() or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        return cond()

    def test_in_flight_request_completes(self):
        with self.proxy.connect(timeout=10) as c:
            c.send("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.up_url(path="/slow?ms=1500"))
            self.assertTrue(self.wait_for(lambda: len(self.upstream.requests) == 1), "the request never arrived")
            self.proxy.signal(signal.SIGTERM)
            # Draining: the listener is closed, so a new connection is refused (or closed unanswered).
            self.proxy.wait_event(event="egressd.stopping")
            time.sleep(0.1)
            try:
                with self.proxy.connect(timeout=2) as late:
                    late.send("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.up_url())
                    late_data = late.read_until_close(timeout=2)
            except (ConnectionRefusedError, ConnectionResetError):
                late_data = b""
            self.assertEqual(late_data, b"", "a connection accepted while draining was served")
            resp = c.read_response(timeout=10)
            self.assertEqual((resp.status, resp.body), (200, b"slow"))
            self.assertTrue(c.closed_by_peer(timeout=5), "the connection stayed open while draining")
        self.assertEqual(self.proxy.wait_exit(timeout=10), 0, "\n".join(self.proxy.stderr_lines))
        self.proxy.wait_event(event="egressd.stopping")
        stop = self.proxy.wait_event(event="egressd.stop")
        self.assertEqual(stop.get("cut_connections"), 0, stop)
        names = [e["event"] for e in self.proxy.events()]
        self.assertEqual(names[-1], "egressd.stop", names)

    def test_idle_connection_closed_at_once(self):
        proxy = self.start_proxy({"timeouts": {"shutdown_grace": "20s"}})
        with proxy.connect(timeout=10) as c:
            self.assertEqual(self.get(self.up_url(), conn=c).status, 200)
            started = time.monotonic()
            proxy.signal(signal.SIGTERM)
            self.assertTrue(c.closed_by_peer(timeout=5), "an idle keep-alive connection was kept while draining")
        self.assertEqual(proxy.wait_exit(timeout=10), 0)
        self.assertLess(time.monotonic() - started, 5.0, "egressd waited for an idle connection")
        stop = proxy.wait_event(event="egressd.stop")
        self.assertEqual(stop.get("cut_connections"), 0, stop)

    def test_tunnel_cut_after_grace(self):
        proxy = self.start_proxy({"timeouts": {"shutdown_grace": "1s"}})
        with proxy.connect(timeout=10) as c:
            c.send("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n" % self.echo.port)
            self.assertEqual(c.read_response(method="CONNECT").status, 200)
            c.send(b"x")
            self.assertEqual(c.recv_exact(1), b"x")
            started = time.monotonic()
            proxy.signal(signal.SIGTERM)
            self.assertTrue(c.closed_by_peer(timeout=8), "the tunnel outlived the grace period")
        self.assertEqual(proxy.wait_exit(timeout=10), 0)
        self.assertLess(time.monotonic() - started, 6.0)
        stop = proxy.wait_event(event="egressd.stop")
        self.assertEqual(stop.get("cut_connections"), 1, stop)
        ev = proxy.wait_event(event="egress.close", method="CONNECT")
        self.assertEqual(ev["cause"], "shutdown")


    def test_sigint_stops_too(self):
        self.assertEqual(self.get(self.up_url()).status, 200)
        self.proxy.signal(signal.SIGINT)
        self.assertEqual(self.proxy.wait_exit(timeout=10), 0)
        ev = self.proxy.wait_event(event="egressd.stopping")
        self.assertEqual(ev.get("signal"), "SIGINT")
        self.proxy.wait_event(event="egressd.stop")

if __name__ == "__main__":
    unittest.main()
