"""A bounded soak of the real egressd: mixed traffic against misbehaving upstreams and DNS, reloads, then a ledger.

egressd (EGRESSD_BINARY) runs with two workers against loopback upstreams that behave well, reset, stall (accept and
never answer), black-hole (a full accept queue: SYNs are dropped) and serve bulk, and a DNS server that drops and
delays some answers. A bounded number of client threads drive a weighted mix (see SCENARIOS) while the policy is
rewritten and reloaded with SIGHUP every few seconds, alternating between two policies so that tunnels to
revocable.soak.test are revoked, and egressd is stopped (SIGSTOP) for a moment now and then while clients give up
on connections it has not accepted yet.

The load runs twice: a warm-up (its end, once quiet, is the baseline), then the main load. Afterwards, with the load
stopped and a settle: egressd is alive and answers; /status shows no connection left; its descriptors and RSS are
back within FD_SLACK and RSS_SLACK_KIB of the baseline; every connection the clients opened has exactly one
egress.close (egressd's events name a connection by its client address, so the clients keep a ledger of their local
addresses and the two multisets must be equal); no egressd.log_dropped, egressd.session_error or internal_error.

EGRESSD_SOAK_SECONDS: the whole load (warm-up included), 180 by default; EGRESSD_SOAK_SEED: the random seed
(printed in the summary, so a failing mix can be replayed); EGRESSD_SOAK_CLIENTS: client threads (10);
EGRESSD_SOAK_RSS_SLACK_MIB: the RSS bound (4; more for a sanitizer build, whose quarantine keeps freed memory).
Only the Python 3 standard library; every loop is bounded in count and in time; loopback only.
"""

import collections
import heapq
import json
import os
import random
import select
import signal
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e"))

import harness  # noqa: E402  (found through the path above)

harness.isolate_network()

WORKERS = 2
RELOAD_EVERY = 3.0     # seconds between policy reloads
PAUSE_EVERY = 5.0      # seconds between the moments egressd is stopped (SIGSTOP) for PAUSE_FOR
PAUSE_FOR = 0.3
# Once quiet, egressd's sockets are its listeners (one per worker, SO_REUSEPORT) and the admin listener, plus any
# UDP socket c-ares still holds for a worker (at most one per server: one here), so at most WORKERS more than the
# baseline; eventfds, timerfds and files do not depend on the load. Pipes are bounded on their own: each worker
# keeps at most pipe_pool::max_idle (16) idle pipes of two descriptors, whatever the load was.
FD_SLACK = WORKERS
PIPE_FDS_MAX = WORKERS * 16 * 2
# glibc's arenas (one per worker thread) keep freed memory, and how it fragments depends on the mix: the baseline
# is taken after a warm-up of the same mix, so what remains is growth (about 100 KiB in CI runs). 4 MiB is what a
# leak of 700 bytes per connection costs over the CI run's 6,000 connections, and a tenth of that in two hours.
# A sanitizer build holds freed memory in its quarantine: EGRESSD_SOAK_RSS_SLACK_MIB raises the bound there.
RSS_SLACK_KIB = int(os.environ.get("EGRESSD_SOAK_RSS_SLACK_MIB", "4")) * 1024
SETTLE_TIMEOUT = 30.0  # how long the proxy gets, once the load stopped, to close and log everything
MiB = 1024 * 1024


def soak_seconds():
    return max(30.0, float(os.environ.get("EGRESSD_SOAK_SECONDS", "180")))


# ---------------------------------------------------------------------------------------------------------
# Upstreams and DNS


class SoakHandler(harness.UpstreamHandler):
    """/hello, /bulk/N (N bytes, Content-Length), /chunked/N (N bytes in 64 KiB chunks), POST /upload (the body's
    length back). Keeps no record of requests, unlike UpstreamHandler, so that hours of traffic cost no memory."""

    FILL = b"s" * 65536

    def _route(self):
        parts = self.path.split("/")
        if self.command == "POST" and self.path == "/upload":
            remaining = int(self.headers.get("Content-Length") or 0)
            for _ in range(100000):
                if remaining <= 0:
                    break
                data = self.rfile.read(min(remaining, 65536))
                if not data:
                    self.close_connection = True
                    return
                remaining -= len(data)
            self._send(200, str(int(self.headers.get("Content-Length") or 0)).encode())
        elif self.path == "/hello":
            self._send(200, b"hello")
        elif len(parts) == 3 and parts[1] in ("bulk", "chunked") and parts[2].isdigit():
            self._bulk(int(parts[2]), parts[1] == "chunked")
        elif self.path == "/":
            self._send(200, b"hello over tls")
        else:
            self._send(404, b"not found")

    def _bulk(self, size, chunked):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding" if chunked else "Content-Length", "chunked" if chunked else str(size))
        self.end_headers()
        left = size
        for _ in range(size // len(self.FILL) + 2):
            if left <= 0:
                break
            piece = self.FILL[:min(left, len(self.FILL))]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            left -= len(piece)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def do_GET(self):
        self._route()

    def do_POST(self):
        self._route()


class SoakUpstream:
    """An HTTP/1.1 upstream (TLS with ssl_context) on loopback, serving SoakHandler."""

    def __init__(self, ssl_context=None):
        self.server = harness._QuietServer(("127.0.0.1", 0), SoakHandler, harness._Recorder(),
                                           ssl_context=ssl_context)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="soak-upstream-%d" % self.port, daemon=True)
        self._thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


