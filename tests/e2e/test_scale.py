"""Many tunnels at once: 1,000 concurrent CONNECT tunnels, each carrying bytes, while HTTP still works."""

import socket
import time
import unittest

import harness

harness.isolate_network()

TUNNELS = 1000
ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"


def recv_exact(s, n, deadline):
    data = b""
    for _ in range(10000):
        if len(data) >= n:
            break
        s.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = s.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


class ScaleTest(harness.ProxyTestCase):
    # Tunnels opened first wait idle while the others are set up: a generous idle timeout.
    egressd_settings = {"timeouts": {"idle": "60s"}}

    @classmethod
    def setUpClass(cls):
        # Both this process (1,000 client sockets plus the echo server's 1,000) and egressd (which inherits
        # the limit: 2,000 sockets) need more descriptors than a default soft limit of 1024.
        cls.nofile = harness.raise_nofile_limit(8192)
        super().setUpClass()

    def test_thousand_concurrent_tunnels(self):
        if self.nofile < 4 * TUNNELS + 200:
            self.skipTest("RLIMIT_NOFILE is %d; this test needs about %d" % (self.nofile, 4 * TUNNELS + 200))
        deadline = time.monotonic() + 90
        socks = []
        try:
            request = b"CONNECT allowed.test:%d HTTP/1.1\r\nHost: allowed.test:%d\r\n\r\n" % (
                self.echo.port, self.echo.port)
            for i in range(TUNNELS):
                s = socket.create_connection((self.proxy.host, self.proxy.port), timeout=10)
                socks.append(s)
                s.sendall(request)
            for i, s in enumerate(socks):
                got = recv_exact(s, len(ESTABLISHED), deadline)
                self.assertEqual(got, ESTABLISHED, "tunnel %d" % i)
            for i, s in enumerate(socks):
                s.sendall(b"tunnel %04d says hello\n" % i)
            for i, s in enumerate(socks):
                want = b"tunnel %04d says hello\n" % i
                self.assertEqual(recv_exact(s, len(want), deadline), want, "tunnel %d" % i)
            # All of them are open at once, end to end.
            self.assertEqual(self.echo.connections, TUNNELS)
            self.assertEqual(self.echo.active, TUNNELS)
            # The proxy still serves plain HTTP meanwhile.
            resp = self.get(self.up_url())
            self.assertEqual((resp.status, resp.body), (200, b"hello"))
            # And every tunnel still works after that.
            for i, s in enumerate(socks[::50]):
                s.sendall(b"again")
                self.assertEqual(recv_exact(s, 5, deadline), b"again")
        finally:
            for s in socks:
                s.close()
        closes = self.proxy.wait_events(TUNNELS, timeout=30, event="egress.close", method="CONNECT")
        self.assertEqual(len(closes), TUNNELS)
        self.assertTrue(all(e["cause"] == "client_closed" for e in closes),
                        {e["cause"] for e in closes})
        allows = self.proxy.events(event="egress.allow", method="CONNECT")
        self.assertEqual(len(allows), TUNNELS)
        self.assertLess(time.monotonic(), deadline)
        # The echo server saw every client EOF propagated through the tunnels.
        for _ in range(100):
            if self.echo.active == 0:
                break
            time.sleep(0.05)
        self.assertEqual(self.echo.active, 0)


if __name__ == "__main__":
    unittest.main()
