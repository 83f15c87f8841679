"""Accounting: every connection egressd accepts ends in exactly one egress.close, even one its client reset while it
still waited in the listen backlog (getpeername fails on it; accept(2) still gives its address)."""

import signal
import socket
import struct
import time
import unittest

import harness

harness.isolate_network()


class AcceptAccountingTest(harness.ProxyTestCase):

    def test_connections_reset_before_accept_are_logged(self):
        sources = []
        self.proxy.signal(signal.SIGSTOP)  # nothing is accepted while the clients come and go
        try:
            for i in range(6):
                s = socket.create_connection((self.proxy.host, self.proxy.port), timeout=5)
                sources.append("127.0.0.1:%d" % s.getsockname()[1])
                if i % 2 == 0:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
            time.sleep(0.2)
        finally:
            self.proxy.signal(signal.SIGCONT)
        closes = self.proxy.wait_events(len(sources), event="egress.close", timeout=5.0)
        self.assertEqual(sorted(e["source"] for e in closes), sorted(sources), self.proxy.dump_events())
        self.assertEqual({e["cause"] for e in closes}, {"client_closed"}, closes)
        resp = self.get(self.up_url())
        self.assertEqual((resp.status, resp.body), (200, b"hello"))


if __name__ == "__main__":
    unittest.main()