class BadUpstream:
    """An upstream that misbehaves on purpose, one selector thread for all its connections.

    reset: reads what the proxy sends, then resets the connection (SO_LINGER 0).
    stall: accepts and never answers nor reads; the socket is dropped once the proxy closes it or after 30 s.
    blackhole: listens with a backlog of zero (room for one) that a connection of its own fills, and never accepts,
    so the kernel drops every further SYN and the proxy's connect times out.
    """

    HOLD = 30.0

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._held = {}  # socket -> time accepted
        self._stop = threading.Event()
        self._filler = None
        if behaviour == "blackhole":
            self.listener.listen(0)
            self._filler = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            self._thread = None
            return
        self.listener.listen(256)
        self.listener.setblocking(False)
        self._thread = threading.Thread(target=self._serve, name="%s-%d" % (behaviour, self.port), daemon=True)
        self._thread.start()

    def _serve(self):
        sel = select.epoll()
        sel.register(self.listener.fileno(), select.EPOLLIN)
        by_fd = {}
        last_sweep = time.monotonic()
        while not self._stop.is_set():
            for fd, mask in sel.poll(0.05):
                if fd == self.listener.fileno():
                    for _ in range(256):
                        try:
                            c, _ = self.listener.accept()
                        except OSError:
                            break
                        c.setblocking(False)
                        by_fd[c.fileno()] = c
                        self._held[c] = time.monotonic()
                        sel.register(c.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
                    continue
                c = by_fd.get(fd)
                if c is None:
                    continue
                if self.behaviour == "reset":
                    try:
                        c.recv(65536)
                    except OSError:
                        pass
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self._drop(sel, by_fd, c)
                elif mask & (select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR):
                    self._drop(sel, by_fd, c)
                else:
                    # stall reads nothing: from now on only the proxy's close matters.
                    sel.modify(fd, select.EPOLLRDHUP)
            now = time.monotonic()
            if now - last_sweep > 1.0:
                last_sweep = now
                for c, at in list(self._held.items()):
                    if now - at > self.HOLD:
                        self._drop(sel, by_fd, c)
        sel.close()

    def _drop(self, sel, by_fd, c):
        try:
            sel.unregister(c.fileno())
        except (OSError, ValueError):
            pass
        by_fd.pop(c.fileno(), None)
        self._held.pop(c, None)
        c.close()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for c in list(self._held):
            c.close()
        if self._filler is not None:
            self._filler.close()
        self.listener.close()


class FlakyDns(harness.DnsServer):
    """harness.DnsServer, except that names under flaky.soak.test are answered late (50 ms to 1.5 s, beyond the
    proxy's timeout of 400 ms now and then: late answers after c-ares gave up) or not at all, at random."""

    def __init__(self, records, seed):
        self.rng = random.Random(seed)
        self.pending = []  # heap of (due, sequence, reply, peer)
        self.sequence = 0
        self.dropped = 0
        self.delayed = 0
        super().__init__(records)

    def _serve(self):
        for _ in range(10 ** 9):
            if self._stop.is_set():
                return
            now = time.monotonic()
            for _ in range(1000):
                if not self.pending or self.pending[0][0] > now:
                    break
                _, _, reply, peer = heapq.heappop(self.pending)
                self._send(reply, peer)
            wait = 0.05 if not self.pending else max(0.001, min(0.05, self.pending[0][0] - now))
            self.sock.settimeout(wait)
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                reply = self._answer(data)
                qname = self._parse_question(data)[0].lower().rstrip(".")
            except Exception:  # a malformed query is dropped, never fatal
                continue
            with self.lock:
                if len(self.qnames) > 1000:
                    del self.qnames[:500]  # the base class keeps every name; hours of queries would pile up
            if reply is None:
                continue
            if qname.endswith("flaky.soak.test"):
                roll = self.rng.random()
                if roll < 0.15:
                    self.dropped += 1
                    continue
                if roll < 0.45:
                    self.delayed += 1
                    self.sequence += 1
                    heapq.heappush(self.pending, (now + self.rng.uniform(0.05, 1.5), self.sequence, reply, peer))
                    continue
            self._send(reply, peer)

    def _send(self, reply, peer):
        try:
            self.sock.sendto(reply, peer)
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------------------
# egressd, its events, and the ledger of connections


class Ledger:
    """The client addresses of every connection the clients opened to the proxy, and those egress.close named.

    egressd's events carry no connection id: egress.close's `source` (the client's ip:port) names the connection,
    and a port can come back in a long run, so both sides are multisets that must end up equal."""

    def __init__(self):
        self.lock = threading.Lock()
        self.opened = collections.Counter()
        self.closed = collections.Counter()
        self.opened_total = 0
        self.closed_total = 0
        self.origin = {}  # source -> the scenario that opened it last, to say where an unmatched one came from

    def open(self, source, origin):
        with self.lock:
            self.opened[source] += 1
            self.opened_total += 1
            self.origin[source] = origin

    def close(self, source):
        with self.lock:
            self.closed[source] += 1
            self.closed_total += 1

    def difference(self):
        """(opened but not closed as often, closed more often than opened): {source: count}."""
        with self.lock:
            return dict(self.opened - self.closed), dict(self.closed - self.opened)

    def origins(self, sources):
        """How many of `sources` each scenario opened."""
        with self.lock:
            return dict(collections.Counter(self.origin.get(s, "?") for s in sources))


class EventTally:
    """Counts egressd's events as they arrive instead of keeping them (hours of traffic are millions of lines)."""

    def __init__(self, ledger):
        self.ledger = ledger
        self.lock = threading.Lock()
        self.names = collections.Counter()
        self.causes = collections.Counter()
        self.reasons = collections.Counter()
        self.alarms = []  # the first few log_dropped, session_error, internal_error lines

    def __call__(self, event):
        name = event.get("event", "")
        with self.lock:
            self.names[name] += 1
            if name == "egress.close":
                self.causes[event.get("cause")] += 1
            elif name in ("egress.allow", "egress.deny", "egress.error"):
                self.reasons[event.get("reason")] += 1
            alarming = name in ("egressd.log_dropped", "egressd.session_error") or \
                (name == "egress.close" and event.get("cause") == "internal_error")
            if alarming and len(self.alarms) < 20:
                self.alarms.append(event)
        if name == "egress.close":
            self.ledger.close(event.get("source"))


class SoakEgressd(harness.Egressd):
    """harness.Egressd that hands every event to `tally` and keeps only the operational ones (egressd.*) and the
    last few thousand lines, so that its memory stays flat however long the soak runs."""

    KEEP_LINES = 4000

    def __init__(self, *args, tally, **kwargs):
        self.tally = tally
        super().__init__(*args, **kwargs)

    def _read_stdout(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if isinstance(event, dict):
                self.tally(event)
            with self.cond:
                self.raw_lines.append(line)
                if len(self.raw_lines) > self.KEEP_LINES:
                    del self.raw_lines[:self.KEEP_LINES // 2]
                if isinstance(event, dict) and not str(event.get("event", "")).startswith("egress."):
                    self._events.append(event)
                self.cond.notify_all()

    def descriptors(self):
        """{"socket": n, "pipe": n, "other": n} from /proc/PID/fd."""
        kinds = collections.Counter()
        base = "/proc/%d/fd" % self.proc.pid
        for name in os.listdir(base):
            try:
                target = os.readlink(os.path.join(base, name))
            except OSError:
                continue  # closed between the listing and the look
            kinds[target.split(":", 1)[0] if target.startswith(("socket:", "pipe:")) else "other"] += 1
        return {k: kinds.get(k, 0) for k in ("socket", "pipe", "other")}

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS for egressd")


# ---------------------------------------------------------------------------------------------------------
# The traffic


class Surprise(Exception):
    """An outcome the scenario does not allow."""


def expect(condition, what):
    if not condition:
        raise Surprise(what)


class Soak:
    """The environment (upstreams, DNS, egressd) and the scenarios the client threads run."""

    def __init__(self, tmp, seed, cert, key):
        self.seed = seed
        self.stopping = threading.Event()
        self.ledger = Ledger()
        self.tally = EventTally(self.ledger)
        self.stats_lock = threading.Lock()
        self.outcomes = collections.Counter()   # (scenario, outcome)
        self.surprises = []                     # the first few unexpected outcomes
        self.surprise_total = 0
        self.reloads = collections.Counter()
        self.scenario = threading.local()       # .name: what the calling thread runs, for the ledger
        self.ops = []  # everything to stop, last first
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(cert, key)
        self.client_tls = ssl.create_default_context(cafile=cert)
        self.web = self._keep(SoakUpstream())
        self.tls = self._keep(SoakUpstream(ssl_context=server_ctx))
        self.echo = self._keep(harness.EchoServer())
        self.revocable = self._keep(harness.EchoServer())
        self.reset = self._keep(BadUpstream("reset"))
        self.stall = self._keep(BadUpstream("stall"))
        self.blackhole = self._keep(BadUpstream("blackhole"))
        for _ in range(50):
            sentinel_port = harness.free_port("127.0.0.2")
            try:
                self.sentinel = self._keep(harness.Sentinel([sentinel_port]))
                break
            except OSError:
                continue
        else:
            raise AssertionError("no free port on 127.0.0.2 for the sentinel")
        self.sentinel_port = sentinel_port
        lo = {"A": ["127.0.0.1"], "ttl": 3600}
        records = {name: lo for name in ("web.soak.test", "tls.test", "echo.soak.test", "revocable.soak.test",
                                         "reset.soak.test", "stall.soak.test", "blackhole.soak.test",
                                         "denied.soak.test", "evil.soak.test")}
        records["flaky.soak.test"] = {"A": ["127.0.0.1"], "ttl": 0}
        records["guarded.soak.test"] = {"A": ["127.0.0.2"], "ttl": 3600}
        self.dns = self._keep(FlakyDns(records, seed))
        self.policies = [self.policy_text(revocable=True), self.policy_text(revocable=False)]
        settings = {
            "workers": WORKERS,
            "dns": {"timeout": "400ms", "tries": 2},
            "timeouts": {"header": "3s", "connect": "1s", "idle": "5s", "upstream_response": "3s",
                         "shutdown_grace": "3s"},
        }
        self.proxy = SoakEgressd(tmp, self.policies[0], self.dns.port, settings, tally=self.tally)
        self.ops.append(self.proxy.stop)

    def _keep(self, thing):
        self.ops.append(thing.stop)
        return thing

    def stop(self):
        rc = None
        for op in reversed(self.ops):
            result = op()
            if op == self.proxy.stop:
                rc = result
        return rc

    def policy_text(self, revocable):
        ports = [self.web.port, self.tls.port, self.echo.port, self.revocable.port, self.reset.port, self.stall.port,
                 self.blackhole.port]
        names = ["web.soak.test", "flaky.soak.test", "echo.soak.test", "reset.soak.test", "stall.soak.test",
                 "blackhole.soak.test", "evil.soak.test"]
        revocable_rule = f"""
      - description: revocable tunnels (in one of the two policies only)
        ports: [{self.revocable.port}]
        destinations: [revocable.soak.test]""" if revocable else ""
        return f"""version: 1
mode: enforce
groups:
  soak:
    description: the soak's upstreams
    rules:
      - description: plain upstreams by name
        ports: {harness._yaml_list(ports)}
        destinations: {harness._yaml_list(names)}
      - description: the TLS upstream, TLS required
        ports: [{self.tls.port}]
        destinations: [tls.test]
        tls: require
      - description: a name whose address is guarded (127.0.0.2 is not opened)
        ports: [{self.sentinel_port}]
        destinations: [guarded.soak.test]
      - description: loopback by address (opens 127.0.0.1 through the address guard)
        ports: {harness._yaml_list(ports)}
        destinations: [127.0.0.1/32]{revocable_rule}
clients:
  soak:
    description: the soak's clients
    sources: [127.0.0.1/32]
    groups: [soak]
deny:
  - description: a name the soak group also allows
    destinations: [evil.soak.test]
"""

    # -- bookkeeping ------------------------------------------------------------------------------------
    def connect(self, timeout=10.0):
        c = self.proxy.connect(timeout=timeout)
        host, port = c.sock.getsockname()[:2]
        self.ledger.open("%s:%d" % (host, port), getattr(self.scenario, "name", "probe"))
        return c

    def record(self, scenario, outcome):
        with self.stats_lock:
            self.outcomes[(scenario, outcome)] += 1

    def surprise(self, scenario, what):
        with self.stats_lock:
            self.surprise_total += 1
            if len(self.surprises) < 20:
                self.surprises.append("%s: %s" % (scenario, what))

    # -- scenarios: each returns an outcome word, or raises Surprise -----------------------------------------
    def request(self, c, method, url, body=b"", extra=()):
        host = url.split("/")[2]
        lines = ["%s %s HTTP/1.1" % (method, url), "Host: %s" % host] + list(extra)
        if body or method == "POST":
            lines.append("Content-Length: %d" % len(body))
        c.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        return c.read_response(method=method, timeout=15.0)

    def url(self, host, port, path="/hello"):
        return "http://%s:%d%s" % (host, port, path)

    def keep_alive(self, rng):
        with self.connect() as c:
            for _ in range(rng.randint(2, 10)):
                r = self.request(c, "GET", self.url("web.soak.test", self.web.port))
                expect((r.status, r.body) == (200, b"hello"), r)
        return "ok"

    def new_connection(self, rng):
        with self.connect() as c:
            r = self.request(c, "GET", self.url("web.soak.test", self.web.port), extra=["Connection: close"])
            expect((r.status, r.body) == (200, b"hello"), r)
            expect(c.closed_by_peer(timeout=5.0), "kept open after Connection: close")
        return "ok"

    def tunnel(self, c, host, port):
        c.send("CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host, port, host, port))
        return c.read_response(method="CONNECT", timeout=10.0)

    def tunnel_echo(self, rng):
        with self.connect() as c:
            r = self.tunnel(c, "echo.soak.test", self.echo.port)
            expect(r.status == 200, r)
            for _ in range(rng.randint(1, 5)):
                # Printable first byte: bytes that start like a TLS record (0x16) are refused as not_tls.
                payload = bytes([rng.randrange(0x20, 0x7f)]) + rng.randbytes(rng.randint(0, 65535))
                c.send(payload)
                expect(c.recv_exact(len(payload), timeout=10.0) == payload, "echo differs")
            c.sock.shutdown(socket.SHUT_WR)
            expect(c.recv_exact(4, timeout=10.0) == b"BYE\n", "half-close not passed on")
        return "ok"

    def tunnel_tls(self, rng):
        with self.connect() as c:
            r = self.tunnel(c, "tls.test", self.tls.port)
            expect(r.status == 200 and not c.buf, r)
            tls = self.client_tls.wrap_socket(c.sock, server_hostname="tls.test")
            try:
                tls.settimeout(10.0)
                tls.sendall(b"GET / HTTP/1.1\r\nHost: tls.test\r\nConnection: close\r\n\r\n")
                data = b""
                for _ in range(1000):
                    chunk = tls.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                expect(data.startswith(b"HTTP/1.1 200") and data.endswith(b"hello over tls"), data[:200])
            except ssl.SSLError as e:
                raise Surprise("TLS through the tunnel: %s" % e)
            finally:
                tls.close()
        return "ok"

    def bulk_get(self, rng):
        size = rng.randint(1, 4) * MiB + rng.randint(0, 65535)
        kind = rng.choice(("bulk", "chunked"))
        with self.connect(timeout=20.0) as c:
            r = self.request(c, "GET", self.url("web.soak.test", self.web.port, "/%s/%d" % (kind, size)))
            expect(r.status == 200 and len(r.body) == size, "%s: %d of %d bytes" % (r.status, len(r.body), size))
        return kind

    def bulk_upload(self, rng):
        size = rng.randint(256 * 1024, 2 * MiB)
        with self.connect(timeout=20.0) as c:
            r = self.request(c, "POST", self.url("web.soak.test", self.web.port, "/upload"), body=b"u" * size)
            expect((r.status, r.body) == (200, str(size).encode()), r)
        return "ok"

    def tunnel_bulk(self, rng):
        """Sends a few MiB through an echo tunnel while reading them back (a selector loop, so neither side's
        buffers fill while the other waits)."""
        size = rng.randint(1, 4) * MiB
        payload = b"t" * 65536
        sent = received = 0
        with self.connect(timeout=20.0) as c:
            r = self.tunnel(c, "echo.soak.test", self.echo.port)
            expect(r.status == 200, r)
            c.sock.setblocking(False)
            deadline = time.monotonic() + 60.0
            for _ in range(1000000):
                if received >= size or time.monotonic() > deadline:
                    break
                want_write = sent < size
                readable, writable, _ = select.select([c.sock], [c.sock] if want_write else [], [], 1.0)
                if writable:
                    try:
                        sent += c.sock.send(payload[:min(len(payload), size - sent)])
                    except BlockingIOError:
                        pass
                if readable:
                    data = c.sock.recv(262144)
                    expect(data, "tunnel closed after %d of %d bytes" % (received, size))
                    received += len(data)
            expect(received == size, "%d of %d bytes came back" % (received, size))
        return "ok"

    def denied(self, rng):
        with self.connect() as c:
            if rng.random() < 0.5:
                r = self.request(c, "GET", self.url(rng.choice(("denied.soak.test", "evil.soak.test")), self.web.port))
                expect(r.status == 403, r)
                r = self.request(c, "GET", self.url("web.soak.test", self.web.port))
                expect(r.status == 200, "a denial without a body keeps the connection: %r" % r)
                return "http"
            host, port = rng.choice((("denied.soak.test", self.echo.port), ("evil.soak.test", self.echo.port),
                                     ("guarded.soak.test", self.sentinel_port)))
            r = self.tunnel(c, host, port)
            expect(r.status == 403, r)
        return "connect"

    def slow_reader(self, rng):
        """Asks for 8 MiB and reads 16 KiB every 20 ms for up to three seconds, then goes away."""
        with self.connect() as c:
            c.send("GET %s HTTP/1.1\r\nHost: web.soak.test\r\n\r\n" %
                   self.url("web.soak.test", self.web.port, "/bulk/%d" % (8 * MiB)))
            c.sock.settimeout(5.0)
            got = 0
            until = time.monotonic() + rng.uniform(1.0, 3.0)
            for _ in range(1000):
                if time.monotonic() > until or self.stopping.is_set():
                    break
                data = c.sock.recv(16384)
                expect(data, "closed after %d bytes" % got)
                got += len(data)
                time.sleep(0.02)
        return "ok"

    def slowloris(self, rng):
        """A head a byte a second: egressd answers 408 after timeouts.header (3 s) and closes."""
        head = b"GET http://web.soak.test:%d/hello HTTP/1.1\r\nHost: web.soak.test\r\n\r\n" % self.web.port
        with self.connect() as c:
            for i in range(20):
                try:
                    c.send(head[i:i + 1])
                except OSError:
                    break
                ready, _, _ = select.select([c.sock], [], [], 1.0)
                if ready:
                    break
            try:
                r = c.read_response(timeout=10.0)
            except harness.ConnectionClosed:
                return "closed"
            expect(r.status == 408, r)
        return "408"

    def vanish(self, rng):
        """Goes away in the middle of a request: in the head, in a body, or in a tunnel; with a FIN or a reset."""
        c = self.connect()
        try:
            where = rng.choice(("head", "body", "tunnel", "waiting"))
            if where == "head":
                c.send("GET http://web.soak.test:%d/hel" % self.web.port)
            elif where == "body":
                c.send("POST %s HTTP/1.1\r\nHost: web.soak.test\r\nContent-Length: 100000\r\n\r\n%s" %
                       (self.url("web.soak.test", self.web.port, "/upload"), "b" * rng.randint(0, 5000)))
            elif where == "tunnel":
                r = self.tunnel(c, "echo.soak.test", self.echo.port)
                expect(r.status == 200, r)
                c.send(b"x" * rng.randint(1, 100000))
            else:  # waiting for an upstream that never answers
                c.send("GET %s HTTP/1.1\r\nHost: stall.soak.test\r\n\r\n" %
                       self.url("stall.soak.test", self.stall.port))
            time.sleep(rng.uniform(0.0, 0.3))
            if rng.random() < 0.5:
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return where
        finally:
            c.close()

    def bad_upstream(self, rng):
        kind = rng.choice(("reset", "stall", "blackhole", "stall_tunnel", "reset_tunnel"))
        with self.connect() as c:
            if kind in ("reset", "stall", "blackhole"):
                port = getattr(self, kind).port
                r = self.request(c, "GET", self.url("%s.soak.test" % kind, port))
                expect(r.status in (502, 504), r)
                return "%s_%d" % (kind, r.status)
            upstream = self.stall if kind == "stall_tunnel" else self.reset
            r = self.tunnel(c, "%s.soak.test" % upstream.behaviour, upstream.port)
            expect(r.status == 200, r)
            c.send(b"anyone there?")
            if kind == "stall_tunnel":
                expect(c.still_open(wait=1.0), "a stalled tunnel closed early")
                return kind
            expect(c.closed_by_peer(timeout=5.0), "a reset upstream left the tunnel open")
        return kind

    def flaky_dns(self, rng):
        with self.connect() as c:
            r = self.request(c, "GET", self.url("flaky.soak.test", self.web.port))
            expect(r.status in (200, 502, 504), r)
            if r.status != 200:
                expect(r.header("X-Egressd-Reason") in ("dns_timeout", "dns_servfail", "dns_error"), r)
                return r.header("X-Egressd-Reason")
        return "200"

    def revocable_tunnel(self, rng):
        """A tunnel held for up to 8 s, echoing a ping every half second: the reload to the other policy closes it."""
        with self.connect() as c:
            r = self.tunnel(c, "revocable.soak.test", self.revocable.port)
            if r.status == 403:
                expect(r.header("X-Egressd-Reason") == "no_matching_rule", r)
                return "refused"
            expect(r.status == 200, r)
            for _ in range(16):
                if self.stopping.is_set():
                    return "held"
                try:
                    c.send(b"ping")
                    c.recv_exact(4, timeout=2.0)
                except (harness.ConnectionClosed, OSError):
                    return "revoked"
                time.sleep(0.5)
        return "held"


# Weights: cheap and frequent first; bulk and the slow ones rarer, so that CPU stays modest.
SCENARIOS = [
    ("keep_alive", 20), ("new_connection", 15), ("tunnel_echo", 12), ("tunnel_tls", 6), ("denied", 10),
    ("bulk_get", 3), ("bulk_upload", 2), ("tunnel_bulk", 2), ("slow_reader", 2), ("slowloris", 2), ("vanish", 8),
    ("bad_upstream", 6), ("flaky_dns", 8), ("revocable_tunnel", 4),
]


def client_loop(soak, phase, index, until):
    rng = random.Random("%s-%s-%d" % (soak.seed, phase, index))
    names = [n for n, _ in SCENARIOS]
    weights = [w for _, w in SCENARIOS]
    for _ in range(10 ** 7):
        if soak.stopping.is_set() or time.monotonic() >= until:
            return
        name = rng.choices(names, weights)[0]
        soak.scenario.name = name
        try:
            soak.record(name, getattr(soak, name)(rng))
        except Surprise as e:
            soak.record(name, "surprise")
            soak.surprise(name, str(e)[:300])
        except (OSError, harness.ConnectionClosed, ValueError) as e:
            soak.record(name, "surprise")
            soak.surprise(name, "%s: %s" % (type(e).__name__, str(e)[:200]))
        time.sleep(rng.uniform(0.0, 0.02))


def reload_loop(soak, until):
    turn = 1
    for _ in range(10 ** 6):
        if soak.stopping.wait(timeout=RELOAD_EVERY) or time.monotonic() >= until:
            return
        mark = soak.proxy.event_count()
        soak.proxy.write_policy(soak.policies[turn % 2], rename=True)
        soak.proxy.signal(signal.SIGHUP)
        try:
            ev = soak.proxy.wait_reload(mark, timeout=10.0)
            soak.reloads[ev["event"]] += 1
        except AssertionError:
            soak.reloads["no_answer"] += 1
        turn += 1


def pause_loop(soak, until):
    """Stops egressd now and then for a fraction of a second (a process descheduled on a busy machine) while
    clients give up on connections it has not accepted yet: two reset, two half-closed after a partial head. The
    kernel completed their handshakes, so egressd accepts them later, and each must still have its egress.close."""
    for _ in range(10 ** 6):
        if soak.stopping.wait(timeout=PAUSE_EVERY) or time.monotonic() >= until:
            return
        soak.scenario.name = "unaccepted"
        soak.proxy.signal(signal.SIGSTOP)
        try:
            for i in range(4):
                try:
                    c = soak.connect(timeout=2.0)
                except OSError as e:
                    soak.surprise("unaccepted", "connect while egressd was stopped: %s" % e)
                    continue
                if i < 2:
                    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:
                    c.send("GET http://web.soak.test:%d/hel" % soak.web.port)
                c.close()
                soak.record("unaccepted", "reset" if i < 2 else "fin")
            time.sleep(PAUSE_FOR)
        finally:
            soak.proxy.signal(signal.SIGCONT)


def run_load(soak, phase, seconds, clients):
    until = time.monotonic() + seconds
    soak.stopping.clear()
    threads = [threading.Thread(target=client_loop, args=(soak, phase, i, until), name="client-%d" % i, daemon=True)
               for i in range(clients)]
    threads.append(threading.Thread(target=reload_loop, args=(soak, until), name="reloads", daemon=True))
    threads.append(threading.Thread(target=pause_loop, args=(soak, until), name="pauses", daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 120)
    soak.stopping.set()
    stuck = [t.name for t in threads if t.is_alive()]
    if stuck:
        raise AssertionError("client threads still running after the load: %s" % stuck)


def settle(soak):
    """Waits until egressd holds no connection and every opened connection has its close event; the state then."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    status = None
    for _ in range(1000):
        status = soak.proxy.admin_json("/status")
        missing, extra = soak.ledger.difference()
        if (status["connections"], status["tunnels"], len(missing), len(extra)) == (0, 0, 0, 0):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.25)
    time.sleep(1.0)  # the event batch and the writer thread, and freed memory handed back
    return status


class SoakTest(unittest.TestCase):

    def test_mixed_traffic(self):
        harness.raise_nofile_limit()
        seconds = soak_seconds()
        clients = int(os.environ.get("EGRESSD_SOAK_CLIENTS", "10"))
        seed = os.environ.get("EGRESSD_SOAK_SEED") or str(random.randrange(1 << 32))
        warm_up = min(60.0, max(15.0, seconds / 6))
        tmp = tempfile.TemporaryDirectory(prefix="egressd-soak-")
        self.addCleanup(tmp.cleanup)
        cert, key = harness.make_certificate(tmp.name)
        soak = Soak(tmp.name, seed, cert, key)
        stopped = []
        self.addCleanup(lambda: stopped or soak.stop())
        started = time.monotonic()

        run_load(soak, "warm-up", warm_up, clients)
        settle(soak)
        base_fds, base_rss = soak.proxy.descriptors(), soak.proxy.rss_kib()

        run_load(soak, "load", seconds - warm_up, clients)
        status = settle(soak)
        if soak.proxy.proc.poll() is not None:
            self.fail("egressd died during the soak (exit %s); stderr:\n%s\nlast lines:\n%s" % (
                soak.proxy.proc.returncode, "\n".join(soak.proxy.stderr_lines[:60]), soak.proxy.dump_events()))
        fds, rss = soak.proxy.descriptors(), soak.proxy.rss_kib()
        with soak.connect() as c:
            probe = soak.request(c, "GET", soak.url("web.soak.test", soak.web.port))
        healthz = soak.proxy.admin_get("/healthz")
        for _ in range(50):  # the probe's close event
            missing, extra = soak.ledger.difference()
            if not missing and not extra:
                break
            time.sleep(0.1)
        tally = soak.tally
        summary = {
            "seconds": round(time.monotonic() - started), "seed": seed, "clients": clients,
            "connections": soak.ledger.opened_total, "closes": soak.ledger.closed_total,
            "missing_close": sum(missing.values()), "extra_close": sum(extra.values()),
            "missing_close_from": soak.ledger.origins(missing), "extra_close_from": soak.ledger.origins(extra),
            "reloads": dict(soak.reloads), "revoked": tally.causes.get("policy_revoked", 0),
            "fds_baseline": base_fds, "fds_after": fds, "rss_kib_baseline": base_rss, "rss_kib_after": rss,
            "surprises": soak.surprise_total, "dns_dropped": soak.dns.dropped, "dns_delayed": soak.dns.delayed,
            "events": dict(tally.names), "close_causes": dict(tally.causes), "reasons": dict(tally.reasons),
            "outcomes": {"%s/%s" % k: v for k, v in sorted(soak.outcomes.items())},
        }
        print("soak summary: " + json.dumps(summary, sort_keys=True), flush=True)
        rc = soak.stop()
        stopped.append(True)

        self.assertEqual(rc, 0, "egressd's exit status; stderr:\n%s" % "\n".join(soak.proxy.stderr_lines[:60]))
        self.assertEqual((probe.status, probe.body), (200, b"hello"), probe)
        self.assertEqual(healthz.status, 200, healthz)
        self.assertEqual((status["connections"], status["tunnels"]), (0, 0), status)
        self.assertEqual(soak.surprises, [], "unexpected outcomes (%d)" % soak.surprise_total)
        self.assertEqual((summary["missing_close"], summary["extra_close"]), (0, 0),
                         "connections without exactly one egress.close: opened by %s, closed too often by %s; "
                         "first sources: %s" % (summary["missing_close_from"], summary["extra_close_from"],
                                                sorted(list(missing) + list(extra))[:10]))
        self.assertEqual(tally.alarms, [])
        self.assertEqual(soak.sentinel.count, 0, "egressd connected to a guarded address")
        self.assertEqual(set(soak.reloads), {"egressd.reload"}, soak.reloads)
        self.assertGreater(summary["revoked"], 0, "no tunnel was revoked: the reloads changed nothing")
        for name, _ in SCENARIOS:
            self.assertTrue(any(k[0] == name for k in soak.outcomes), "scenario %s never ran" % name)
        self.assertLessEqual(fds["socket"], base_fds["socket"] + FD_SLACK, (base_fds, fds))
        self.assertLessEqual(fds["other"], base_fds["other"] + FD_SLACK, (base_fds, fds))
        self.assertLessEqual(fds["pipe"], PIPE_FDS_MAX, (base_fds, fds))
        self.assertLessEqual(rss, base_rss + RSS_SLACK_KIB, "RSS grew from %d to %d KiB" % (base_rss, rss))


if __name__ == "__main__":
    unittest.main(verbosity=2)
