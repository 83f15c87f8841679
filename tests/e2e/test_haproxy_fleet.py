"""HAProxy (Debian haproxy) in front of three egressd replicas, started from the shipped deploy/haproxy/egressd.cfg
with only its addresses and ports replaced (see fleet.py): the clients' own source addresses reach the policy
through PROXY v2; a rolling restart (each replica drained with SIGTERM, waited for, started again) under a client
loop loses no request and no tunnel; a replica killed with kill -9 costs only the connections it held.

Clients are told apart by source address: 127.0.0.2 is the client `app`, 127.0.0.3 the client `other`; HAProxy
itself (127.0.0.1) is no client at all, so a decision made on HAProxy's address would be `unknown_client`.
"""

import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import fleet
import harness

harness.isolate_network()

APP = "127.0.0.2"
OTHER = "127.0.0.3"
DRAIN_DELAY = 5.0
TIMEOUTS = {"header": "2s", "connect": "2s", "idle": "30s", "drain_delay": "5s", "shutdown_grace": "15s"}


class Tunnel:
    """A CONNECT tunnel to the echo server through HAProxy, from `source`."""

    def __init__(self, fleet_, source, echo_port):
        self.conn = fleet_.connect(source, timeout=10)
        self.port = self.conn.sock.getsockname()[1]
        self.conn.send("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (echo_port, echo_port))
        resp = self.conn.read_response(method="CONNECT")
        if resp.status != 200:
            self.conn.close()
            raise AssertionError("CONNECT through HAProxy: %r" % resp)
        self.replica = None
        self.error = None
        self.sent = 0

    def echo(self, data):
        self.conn.send(data)
        got = self.conn.recv_exact(len(data))
        if got != data:
            raise AssertionError("the tunnel echoed %r for %r" % (got[:40], data[:40]))
        self.sent += len(data)

    def finish(self):
        """Half-closes; the echo server answers BYE and closes, which proves the whole path carried it."""
        self.conn.sock.shutdown(socket.SHUT_WR)
        rest = self.conn.read_until_close(timeout=10)
        if rest != b"BYE\n":
            raise AssertionError("after the half-close the tunnel gave %r, not BYE" % rest[:80])
        self.conn.close()

    def transfer(self, chunks, pause):
        """`chunks` echoes of 1 KiB, `pause` apart, then finish(); any failure is kept in self.error."""
        try:
            for n in range(chunks):
                self.echo(b"%04d" % n + b"t" * 1020)
                time.sleep(pause)
            self.finish()
        except Exception as e:  # kept for the test to report, with the tunnel's replica
            self.error = "%s: %s" % (type(e).__name__, e)

    def held_by_peer_close(self, timeout=5.0):
        """True when the tunnel is ended from the other side (EOF or reset) within timeout."""
        try:
            self.conn.send(b"anyone there?")
        except OSError:
            return True
        try:
            data = self.conn.read_until_close(timeout=timeout)
        except socket.timeout:
            return False
        except OSError:
            return True
        return self.conn.eof and b"anyone there?" not in data


class ClientLoop:
    """Plain HTTP requests and short CONNECT tunnels through HAProxy, one per connection, alternating, until
    stopped or `max_requests` or `max_seconds`; every failure is recorded with its time and kind."""

    def __init__(self, fleet_, source, upstream_port, echo_port, max_requests=5000, max_seconds=150.0):
        self.fleet = fleet_
        self.source = source
        self.upstream_port = upstream_port
        self.echo_port = echo_port
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.lock = threading.Lock()
        self.done = {"http": 0, "connect": 0}
        self.failures = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="client-loop", daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=30)

    def wait_finished(self, timeout):
        """Lets the loop run to its own end (max_requests or max_seconds)."""
        self._thread.join(timeout=timeout)

    def _http(self, n):
        with self.fleet.connect(self.source) as c:
            c.send("GET http://allowed.test:%d/hello?n=%d HTTP/1.1\r\nHost: allowed.test:%d\r\n\r\n" % (
                self.upstream_port, n, self.upstream_port))
            resp = c.read_response()
            if (resp.status, resp.body) != (200, b"hello"):
                raise AssertionError("GET through HAProxy: %r" % resp)

    def _connect(self, n):
        tunnel = Tunnel(self.fleet, self.source, self.echo_port)
        try:
            tunnel.echo(b"ping %d" % n)
            tunnel.finish()
        finally:
            tunnel.conn.close()

    def _run(self):
        started = time.monotonic()
        for n in range(self.max_requests):
            if self._stop.is_set() or time.monotonic() - started > self.max_seconds:
                return
            kind = "http" if n % 2 == 0 else "connect"
            try:
                (self._http if kind == "http" else self._connect)(n)
                with self.lock:
                    self.done[kind] += 1
            except Exception as e:  # every failure counts; the test reports them all
                with self.lock:
                    self.failures.append((round(time.monotonic() - started, 2), kind, "%s: %s" % (
                        type(e).__name__, e)))
            time.sleep(0.02)

    def counts(self):
        with self.lock:
            return dict(self.done), list(self.failures)


class ShippedConfigTest(unittest.TestCase):

    def test_loads_beside_debians_haproxy_cfg(self):
        args = [fleet.haproxy_binary(), "-c", "-q"]
        if os.path.exists("/etc/haproxy/haproxy.cfg"):
            args += ["-f", "/etc/haproxy/haproxy.cfg"]
        r = subprocess.run(args + ["-f", fleet.SHIPPED_CONFIG], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


class HaproxyFleetTest(unittest.TestCase):

    def setUp(self):
        fleet.haproxy_binary()
        tmp = tempfile.TemporaryDirectory(prefix="egressd-e2e-")
        self.addCleanup(tmp.cleanup)
        self.dns = harness.DnsServer(harness.default_records())
        self.addCleanup(self.dns.stop)
        self.upstream = harness.HttpUpstream()
        self.addCleanup(self.upstream.stop)
        self.echo = harness.EchoServer()
        self.addCleanup(self.echo.stop)
        self.fleet = fleet.Fleet(tmp.name, self.dns.port, self.policy_text(), TIMEOUTS)
        self.addCleanup(self._stop_fleet)
        self.fleet.start()

    def _stop_fleet(self):
        bad = self.fleet.stop()
        if bad:
            raise AssertionError("replicas exited badly: %r" % bad)

    def policy_text(self):
        ports = harness._yaml_list([self.upstream.port, self.echo.port])
        return f"""version: 1
mode: enforce
groups:
  web:
    description: the loopback upstreams
    rules:
      - description: allowed.test and loopback by address, on the upstream and echo ports
        ports: {ports}
        destinations: [allowed.test, 127.0.0.1/32]
clients:
  app:
    description: the application host behind HAProxy
    sources: [{APP}/32]
    groups: [web]
  other:
    description: another host behind HAProxy, allowed nothing
    sources: [{OTHER}/32]
    groups: []
"""

    def open_tunnels(self, wanted, limit=15):
        """Tunnels from APP until every replica index in `wanted` holds at least one (at most `limit`)."""
        tunnels = []
        held = set()
        for _ in range(limit):
            t = Tunnel(self.fleet, APP, self.echo.port)
            t.replica = self.fleet.replica_of(t.port, event="egress.allow")
            self.assertIsNotNone(t.replica, "no replica logged the tunnel from port %d" % t.port)
            t.echo(b"hello")
            tunnels.append(t)
            held.add(t.replica)
            if set(wanted) <= held:
                return tunnels
        self.fail("%d tunnels landed only on replicas %s, not on all of %s" % (limit, held, wanted))

    def log_context(self):
        return "\nHAProxy's log:\n%s" % self.fleet.haproxy.log_tail()

    # -- the client's own address ------------------------------------------------------------------------
    def test_clients_own_addresses_reach_the_policy(self):
        url = "http://allowed.test:%d/hello" % self.upstream.port
        proxy = "http://%s:%d" % (fleet.HAPROXY_ADDRESS, self.fleet.proxy_port)
        for _ in range(6):
            allowed = harness.curl("-i", "--interface", APP, "-x", proxy, url)
            self.assertEqual(allowed.returncode, 0, allowed.stderr)
            self.assertTrue(allowed.stdout.startswith(b"HTTP/1.1 200"), allowed.stdout[:300])
            self.assertTrue(allowed.stdout.endswith(b"\r\n\r\nhello"), allowed.stdout[-200:])
            denied = harness.curl("-i", "--interface", OTHER, "-x", proxy, url)
            self.assertEqual(denied.returncode, 0, denied.stderr)
            self.assertTrue(denied.stdout.startswith(b"HTTP/1.1 403"), denied.stdout[:300])
            self.assertIn(b"X-Egressd-Reason: no_matching_rule", denied.stdout)
        self.assertEqual(len(self.upstream.requests), 6)
        decisions = lambda e: e.get("event") in ("egress.allow", "egress.deny")
        for _ in range(100):
            if len(self.fleet.events(decisions)) >= 12:
                break
            time.sleep(0.05)
        seen = self.fleet.events(decisions)
        self.assertEqual(len(seen), 12, seen)
        for _, e in seen:
            source = e["source"].rpartition(":")[0]
            if e["event"] == "egress.allow":
                self.assertEqual((source, e["client"]), (APP, "app"), e)
            else:
                self.assertEqual((source, e["client"], e["reason"]), (OTHER, "other", "no_matching_rule"), e)
        # leastconn spreads short connections over every replica; each saw clients by their own address.
        self.assertEqual({i for i, _ in seen}, {0, 1, 2}, seen)
        closes = self.fleet.events(event="egress.close")
        self.assertTrue(closes)
        hidden = [e for _, e in self.fleet.events(lambda e: "source" in e)
                  if not e["source"].startswith((APP + ":", OTHER + ":"))]
        self.assertEqual(hidden, [], "events naming another source than the clients' own")
        # Every replica runs the same policy: the fleet check the README shows, on /status and /metrics.
        digests = {r.admin_json("/status")["policy"]["digest"] for r in self.fleet.replicas}
        self.assertEqual(len(digests), 1, digests)
        for r in self.fleet.replicas:
            _, samples = r.metrics()
            self.assertEqual(harness.metric_value(samples, "egressd_policy_info", digest=next(iter(digests))), 1)

    # -- rolling restart ---------------------------------------------------------------------------------
    def test_rolling_restart_loses_no_request_and_no_tunnel(self):
        loop = ClientLoop(self.fleet, APP, self.upstream.port, self.echo.port)
        loop.start()
        self.addCleanup(loop.stop)
        for victim in range(3):
            before, _ = loop.counts()
            # Long tunnels, the victim holding at least one, that move bytes from before the SIGTERM until past
            # the moment its listener closes (drain_delay), and end well within shutdown_grace.
            tunnels = self.open_tunnels([victim])
            transfers = [threading.Thread(target=t.transfer, args=(30, 0.25), daemon=True) for t in tunnels]
            for th in transfers:
                th.start()
            time.sleep(0.5)
            replica = self.fleet.replicas[victim]
            sigterm_at = time.monotonic()
            replica.signal(signal.SIGTERM)
            # HAProxy's checks see /readyz 503 and take the replica out before its listener closes.
            self.fleet.wait_server(victim, "DOWN", timeout=DRAIN_DELAY + 5)
            self.assertLess(time.monotonic() - sigterm_at, DRAIN_DELAY,
                            "HAProxy marked replica %d down only after its listener closed%s" % (
                                victim + 1, self.log_context()))
            self.assertEqual(replica.wait_exit(timeout=30), 0, "\n".join(replica.stderr_lines[-20:]))
            stop = replica.wait_event(event="egressd.stop")
            self.assertEqual(stop.get("cut_connections"), 0, stop)
            for th in transfers:
                th.join(timeout=20)
            for t in tunnels:
                self.assertIsNone(t.error, "tunnel on replica %d (victim %d): %s%s" % (
                    t.replica + 1, victim + 1, t.error, self.log_context()))
                self.assertEqual(t.sent, 5 + 30 * 1024)
            # Started again on the same addresses; back in rotation once ready.
            self.fleet.start_replica(victim)
            self.fleet.wait_server(victim, "UP", timeout=15)
            after, failures = loop.counts()
            self.assertEqual(failures, [], "requests failed during the restart of replica %d%s" % (
                victim + 1, self.log_context()))
            self.assertGreater(after["http"], before["http"], "the client loop made no progress")
            self.assertGreater(after["connect"], before["connect"], "the client loop made no progress")
        # The restarted replicas serve again (the last one as soon as the loop's next connections reach it).
        for i in range(3):
            latest = self.fleet.replicas[i]
            self.assertIsNotNone(latest.wait_event(event="egress.allow", timeout=10, fail=False),
                                 "restarted replica %d served nothing" % (i + 1))
        loop.stop()
        done, failures = loop.counts()
        self.assertEqual(failures, [], self.log_context())
        self.assertGreater(done["http"] + done["connect"], 100, done)

    # -- kill -9 -----------------------------------------------------------------------------------------
    def test_killed_replica_costs_only_its_own_connections(self):
        victim = 1
        tunnels = self.open_tunnels([0, 1, 2])
        survivors = [r for i, r in enumerate(self.fleet.replicas) if i != victim]
        allowed_before = sum(len(r.events(event="egress.allow")) for r in survivors)
        self.fleet.replicas[victim].proc.kill()
        self.fleet.replicas[victim].wait_exit(timeout=10)
        # Requests right after the kill: a connection HAProxy tries on the dead replica is refused and retried on
        # another (nothing had reached it), and observe layer4 takes the replica out at that first refusal.
        loop = ClientLoop(self.fleet, APP, self.upstream.port, self.echo.port, max_requests=60, max_seconds=30)
        loop.start()
        self.addCleanup(loop.stop)
        self.fleet.wait_server(victim, "DOWN", timeout=5)
        loop.wait_finished(timeout=40)
        done, failures = loop.counts()
        self.assertEqual(failures, [], self.log_context())
        self.assertEqual(done, {"http": 30, "connect": 30})
        for t in tunnels:
            if t.replica == victim:
                self.assertTrue(t.held_by_peer_close(), "a tunnel of the killed replica stayed open")
                t.conn.close()
            else:
                t.echo(b"still here")
                t.finish()
        # Every request after the kill was decided by a survivor (events are written in batches: wait for them).
        allowed_after = allowed_before
        for _ in range(100):
            allowed_after = sum(len(r.events(event="egress.allow")) for r in survivors)
            if allowed_after - allowed_before >= 60:
                break
            time.sleep(0.05)
        self.assertEqual(allowed_after - allowed_before, 60)

if __name__ == "__main__":
    unittest.main()
