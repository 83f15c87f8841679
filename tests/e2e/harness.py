"""End-to-end harness for egressd: a loopback DNS server, loopback upstreams, and the real binary.

Everything here talks to loopback only (127.0.0.0/8 and ::1) and never to a real resolver. When the
system allows it (root, or unprivileged user namespaces), each test process first moves itself into a
private network namespace that holds nothing but a loopback interface, so that even a buggy proxy cannot
reach any other address: see isolate_network(). Set EGRESSD_E2E_NETNS=off to run in the host namespace.

Only the Python 3 standard library is used. Every loop is bounded in count and in time.
"""

import datetime
import fcntl
import http.server
import json
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

# ---------------------------------------------------------------------------------------------------------
# Network isolation


def _bring_loopback_up():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
        res = fcntl.ioctl(s, siocgifflags, struct.pack("16sH14s", b"lo", 0, b""))
        flags = struct.unpack("16sH", res[:18])[1]
        if not flags & iff_up:
            fcntl.ioctl(s, siocsifflags, struct.pack("16sH14s", b"lo", flags | iff_up, b""))
    finally:
        s.close()


def isolate_network():
    """Re-executes this test process inside a new network namespace holding only loopback, if possible.

    Called at import time by every test module. The process keeps its PID (unshare execs in place), so
    ctest's timeout still applies. Without unshare or the permission to use it, tests run as they are.
    """
    state = os.environ.get("EGRESSD_E2E_NETNS", "")
    if state == "1":
        _bring_loopback_up()
        return
    if state in ("off", "0", "no"):
        return
    unshare = shutil.which("unshare")
    if unshare is None or not hasattr(sys, "orig_argv"):
        return
    try:
        probe = subprocess.run([unshare, "-rn", "true"], capture_output=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return
    if probe.returncode != 0:
        return
    os.environ["EGRESSD_E2E_NETNS"] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(unshare, [unshare, "-rn", "--", sys.executable] + list(sys.orig_argv[1:]))


def ipv6_loopback_available():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return False
    try:
        s.bind(("::1", 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


def raise_nofile_limit(wanted=8192):
    """Raises the soft RLIMIT_NOFILE to the hard limit (children, egressd included, inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = hard if hard != resource.RLIM_INFINITY else max(soft, wanted)
    if soft < new:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---------------------------------------------------------------------------------------------------------
# DNS responder

QTYPES = {1: "A", 28: "AAAA", 5: "CNAME", 255: "ANY", 65: "HTTPS", 64: "SVCB"}


class DnsServer:
    """A UDP DNS server on 127.0.0.1 answering from `records`.

    records: name (lower case, no trailing dot) -> dict with optional keys
        "A": [ipv4...], "AAAA": [ipv6...], "ttl": seconds, "rcode": 0/2/3/5, "drop": bool
    or -> callable(qtype_name, count) returning such a dict, where count is how many queries of that
    (name, qtype) arrived so far, this one included (1 for the first).
    Unknown names get NXDOMAIN. Every query is counted per (name, qtype) and its qname recorded as sent.
    """

    def __init__(self, records=None):
        self.records = dict(records or {})
        self.lock = threading.Lock()
        self.counts = {}
        self.qnames = []  # (qname as received, qtype name)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="dns", daemon=True)
        self._thread.start()

    def count(self, name, qtype=None):
        with self.lock:
            if qtype is None:
                return sum(v for (n, _), v in self.counts.items() if n == name)
            return self.counts.get((name, qtype), 0)

    def names_seen(self):
        with self.lock:
            return list(self.qnames)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def _serve(self):
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                reply = self._answer(data)
            except Exception:  # a malformed query is dropped, never fatal
                reply = None
            if reply is not None:
                try:
                    self.sock.sendto(reply, peer)
                except OSError:
                    pass

    @staticmethod
    def _parse_question(data):
        if len(data) < 12:
            raise ValueError("short")
        qdcount = struct.unpack("!H", data[4:6])[0]
        if qdcount != 1:
            raise ValueError("one question expected")
        labels = []
        i = 12
        for _ in range(128):
            n = data[i]
            i += 1
            if n == 0:
                break
            if n & 0xC0:
                raise ValueError("compression in question")
            labels.append(data[i:i + n].decode("ascii", "replace"))
            i += n
        qtype, qclass = struct.unpack("!HH", data[i:i + 4])
        i += 4
        return ".".join(labels), qtype, qclass, i

    def _answer(self, data):
        qid, flags = struct.unpack("!HH", data[:4])
        qname, qtype, qclass, qend = self._parse_question(data)
        key = qname.lower().rstrip(".")
        tname = QTYPES.get(qtype, str(qtype))
        with self.lock:
            self.counts[(key, tname)] = self.counts.get((key, tname), 0) + 1
            count = self.counts[(key, tname)]
            self.qnames.append((qname, tname))
            entry = self.records.get(key)
        if callable(entry):
            entry = entry(tname, count)
        rcode = 3 if entry is None else int(entry.get("rcode", 0))
        if entry is not None and entry.get("drop"):
            return None
        answers = []
        if rcode == 0 and entry is not None and qclass == 1:
            ttl = int(entry.get("ttl", 0))
            if qtype == 1:
                for a in entry.get("A", []):
                    answers.append(struct.pack("!HHHIH", 0xC00C, 1, 1, ttl, 4) + socket.inet_pton(socket.AF_INET, a))
            elif qtype == 28:
                for a in entry.get("AAAA", []):
                    answers.append(struct.pack("!HHHIH", 0xC00C, 28, 1, ttl, 16) +
                                   socket.inet_pton(socket.AF_INET6, a))
        opcode = flags & 0x7800
        rd = flags & 0x0100
        out_flags = 0x8000 | opcode | 0x0400 | rd | 0x0080 | (rcode & 0xF)
        header = struct.pack("!HHHHHH", qid, out_flags, 1, len(answers), 0, 0)
        return header + data[12:qend] + b"".join(answers)


# ---------------------------------------------------------------------------------------------------------
# Upstreams


class _Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []
        self.connections = 0

    def add_connection(self):
        with self.lock:
            self.connections += 1

    def snapshot(self):
        with self.lock:
            return [dict(r) for r in self.requests]


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address, handler, recorder, family=socket.AF_INET, ssl_context=None):
        self.address_family = family
        self.recorder = recorder
        self.ssl_context = ssl_context
        super().__init__(address, handler)

    def get_request(self):
        sock, addr = super().get_request()
        self.recorder.add_connection()
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        pass  # tests look at what was recorded, not at tracebacks


class UpstreamHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 15
    server_version = "e2e-upstream"
    sys_version = ""

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.settimeout(5)
            self.connection.do_handshake()
            self.connection.settimeout(self.timeout)

    # -- body reading -----------------------------------------------------------------------------------
    def _read_chunked(self, record):
        body = bytearray()
        for _ in range(100000):
            line = self.rfile.readline(1024)
            if not line.endswith(b"\r\n"):
                return None
            size_text = line[:-2].split(b";", 1)[0].strip()
            if not size_text or any(c not in b"0123456789abcdefABCDEF" for c in size_text):
                return None
            size = int(size_text, 16)
            if size == 0:
                for _ in range(1000):
                    trailer = self.rfile.readline(8192)
                    if trailer == b"\r\n":
                        return bytes(body)
                    if not trailer.endswith(b"\r\n"):
                        return None
                return None
            data = self.rfile.read(size)
            if len(data) != size:
                body += data
                record["body"] = bytes(body)
                return None
            body += data
            record["body"] = bytes(body)
            if self.rfile.read(2) != b"\r\n":
                return None
        return None

    def _read_body(self, record):
        te = self.headers.get("Transfer-Encoding")
        cl = self.headers.get("Content-Length")
        if te is not None:
            if te.strip().lower() != "chunked":
                return None
            return self._read_chunked(record)
        if cl is not None:
            try:
                n = int(cl)
            except ValueError:
                return None
            data = self.rfile.read(n) if n > 0 else b""
            if len(data) != n:
                record["body"] = data
                return None
            return data
        return b""

    # -- dispatch ---------------------------------------------------------------------------------------
    def _handle(self, head_only=False):
        record = {
            "method": self.command,
            "path": self.path,
            "version": self.request_version,
            "headers": list(self.headers.items()),
            "body": None,
            "complete": False,
            "peer": self.client_address[0],
            "time": time.monotonic(),
        }
        rec = self.server.recorder
        with rec.lock:
            rec.requests.append(record)
        body = self._read_body(record)
        if body is None:
            self.close_connection = True
            return
        with rec.lock:
            record["body"] = body
            record["complete"] = True
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        query = urllib.parse.parse_qs(url.query)
        if path == "/hello":
            self._send(200, b"hello", head_only=head_only)
        elif path == "/echo":
            self._send(200, body, head_only=head_only, extra=[("Content-Type", "application/octet-stream")])
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if not head_only:
                for part in (b"hello ", b"chunked ", b"world"):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\n\r\n")
        elif path == "/nocontent":
            self.send_response(204)
            self.end_headers()
        elif path == "/notmodified":
            self.send_response(304)
            self.send_header("ETag", '"e2e"')
            self.end_headers()
        elif path == "/slow":
            ms = int(query.get("ms", ["1000"])[0])
            time.sleep(min(ms, 10000) / 1000.0)
            self._send(200, b"slow", head_only=head_only)
        elif path == "/close":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Connection", "close")
            self.end_headers()
            if not head_only:
                self.wfile.write(CLOSE_BODY)
            self.close_connection = True
        elif path == "/dropafter":
            # A normal keep-alive response, then the server drops the idle connection (as servers do when
            # their keep-alive timeout expires), without having said Connection: close.
            self._send(200, b"dropped after", head_only=head_only)
            self.close_connection = True
        elif path == "/hopheaders":
            self.send_response(200)
            self.send_header("Connection", "X-Up-Hop")
            self.send_header("X-Up-Hop", "hop")
            self.send_header("Keep-Alive", "timeout=5")
            self.send_header("Upgrade", "h2c")
            self.send_header("Proxy-Connection", "keep-alive")
            self.send_header("X-Up-End", "end")
            self.send_header("Content-Length", "3")
            self.end_headers()
            if not head_only:
                self.wfile.write(b"hop")
        elif path == "/notmodified-cl":
            # A 304 may carry the Content-Length the 200 would have had; it never has a body.
            self.send_response(304)
            self.send_header("Content-Length", "100")
            self.end_headers()
        elif path == "/clte":
            # Both framings: Transfer-Encoding must win (RFC 9112 6.3), or the response be refused.
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"5\r\nhello\r\n0\r\n\r\n")
            self.close_connection = True
        elif path == "/twocl":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello!!")
            self.close_connection = True
        elif path == "/truncated":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly ten b")
            self.wfile.flush()
            self.close_connection = True
        elif path == "/garbage":
            self.wfile.write(b"this is not an HTTP response\r\n\r\n")
            self.close_connection = True
        elif path == "/":
            self._send(200, b"hello over tls" if isinstance(self.connection, ssl.SSLSocket) else b"root",
                       head_only=head_only)
        else:
            self._send(404, b"not found", head_only=head_only)

    def _send(self, status, body, head_only=False, extra=()):
        self.send_response(status)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def do_GET(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def do_PUT(self):
        self._handle()

    def do_HEAD(self):
        self._handle(head_only=True)


CLOSE_BODY = b"".join(b"line %05d of a response delimited by the connection closing\n" % i for i in range(2000))


class HttpUpstream:
    """HTTP/1.1 upstream on loopback (TLS if ssl_context is given) that records every request."""

    def __init__(self, host="127.0.0.1", port=0, ssl_context=None):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.recorder = _Recorder()
        self.server = _QuietServer((host, port), UpstreamHandler, self.recorder, family, ssl_context)
        self.host = host
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="upstream-%d" % self.port, daemon=True)
        self._thread.start()

    @property
    def requests(self):
        return self.recorder.snapshot()

    @property
    def connections(self):
        with self.recorder.lock:
            return self.recorder.connections

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


class EchoServer:
    """Raw TCP echo on loopback, one selector thread for any number of connections.

    Echoes every byte; when the client half-closes (EOF), sends "BYE\\n" and closes: a test that gets
    "BYE\\n" back through a tunnel proves the half-close went through.
    """

    def __init__(self, host="127.0.0.1", port=0):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(4096)
        self.listener.setblocking(False)
        self.host = host
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.connections = 0
        self.active = 0
        self.eofs = 0
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.listener, selectors.EVENT_READ, None)
        self._out = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="echo-%d" % self.port, daemon=True)
        self._thread.start()

    def _close(self, s):
        try:
            self._sel.unregister(s)
        except (KeyError, ValueError):
            pass
        self._out.pop(s, None)
        s.close()
        with self.lock:
            self.active -= 1

    def _serve(self):
        while not self._stop.is_set():
            for key, mask in self._sel.select(timeout=0.02):
                s = key.fileobj
                if s is self.listener:
                    for _ in range(256):
                        try:
                            c, _ = self.listener.accept()
                        except (BlockingIOError, OSError):
                            break
                        c.setblocking(False)
                        self._out[c] = [bytearray(), False]
                        self._sel.register(c, selectors.EVENT_READ, None)
                        with self.lock:
                            self.connections += 1
                            self.active += 1
                    continue
                state = self._out.get(s)
                if state is None:
                    continue
                if mask & selectors.EVENT_READ and not state[1]:
                    try:
                        data = s.recv(65536)
                    except BlockingIOError:
                        data = None
                    except OSError:
                        self._close(s)
                        continue
                    if data == b"":
                        state[0] += b"BYE\n"
                        state[1] = True
                        with self.lock:
                            self.eofs += 1
                    elif data:
                        state[0] += data
                if state[0]:
                    try:
                        n = s.send(state[0])
                        del state[0][:n]
                    except BlockingIOError:
                        pass
                    except OSError:
                        self._close(s)
                        continue
                if state[1] and not state[0]:
                    self._close(s)
                    continue
                events = selectors.EVENT_READ if not state[1] else 0
                if state[0]:
                    events |= selectors.EVENT_WRITE
                try:
                    self._sel.modify(s, events or selectors.EVENT_WRITE, None)
                except (KeyError, ValueError):
                    pass

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        for s in list(self._out):
            s.close()
        self.listener.close()
        self._sel.close()


class Sentinel:
    """Listens on 127.0.0.2 at the given ports and records every connection accepted: the proxy must never
    connect to an address the policy refused."""

    def __init__(self, ports, host="127.0.0.2"):
        self.host = host
        self.lock = threading.Lock()
        self.accepted = []  # (port, peer)
        self.listeners = []
        for p in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, p))
            s.listen(64)
            s.settimeout(0.1)
            self.listeners.append(s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="sentinel", daemon=True)
        self._thread.start()

    @property
    def count(self):
        with self.lock:
            return len(self.accepted)

    def _serve(self):
        sel = selectors.DefaultSelector()
        for s in self.listeners:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        while not self._stop.is_set():
            for key, _ in sel.select(timeout=0.02):
                try:
                    c, peer = key.fileobj.accept()
                except OSError:
                    continue
                with self.lock:
                    self.accepted.append((key.fileobj.getsockname()[1], peer))
                c.close()
        sel.close()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        for s in self.listeners:
            s.close()


class RecordingServer:
    """Raw TCP server on loopback that records every byte each connection sends, with its arrival time.

    echo: send every byte back. banner: bytes sent as soon as a connection is accepted (a server that speaks
    first, like SSH). A connection is closed once the client half-closes and what is pending went out.
    `conns` holds one dict per accepted connection, in order: "accepted" (time.monotonic()), "chunks" (a list
    of (arrival time, bytes), one per recv), "closed" (time of the EOF or error, None while open).
    """

    def __init__(self, host="127.0.0.1", port=0, echo=True, banner=b""):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(256)
        self.listener.setblocking(False)
        self.host = host
        self.port = self.listener.getsockname()[1]
        self.echo = echo
        self.banner = bytes(banner)
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.conns = []
        self._state = {}  # socket -> [record, pending output, eof seen]
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.listener, selectors.EVENT_READ, None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="recorder-%d" % self.port, daemon=True)
        self._thread.start()

    @property
    def connections(self):
        with self.lock:
            return len(self.conns)

    def received(self, index=None):
        """Every byte received on connection `index`, or on all connections together (None)."""
        with self.lock:
            conns = self.conns if index is None else [self.conns[index]]
            return b"".join(data for c in conns for _, data in c["chunks"])

    def chunks(self, index):
        with self.lock:
            return list(self.conns[index]["chunks"])

    def wait_bytes(self, count, timeout=5.0):
        """Waits until `count` bytes arrived in total; returns them (fewer on timeout)."""
        deadline = time.monotonic() + timeout
        for _ in range(100000):
            data = self.received()
            remaining = deadline - time.monotonic()
            if len(data) >= count or remaining <= 0:
                return data
            with self.cond:
                self.cond.wait(timeout=min(remaining, 0.05))
        return self.received()

    def wait_all_closed(self, timeout=5.0):
        """True once every accepted connection has ended (so everything sent on it has been recorded)."""
        deadline = time.monotonic() + timeout
        for _ in range(100000):
            with self.lock:
                if all(c["closed"] is not None for c in self.conns):
                    return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self.cond:
                self.cond.wait(timeout=min(remaining, 0.05))
        return False

    def _end(self, s):
        try:
            self._sel.unregister(s)
        except (KeyError, ValueError):
            pass
        state = self._state.pop(s, None)
        s.close()
        if state is not None:
            with self.cond:
                if state[0]["closed"] is None:
                    state[0]["closed"] = time.monotonic()
                self.cond.notify_all()

    def _serve(self):
        while not self._stop.is_set():
            for key, mask in self._sel.select(timeout=0.02):
                s = key.fileobj
                if s is self.listener:
                    for _ in range(256):
                        try:
                            c, _ = self.listener.accept()
                        except (BlockingIOError, OSError):
                            break
                        c.setblocking(False)
                        record = {"accepted": time.monotonic(), "chunks": [], "closed": None}
                        with self.cond:
                            self.conns.append(record)
                            self.cond.notify_all()
                        self._state[c] = [record, bytearray(self.banner), False]
                        self._sel.register(c, selectors.EVENT_READ | (selectors.EVENT_WRITE if self.banner else 0))
                    continue
                state = self._state.get(s)
                if state is None:
                    continue
                record, out, _ = state
                if mask & selectors.EVENT_READ and not state[2]:
                    try:
                        data = s.recv(65536)
                    except BlockingIOError:
                        data = None
                    except OSError:
                        self._end(s)
                        continue
                    if data == b"":
                        state[2] = True
                    elif data:
                        with self.cond:
                            record["chunks"].append((time.monotonic(), data))
                            self.cond.notify_all()
                        if self.echo:
                            out += data
                if out:
                    try:
                        n = s.send(out)
                        del out[:n]
                    except BlockingIOError:
                        pass
                    except OSError:
                        self._end(s)
                        continue
                if state[2] and not out:
                    self._end(s)
                    continue
                events = (0 if state[2] else selectors.EVENT_READ) | (selectors.EVENT_WRITE if out else 0)
                try:
                    self._sel.modify(s, events or selectors.EVENT_WRITE, None)
                except (KeyError, ValueError):
                    pass

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        for s in list(self._state):
            s.close()
        self.listener.close()
        self._sel.close()


def bind_pair_free(port):
    """True if `port` can also be bound on 127.0.0.2 (for the sentinel)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.2", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def make_certificate(directory):
    """A self-signed certificate for allowed.test and tls.test, made with the openssl command."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
         "-subj", "/CN=allowed.test", "-addext", "subjectAltName=DNS:allowed.test,DNS:tls.test", "-days", "1"],
        check=True, capture_output=True, timeout=60)
    return cert, key


def served_certificate(host, port, timeout=5.0):
    """The certificate (DER) a TLS server on host:port presents on a new connection. Not verified: the caller
    compares it with the one it expects."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=timeout) as raw:
        with context.wrap_socket(raw) as tls:
            return tls.getpeercert(binary_form=True)


def certificate_der(path):
    """The certificate of a PEM file, as DER."""
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def tls_hello_end(buf):
    """Offset just past the TLS record that completes the first handshake message in buf, or None."""
    message = b""
    pos = 0
    while pos + 5 <= len(buf):
        size = int.from_bytes(buf[pos + 3:pos + 5], "big")
        if pos + 5 + size > len(buf):
            return None
        message += buf[pos + 5:pos + 5 + size]
        pos += 5 + size
        if len(message) >= 4 and len(message) >= 4 + int.from_bytes(message[1:4], "big"):
            return pos
    return None


def capture_client_hello(servername=None, extra=(), timeout=10.0):
    """A real ClientHello: the first bytes `openssl s_client` sends, up to the end of the record completing its
    ClientHello, captured on a loopback listener of our own that never answers. servername None: -noservername.
    """
    if shutil.which("openssl") is None:
        raise unittest.SkipTest("no openssl command")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(timeout)
    port = listener.getsockname()[1]
    args = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port]
    args += ["-noservername"] if servername is None else ["-servername", servername]
    client = subprocess.Popen(args + list(extra), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    buf = b""
    end = None
    try:
        conn, _ = listener.accept()
        conn.settimeout(timeout)
        try:
            for _ in range(1000):
                end = tls_hello_end(buf)
                if end is not None:
                    break
                chunk = conn.recv(65536)
                if not chunk:
                    break
                buf += chunk
        finally:
            conn.close()
    finally:
        listener.close()
        try:
            client.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            client.kill()
            client.wait(timeout=5)
    if end is None:
        raise AssertionError("openssl s_client sent no complete ClientHello: %r" % buf[:64])
    return buf[:end]


# ---------------------------------------------------------------------------------------------------------
# Raw HTTP client


class Response:
    def __init__(self, version, status, reason, headers, body, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # [(name, value)] as received
        self.body = body
        self.raw_head = raw_head

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def __repr__(self):
        return "<Response %s %r headers=%r body=%r>" % (self.status, self.reason, self.headers, self.body[:200])


class ConnectionClosed(Exception):
    pass


class HttpConn:
    """One client connection to the proxy, speaking raw bytes, with a response reader."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0, source=None):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            if source is not None:
                self.sock.bind((source, 0))
            self.sock.connect((host, port))
        except OSError:
            self.sock.close()
            raise
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self, deadline):
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("deadline")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _read_exact(self, n, deadline):
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise ConnectionClosed("closed after %d of %d bytes" % (len(self.buf), n))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def _read_line(self, deadline, limit=1 << 20):
        for _ in range(100000):
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if len(self.buf) > limit:
                raise ValueError("line too long")
            if not self._fill(deadline):
                raise ConnectionClosed("closed while reading a line: %r" % bytes(self.buf))
        raise ValueError("no line")

    def read_head(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        for _ in range(100000):
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                head = bytes(self.buf[:i + 4])
                del self.buf[:i + 4]
                return head
            if not self._fill(deadline):
                raise ConnectionClosed("closed before a response head: %r" % bytes(self.buf))
        raise ValueError("no head")

    def read_response(self, method="GET", timeout=None, keep_interim=False):
        deadline = time.monotonic() + (timeout or self.timeout)
        for _ in range(10):
            head = self.read_head(timeout=max(0.01, deadline - time.monotonic()))
            lines = head[:-4].decode("latin-1").split("\r\n")
            version, _, rest = lines[0].partition(" ")
            status_text, _, reason = rest.partition(" ")
            status = int(status_text)
            headers = []
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers.append((k, v.strip()))
            resp = Response(version, status, reason, headers, b"", head)
            if 100 <= status < 200 and not keep_interim:
                continue
            break
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200 or \
                (method == "CONNECT" and 200 <= status < 300):
            return resp
        te = resp.header("Transfer-Encoding")
        cl = resp.header("Content-Length")
        if te is not None and te.lower() == "chunked":
            body = bytearray()
            for _ in range(100000):
                size = int(self._read_line(deadline).split(b";")[0], 16)
                if size == 0:
                    for _ in range(1000):
                        if self._read_line(deadline) == b"":
                            break
                    break
                body += self._read_exact(size, deadline)
                if self._read_line(deadline) != b"":
                    raise ValueError("bad chunk end")
            resp.body = bytes(body)
        elif cl is not None:
            resp.body = self._read_exact(int(cl), deadline)
        else:
            resp.body = self.read_until_close(timeout=max(0.01, deadline - time.monotonic()))
        return resp

    def recv_exact(self, n, timeout=None):
        """Exactly n bytes (raises ConnectionClosed if the connection ends first)."""
        return self._read_exact(n, time.monotonic() + (timeout or self.timeout))

    def read_until_close(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        for _ in range(1000000):
            if not self._fill(deadline):
                break
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def closed_by_peer(self, timeout=3.0):
        """True if the proxy closes the connection (EOF or reset) within timeout with no further bytes."""
        try:
            data = self.read_until_close(timeout=timeout)
        except socket.timeout:
            return False
        return data == b"" and self.eof

    def still_open(self, wait=0.3):
        """True if the connection neither closed nor sent anything within `wait` seconds."""
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(1, socket.MSG_PEEK)
        except socket.timeout:
            return True
        except OSError:
            return False
        finally:
            self.sock.settimeout(self.timeout)
        return bool(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------------------------------------
# egressd


def egressd_binary():
    env = os.environ.get("EGRESSD_BINARY")
    if env:
        # Absolute: egressd runs in its temporary directory, where a relative path would name nothing.
        return os.path.abspath(env)
    for cand in ("build/e2e/proxy/egressd", "build/dev/proxy/egressd", "build/debug/proxy/egressd"):
        p = os.path.join(REPO, cand)
        if os.path.exists(p):
            return p
    raise unittest.SkipTest("EGRESSD_BINARY is not set and no built egressd was found")


def _yaml_list(items):
    return "[" + ", ".join(json.dumps(str(i)) if not isinstance(i, int) else str(i) for i in items) + "]"


def own_fields(event_format, line):
    """egressd's own fields of one event line in any logging.format (ECS keeps them under "egressd", OCSF under
    "unmapped.egressd"), with the whole ECS or OCSF line under "_raw" (raw_line gives it back): tests wait on
    "event" whatever the format."""
    if event_format == "egressd":
        return line
    own = line.get("egressd") if event_format == "ecs" else line.get("unmapped", {}).get("egressd")
    view = dict(own) if isinstance(own, dict) else {}
    view["_raw"] = line
    return view


def raw_line(event):
    """The line an event of Egressd.events() was read from, in its logging.format."""
    return event.get("_raw", event)


# "address" or "thread" when the asan or tsan test preset runs the suite against a sanitizer build (set in
# CMakePresets.json), else None: a few checks of memory use mean nothing under a sanitizer's allocator.
SANITIZER = os.environ.get("EGRESSD_SANITIZER") or None

# The first line of a sanitizer build's report (ASan, LeakSanitizer, UBSan, TSan) on egressd's stderr.
SANITIZER_REPORT = re.compile(r"ERROR: (Address|Leak)Sanitizer|WARNING: ThreadSanitizer|: runtime error: ")


def sanitizer_report(stderr_lines):
    """The first sanitizer report in a process's stderr lines (at most 80 lines of it), or None."""
    for i, line in enumerate(stderr_lines):
        if SANITIZER_REPORT.search(line):
            return "\n".join(stderr_lines[i:i + 80])
    return None


class StderrWatch:
    """Reads a started process's stderr lines on a thread (so a chatty sanitizer never fills the pipe);
    check(), once the process has ended, fails on a sanitizer report (the asan and tsan presets)."""

    def __init__(self, proc):
        self.lines = []
        self._thread = threading.Thread(target=self._read, args=(proc.stderr,), daemon=True)
        self._thread.start()

    def _read(self, stream):
        for raw in stream:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def check(self, what="egressd"):
        self._thread.join(timeout=5)
        report = sanitizer_report(self.lines)
        if report is not None:
            raise AssertionError("%s reported a sanitizer finding:\n%s" % (what, report))


class Egressd:
    """The real egressd binary, configured in a temporary directory, its JSON events collected."""

    def __init__(self, directory, policy_text, dns_port, settings=None, start_timeout=10.0, extra_yaml=None,
                 policy_files=None):
        """settings: sections merged over the defaults below; "logging" adds to the logging section (format,
        instance, http_query), and events are then read in that format (see own_fields).
        extra_yaml: optional text appended as is to egressd.yaml (top-level sections such as proxy_auth).
        policy_files: {file name: text}; if given, the policy is the directory `policy.d` holding these files
        (policy_text is then not used, and policy_path names the directory)."""
        self.directory = directory
        self.settings = {
            "workers": 2,
            "dns": {"timeout": "300ms", "tries": 1, "min_ttl": "0s", "max_ttl": "5m", "negative_ttl": "0s",
                    "cache_entries": 1000},
            "timeouts": {"header": "1s", "connect": "2s", "idle": "5s", "tunnel_lifetime": "1h",
                         "upstream_response": "10s", "shutdown_grace": "3s"},
            "limits": {"max_head_bytes": 65536, "max_headers": 100, "max_request_line": 8192,
                       "max_connections": 20000, "max_connections_per_client": 5000},
        }
        for k, v in (settings or {}).items():
            if isinstance(v, dict):
                self.settings.setdefault(k, {}).update(v)
            else:
                self.settings[k] = v
        if policy_files is None:
            policy_setting = "policy.yaml"
            self.policy_path = os.path.join(directory, "policy.yaml")
            with open(self.policy_path, "w") as f:
                f.write(policy_text)
        else:
            policy_setting = "policy.d"
            self.policy_path = os.path.join(directory, policy_setting)
            os.mkdir(self.policy_path)
            for name, text in policy_files.items():
                with open(os.path.join(self.policy_path, name), "w") as f:
                    f.write(text)
        listeners = self.settings.get("listeners", ["127.0.0.1:0"])
        lines = ["version: 1", "listeners: %s" % json.dumps(listeners), "policy: %s" % policy_setting,
                 "workers: %d" % self.settings["workers"],
                 "dns:", "  servers: [\"127.0.0.1:%d\"]" % dns_port]
        for section in ("dns", "timeouts", "limits"):
            if section != "dns":
                lines.append(section + ":")
            for k, v in self.settings[section].items():
                lines.append("  %s: %s" % (k, v))
        lines += ["logging:", "  stdout: true", "  queue_size: 65536"]
        for k, v in self.settings.get("logging", {}).items():
            lines.append("  %s: %s" % (k, v))
        self.event_format = self.settings.get("logging", {}).get("format", "egressd")
        if extra_yaml:
            lines.append(extra_yaml.rstrip("\n"))
        if not extra_yaml or not re.search(r"^admin:", extra_yaml, re.M):
            # The default admin address (127.0.0.1:9090) would clash between two egressd of one test.
            lines.append('admin:\n  listen: "127.0.0.1:0"')
        if not extra_yaml or not re.search(r"^reload:", extra_yaml, re.M):
            # Tests that change files (CRLs, keys, credentials) reload when they say so; the file watch is
            # tested on its own (test_reload, test_revoke).
            lines.append("reload:\n  watch: false")
        self.config_path = os.path.join(directory, "egressd.yaml")
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self._events = []
        self.raw_lines = []
        self.returncode = None
        self._sanitizer_checked = False
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        self.proc = subprocess.Popen([egressd_binary(), "run", "--config", self.config_path],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, cwd=directory)
        self._out_thread = threading.Thread(target=self._read_stdout, daemon=True)
        self._out_thread.start()
        self._stderr = StderrWatch(self.proc)
        self.stderr_lines = self._stderr.lines
        ev = self.wait_event(lambda e: e.get("event") == "egressd.listening", timeout=start_timeout, fail=False)
        if ev is None:
            self.stop()
            raise AssertionError("egressd never logged egressd.listening (exit %s)\nstdout:\n%s\nstderr:\n%s" % (
                self.proc.returncode, "\n".join(self.raw_lines[-50:]), "\n".join(self.stderr_lines[-50:])))
        host, _, port = ev["address"].rpartition(":")
        self.host = host.strip("[]")
        self.port = int(port)

    def _read_stdout(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            with self.cond:
                self.raw_lines.append(line)
                if isinstance(event, dict):
                    self._events.append(own_fields(self.event_format, event))
                self.cond.notify_all()

    def events(self, pred=None, **fields):
        with self.lock:
            evs = list(self._events)
        out = []
        for e in evs:
            if pred is not None and not pred(e):
                continue
            if any(e.get(k) != v for k, v in fields.items()):
                continue
            out.append(e)
        return out

    def wait_event(self, pred=None, timeout=5.0, fail=True, **fields):
        deadline = time.monotonic() + timeout
        for _ in range(100000):
            found = self.events(pred, **fields)
            if found:
                return found[0]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            with self.cond:
                self.cond.wait(timeout=min(remaining, 0.1))
        if fail:
            raise AssertionError("no event matching %s%s within %.1fs; events:\n%s" % (
                fields, " and a predicate" if pred else "", timeout, self.dump_events()))
        return None

    def wait_events(self, count, pred=None, timeout=5.0, **fields):
        deadline = time.monotonic() + timeout
        for _ in range(100000):
            found = self.events(pred, **fields)
            if len(found) >= count or time.monotonic() >= deadline:
                return found
            with self.cond:
                self.cond.wait(timeout=0.1)
        return self.events(pred, **fields)

    def dump_events(self, last=40):
        with self.lock:
            return "\n".join(self.raw_lines[-last:])

    def connect(self, timeout=5.0, source=None):
        return HttpConn(self.port, self.host, timeout=timeout, source=source)

    def send_raw(self, data, timeout=5.0, method="GET"):
        """Sends bytes on a fresh connection and returns the parsed response (None if closed without one)."""
        with self.connect(timeout=timeout) as c:
            c.send(data)
            try:
                return c.read_response(method=method)
            except ConnectionClosed:
                return None

    def send_raw_bytes(self, data, timeout=5.0):
        """Sends bytes on a fresh connection and returns every byte received until the proxy closes."""
        with self.connect(timeout=timeout) as c:
            c.send(data)
            return c.read_until_close(timeout=timeout)

    def signal(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait_exit(self, timeout=10.0):
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._out_thread.join(timeout=5)
        return self.returncode

    def stop(self):
        """SIGTERM, wait at most 10 s, then SIGKILL. Returns the exit status."""
        self.returncode = terminate(self.proc)
        self._out_thread.join(timeout=5)
        try:
            # Under the asan and tsan presets a finding fails the test that started this process, once.
            if not self._sanitizer_checked:
                self._sanitizer_checked = True
                self._stderr.check("egressd (exit %s)" % self.returncode)
        finally:
            for f in (self.proc.stdout, self.proc.stderr):
                try:
                    f.close()
                except OSError:
                    pass
        return self.returncode

    # -- reloads and the admin endpoint -----------------------------------------------------------------
    def event_count(self):
        """How many events were logged so far: a mark for wait_for_event(after=...)."""
        with self.lock:
            return len(self._events)

    def wait_for_event(self, name=None, pred=None, timeout=5.0, after=0, fail=True, **fields):
        """The first event named `name` (any name if None) among those logged after the first `after` (see
        event_count()), matching pred and fields; waits at most `timeout`. None when none came and not fail."""
        def match(e):
            if name is not None and e.get("event") != name:
                return False
            if pred is not None and not pred(e):
                return False
            return all(e.get(k) == v for k, v in fields.items())

        deadline = time.monotonic() + timeout
        for _ in range(100000):
            with self.cond:
                for e in self._events[after:]:
                    if match(e):
                        return e
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.cond.wait(timeout=min(remaining, 0.1))
        if fail:
            raise AssertionError("no event %s%s%s after the first %d within %.1fs; events:\n%s" % (
                name or "", fields, " and a predicate" if pred else "", after, timeout, self.dump_events()))
        return None

    def reload_events(self, after=0):
        """The egressd.reload and egressd.reload_failed events logged after the first `after`."""
        with self.lock:
            evs = list(self._events[after:])
        return [e for e in evs if e.get("event") in ("egressd.reload", "egressd.reload_failed")]

    def wait_reload(self, after, timeout=10.0):
        """The first egressd.reload or egressd.reload_failed event logged after the first `after` events."""
        return self.wait_for_event(pred=lambda e: e.get("event") in ("egressd.reload", "egressd.reload_failed"),
                                   after=after, timeout=timeout)

    def sighup_reload(self, timeout=10.0):
        """SIGHUP; returns the egressd.reload or egressd.reload_failed event that follows it."""
        mark = self.event_count()
        self.signal(signal.SIGHUP)
        return self.wait_reload(mark, timeout=timeout)

    def write_policy(self, text, name=None, rename=False):
        """Rewrites the policy file (or the file `name` in a policy directory): in place, or (rename=True)
        written beside it under another name and renamed over it, as editors and deployment tools do."""
        path = self.policy_path if name is None else os.path.join(self.policy_path, name)
        if not rename:
            with open(path, "w") as f:
                f.write(text)
            return path
        tmp = os.path.join(os.path.dirname(path), ".%s.tmp" % os.path.basename(path))
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, path)
        return path

    def admin_address(self, timeout=5.0):
        """(host, port) of the admin endpoint, from egressd.admin_listening."""
        ev = self.wait_event(event="egressd.admin_listening", timeout=timeout)
        host, _, port = ev["address"].rpartition(":")
        return host.strip("[]"), int(port)

    def admin_request(self, method, path, token=None, body=b"", headers=(), timeout=5.0):
        """One request to the admin endpoint on a fresh connection (Connection: close); the Response."""
        host, port = self.admin_address()
        authority = "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % authority, "Connection: close"]
        if token is not None:
            lines.append("Authorization: Bearer %s" % token)
        lines += ["%s: %s" % (k, v) for k, v in headers]
        if body or method in ("POST", "PUT"):
            lines.append("Content-Length: %d" % len(body))
        with HttpConn(port, host, timeout=timeout) as c:
            c.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            return c.read_response(method=method, timeout=timeout)

    def admin_get(self, path, token=None, timeout=5.0):
        return self.admin_request("GET", path, token=token, timeout=timeout)

    def admin_post(self, path, token=None, body=b"", timeout=60.0):
        return self.admin_request("POST", path, token=token, body=body, timeout=timeout)

    def admin_json(self, path, token=None, timeout=5.0):
        """GET path on the admin endpoint; asserts a 200 and returns the JSON body, parsed."""
        resp = self.admin_get(path, token=token, timeout=timeout)
        if resp.status != 200:
            raise AssertionError("GET %s: %r" % (path, resp))
        return json.loads(resp.body)

    def metrics(self, token=None, timeout=5.0):
        """GET /metrics; asserts a 200 and returns (text, samples as parse_metrics gives them)."""
        resp = self.admin_get("/metrics", token=token, timeout=timeout)
        if resp.status != 200:
            raise AssertionError("GET /metrics: %r" % resp)
        text = resp.body.decode("utf-8")
        return text, parse_metrics(text)


# ---------------------------------------------------------------------------------------------------------
# The test environment


def default_records():
    lo = {"A": ["127.0.0.1"], "ttl": 60}
    return {
        "allowed.test": lo,
        "other.test": lo,
        "evil.test": lo,
        "denied.test": lo,
        "expired.test": lo,
        "range.test": lo,
        "a.wild.test": lo,
        "deep.a.wild.test": lo,
        "tls.test": lo,
        "intranet": lo,
        "loop2.guard.test": {"A": ["127.0.0.2"], "ttl": 60},
        "private.guard.test": {"A": ["10.0.0.1"], "ttl": 60},
        "metadata.guard.test": {"A": ["169.254.169.254"], "ttl": 60},
        "v6loop.guard.test": {"AAAA": ["::1"], "ttl": 60},
        "mapped.guard.test": {"AAAA": ["::ffff:169.254.169.254"], "ttl": 60},
        "cgnat.guard.test": {"A": ["100.64.0.1"], "ttl": 60},
        "mixed.guard.test": {"A": ["127.0.0.2", "10.0.0.1", "127.0.0.1"], "ttl": 60},
        "nx.dns.test": {"rcode": 3},
        "servfail.dns.test": {"rcode": 2},
        "refused.dns.test": {"rcode": 5},
        "drop.dns.test": {"drop": True},
        "empty.dns.test": {"ttl": 60},
    }


class ProxyTestCase(unittest.TestCase):
    """Starts, for every test, a DNS server, the upstreams, a sentinel and egressd; stops them all after."""

    needs_tls = False
    egressd_settings = None  # dict merged into the egressd configuration

    @classmethod
    def setUpClass(cls):
        cls.class_tmp = tempfile.TemporaryDirectory(prefix="egressd-e2e-")
        if cls.needs_tls:
            cls.cert, cls.key = make_certificate(cls.class_tmp.name)

    @classmethod
    def tearDownClass(cls):
        cls.class_tmp.cleanup()

    def setUp(self):
        self._cleanups_run = False
        self.tmp = tempfile.TemporaryDirectory(prefix="egressd-e2e-")
        self.addCleanup(self.tmp.cleanup)
        self.dns = DnsServer(self.dns_records())
        self.addCleanup(self.dns.stop)
        # The HTTP upstream's port must also be free on 127.0.0.2 for the sentinel.
        for _ in range(50):
            up = HttpUpstream()
            echo = EchoServer()
            if bind_pair_free(up.port) and bind_pair_free(echo.port):
                break
            up.stop()
            echo.stop()
        else:
            self.fail("no port free on both 127.0.0.1 and 127.0.0.2")
        self.upstream = up
        self.addCleanup(up.stop)
        self.echo = echo
        self.addCleanup(echo.stop)
        self.other = HttpUpstream()  # a port no rule names
        self.addCleanup(self.other.stop)
        self.tls = None
        sentinel_ports = [up.port, echo.port]
        if self.needs_tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.cert, self.key)
            for _ in range(50):
                tls = HttpUpstream(ssl_context=ctx)
                if bind_pair_free(tls.port):
                    break
                tls.stop()
            self.tls = tls
            self.addCleanup(tls.stop)
            sentinel_ports.append(tls.port)
        self.echo6 = None
        if ipv6_loopback_available():
            self.echo6 = EchoServer(host="::1")
            self.addCleanup(self.echo6.stop)
        self.sentinel = Sentinel(sentinel_ports)
        self.addCleanup(self.sentinel.stop)
        self.proxy = self.start_proxy(self.egressd_settings, extra_yaml=self.extra_yaml())

    def start_proxy(self, settings=None, policy_text=None, extra_yaml=None, **kwargs):
        """kwargs go to Egressd as they are (start_timeout, policy_files)."""
        d = tempfile.mkdtemp(dir=self.tmp.name)
        proxy = Egressd(d, policy_text or self.policy_text(), self.dns.port, settings, extra_yaml=extra_yaml,
                        **kwargs)
        self.addCleanup(self._stop_proxy, proxy)
        return proxy

    def _stop_proxy(self, proxy):
        rc = proxy.stop()
        if rc != 0 and rc != -signal.SIGKILL:
            raise AssertionError("egressd exited with %s\nstderr (first 60 lines):\n%s\nlast events:\n%s" % (
                rc, "\n".join(line[:300] for line in proxy.stderr_lines[:60]), proxy.dump_events()))

    def dns_records(self):
        return default_records()

    def extra_yaml(self):
        """Top-level YAML appended to egressd.yaml for the proxy setUp starts (e.g. a proxy_auth block)."""
        return None

    def web_ports(self):
        ports = [self.upstream.port, self.echo.port]
        if self.tls is not None:
            ports.append(self.tls.port)
        return ports

    def policy_text(self):
        ports = _yaml_list(self.web_ports())
        names = ["allowed.test", ".wild.test", "tls.test", "evil.test", "intranet", "rebind.test",
                 ".guard.test", ".dns.test"]
        lo, hi = self.upstream.port, min(self.upstream.port + 3, 65535)
        text = f"""version: 1
mode: enforce
groups:
  web:
    description: the loopback upstreams, by name and by address
    rules:
      - description: test names on the upstream ports
        ports: {ports}
        destinations: {_yaml_list(names)}
      - description: loopback by address (this is what opens 127.0.0.1 through the address guard)
        ports: {ports}
        destinations: [127.0.0.1/32]
"""
        if self.echo6 is not None:
            text += f"""      - description: IPv6 loopback echo only
        ports: [{self.echo6.port}]
        destinations: ["::1/128", allowed.test]
"""
        text += f"""  ranged:
    description: a port range
    rules:
      - description: range.test on a range of ports
        ports: ["{lo}-{hi}"]
        destinations: [range.test]
  old:
    description: a rule that has expired
    rules:
      - description: expired.test, until 2020
        ports: {ports}
        destinations: [expired.test]
        expires: 2020-01-01T00:00:00Z
clients:
  tests:
    description: the test process
    sources: [127.0.0.1/32, "::1/128"]
    groups: [web, ranged, old]
  canary:
    description: the test process from 127.0.0.4, in report mode
    sources: [127.0.0.4/32]
    groups: [web]
    mode: report
deny:
  - description: an evil name that the web group also allows, so the deny list must win
    destinations: [evil.test]
"""
        return text

    # -- helpers ---------------------------------------------------------------------------------------
    def get(self, url, headers=(), method="GET", version="HTTP/1.1", body=b"", conn=None):
        """Sends one absolute-form request; returns the response (on a fresh connection unless conn)."""
        host = urllib.parse.urlsplit(url).netloc
        lines = ["%s %s %s" % (method, url, version), "Host: %s" % host]
        lines += ["%s: %s" % (k, v) for k, v in headers]
        if body:
            lines.append("Content-Length: %d" % len(body))
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        if conn is not None:
            conn.send(data)
            return conn.read_response(method=method)
        with self.proxy.connect() as c:
            c.send(data)
            return c.read_response(method=method)

    def up_url(self, host="allowed.test", path="/hello", port=None):
        return "http://%s:%d%s" % (host, port or self.upstream.port, path)

    def assert_refused(self, resp, status, reason, deny_event=True):
        """Asserts an egressd refusal: status, reason header, request id header, body, and its event."""
        self.assertIsNotNone(resp, "the proxy closed the connection without a response")
        self.assertEqual(resp.status, status, resp)
        self.assertEqual(resp.header("X-Egressd-Reason"), reason, resp)
        rid = resp.header("X-Egressd-Request-Id")
        self.assertTrue(rid and rid != "-", "no request id: %r" % resp)
        self.assertIn(reason.encode(), resp.body)
        if deny_event:
            ev = self.proxy.wait_event(event="egress.deny", request_id=rid)
            self.assertEqual(ev["reason"], reason, ev)
            self.assertEqual(ev["client"], "tests", ev)
        return rid

    def assert_upstreams_untouched(self):
        self.assertEqual(self.upstream.connections, 0, self.upstream.requests)
        self.assertEqual(self.upstream.requests, [])
        self.assertEqual(self.other.connections, 0)
        self.assertEqual(self.echo.connections, 0)
        if self.tls is not None:
            self.assertEqual(self.tls.connections, 0)
        self.assertEqual(self.sentinel.count, 0, self.sentinel.accepted)

    def connect_tunnel(self, authority, conn=None, timeout=5.0):
        c = conn or self.proxy.connect(timeout=timeout)
        c.send("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority))
        return c, c.read_response(method="CONNECT")


def terminate(proc, grace=10):
    """Stops a child the test started: SIGTERM, at most `grace` seconds, then SIGKILL. Returns its exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode


def curl(*args, timeout=20):
    """Runs curl with no proxy variables from the environment; returns the CompletedProcess."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True, timeout=timeout, env=env)


# ---------------------------------------------------------------------------------------------------------
# Reloads, the admin endpoint and metrics


def yaml_str(text):
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(str(text))


def admin_yaml(listen="127.0.0.1:0", token_file=None):
    """An admin section for egressd.yaml (extra_yaml): on a free loopback port unless told otherwise."""
    text = "admin:\n  listen: %s\n" % yaml_str(listen)
    if token_file is not None:
        text += "  token_file: %s\n" % yaml_str(token_file)
    return text


def reload_yaml(watch=True, debounce="500ms"):
    """A reload section for egressd.yaml (extra_yaml)."""
    return "reload:\n  watch: %s\n  debounce: %s\n" % ("true" if watch else "false", debounce)


def rfc3339_in(seconds):
    """The UTC time `seconds` from now (whole seconds, rounded up), as RFC 3339: for a rule's expires."""
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    if t.microsecond:
        t = t.replace(microsecond=0) + datetime.timedelta(seconds=1)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def event_time(event):
    """An event's `time` ("2026-11-21T07:00:00.123Z") as seconds since the epoch."""
    text = event["time"]
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if "." in text else "%Y-%m-%dT%H:%M:%SZ"
    return datetime.datetime.strptime(text, fmt).replace(tzinfo=datetime.timezone.utc).timestamp()


def _unescape_label(value):
    out = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            n = value[i + 1]
            out.append({"n": "\n", "\\": "\\", '"': '"'}.get(n, "\\" + n))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def parse_metrics(text):
    """Prometheus text exposition -> [(name, {label: value}, float value)], comments skipped."""
    sample_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$')
    label_re = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')
    samples = []
    for line in text.split("\n"):
        if not line.strip() or line.startswith("#"):
            continue
        m = sample_re.match(line)
        if m is None:
            raise AssertionError("not a sample line: %r" % line)
        labels = {}
        body = m.group(3) or ""
        pos = 0
        for _ in range(1000):
            if pos >= len(body):
                break
            lm = label_re.match(body, pos)
            if lm is None:
                raise AssertionError("bad labels in %r" % line)
            labels[lm.group(1)] = _unescape_label(lm.group(2))
            pos = lm.end()
        value = m.group(4)
        samples.append((m.group(1), labels, float({"+Inf": "inf", "-Inf": "-inf"}.get(value, value))))
    return samples


def metric_value(samples, name, **labels):
    """The sum of the samples called `name` whose labels include `labels`; None if there is no such sample."""
    found = [v for n, l, v in samples if n == name and all(l.get(k) == str(x) for k, x in labels.items())]
    return sum(found) if found else None


PROMTOOL = "/usr/bin/promtool"


def promtool_check(text):
    """`promtool check metrics` on the text; the CompletedProcess. Fails (never skips) without promtool."""
    tool = PROMTOOL if os.path.exists(PROMTOOL) else shutil.which("promtool")
    if tool is None:
        raise AssertionError("promtool is not installed (Debian package prometheus): it must check /metrics")
    return subprocess.run([tool, "check", "metrics"], input=text.encode("utf-8"), capture_output=True, timeout=30)


# ---------------------------------------------------------------------------------------------------------
# Access requests and approvals: credentials, the approvals section, the JSON API, a webhook receiver


def passwd_line(user, password):
    """The credentials-file line `egressd passwd USER` prints (the password on its standard input).

    Each line costs a full PBKDF2 run (600,000 iterations, over a second on a busy machine), and every test
    process would make the same ones again: lines are kept in a cache in the temporary directory, one file per
    binary (path and modification time), user and password, written by rename so that parallel tests never read
    half a line."""
    import hashlib
    binary = egressd_binary()
    key = hashlib.sha256(("%s\0%d\0%s\0%s" % (os.path.realpath(binary), os.stat(binary).st_mtime_ns, user,
                                                password)).encode()).hexdigest()
    cache = os.path.join(tempfile.gettempdir(), "egressd-e2e-passwd")
    path = os.path.join(cache, key)
    try:
        with open(path) as f:
            line = f.read().strip()
        if line.startswith(user + ":$pbkdf2-sha256$"):
            return line
    except OSError:
        pass
    proc = subprocess.run([binary, "passwd", user], input=(password + "\n").encode(), capture_output=True,
                          timeout=60)
    if proc.returncode != 0:
        raise AssertionError("egressd passwd %s failed: %r" % (user, proc.stderr))
    line = proc.stdout.decode().strip()
    try:
        os.makedirs(cache, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache)
        with os.fdopen(fd, "w") as f:
            f.write(line + "\n")
        os.rename(tmp, path)
    except OSError:
        pass  # no cache: the next test makes its own line
    return line


def write_credentials(path, users):
    """A credentials file for {user: password}, made with egressd passwd; returns path."""
    with open(path, "w") as f:
        for user, password in users.items():
            f.write(passwd_line(user, password) + "\n")
    return path


def free_port(host="127.0.0.1"):
    """A port that was free on host a moment ago (for a listener whose address must be known beforehand)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def approvals_yaml(store, approvers=None, requesters=None, listen="127.0.0.1:0", notify=(), **settings):
    """An approvals section for egressd.yaml (extra_yaml). settings: other keys as they are (public_url,
    default_grant, max_grant, ...; a dict value becomes a nested mapping). notify: dicts with url, format,
    secret_file, events."""
    lines = ["approvals:", "  listen: %s" % yaml_str(listen), "  store: %s" % yaml_str(store)]
    if approvers is not None:
        lines.append("  approvers: %s" % yaml_str(approvers))
    if requesters is not None:
        lines.append("  requesters: %s" % yaml_str(requesters))
    for k, v in settings.items():
        if isinstance(v, dict):
            lines.append("  %s:" % k)
            lines += ["    %s: %s" % (kk, json.dumps(vv)) for kk, vv in v.items()]
        else:
            lines.append("  %s: %s" % (k, json.dumps(v) if not isinstance(v, str) else yaml_str(v)))
    if notify:
        lines.append("  notify:")
        for hook in notify:
            first = True
            for k, v in hook.items():
                lines.append("    %s %s: %s" % ("-" if first else " ", k, json.dumps(v)))
                first = False
    return "\n".join(lines) + "\n"


def approvals_address(proxy, timeout=5.0):
    """(host, port) of the approvals listener, from egressd.approvals_listening."""
    ev = proxy.wait_event(event="egressd.approvals_listening", timeout=timeout)
    host, _, port = ev["address"].rpartition(":")
    return host.strip("[]"), int(port)


class ApiResponse:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # [(name, value)]
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<ApiResponse %s headers=%r body=%r>" % (self.status, self.headers, self.body[:400])


class ApprovalsClient:
    """The approvals listener's JSON API (and pages), over plain HTTP/1.1 on loopback, never through a proxy."""

    def __init__(self, host, port, user=None, password=None, timeout=10.0):
        self.host, self.port, self.user, self.password, self.timeout = host, port, user, password, timeout

    def as_user(self, user, password):
        return ApprovalsClient(self.host, self.port, user, password, self.timeout)

    @property
    def base_url(self):
        return "http://%s:%d" % (self.host, self.port)

    def request(self, method, path, body=None, headers=(), content_type=None, auth=True):
        """One request on a fresh connection. body: a dict (sent as JSON), bytes, or None."""
        import base64
        import http.client
        hdrs = {"Connection": "close"}
        data = None
        if isinstance(body, dict):
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        elif body is not None:
            data = body
        elif method == "POST":
            data = b""
            hdrs["Content-Type"] = "application/json"
        if content_type is not None:
            hdrs["Content-Type"] = content_type
        if auth and self.user is not None:
            token = base64.b64encode(("%s:%s" % (self.user, self.password)).encode()).decode()
            hdrs["Authorization"] = "Basic " + token
        for k, v in headers:
            hdrs[k] = v
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            return ApiResponse(resp.status, resp.getheaders(), resp.read())
        finally:
            conn.close()

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, body=None, **kwargs):
        return self.request("POST", path, body=body, **kwargs)

    def ok(self, method, path, body=None):
        """The JSON of a 2xx answer; anything else is an AssertionError naming the answer."""
        resp = self.request(method, path, body=body)
        if not 200 <= resp.status < 300:
            raise AssertionError("%s %s as %s: %r" % (method, path, self.user, resp))
        return resp.json

    def requests(self, state=None):
        return self.ok("GET", "/api/v1/requests" + ("?state=%s" % state if state else ""))["requests"]

    def grants(self, state=None):
        return self.ok("GET", "/api/v1/grants" + ("?state=%s" % state if state else ""))["grants"]

    def approve(self, request_id, **fields):
        return self.post("/api/v1/requests/%s/approve" % request_id, body=fields)

    def justify(self, request_id, text):
        return self.post("/api/v1/requests/%s/justify" % request_id, body={"text": text})

    def deny(self, request_id, note=""):
        return self.post("/api/v1/requests/%s/deny" % request_id, body={"note": note})

    def revoke(self, grant_id, note=""):
        return self.post("/api/v1/grants/%s/revoke" % grant_id, body={"note": note})

    def extend(self, grant_id, duration, note=""):
        return self.post("/api/v1/grants/%s/extend" % grant_id, body={"duration": duration, "note": note})


class WebhookReceiver:
    """A loopback HTTP server that records every POST (headers, body, arrival time) and answers with the next
    status of `statuses` (then 200 for ever)."""

    def __init__(self, statuses=()):
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.posts = []  # {"path", "headers": {lower name: value}, "body", "time", "status"}
        self.statuses = list(statuses)
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n > 0 else b""
                with receiver.cond:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.posts.append({"path": self.path, "body": body, "time": time.monotonic(),
                                           "headers": {k.lower(): v for k, v in self.headers.items()},
                                           "status": status})
                    receiver.cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(b"ok")
                self.close_connection = True

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d/hook" % self.port
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="webhook-%d" % self.port, daemon=True)
        self._thread.start()

    def wait_posts(self, count, pred=None, timeout=10.0):
        """The posts matching pred once there are `count` of them (fewer on timeout)."""
        deadline = time.monotonic() + timeout
        for _ in range(100000):
            with self.cond:
                found = [p for p in self.posts if pred is None or pred(p)]
                remaining = deadline - time.monotonic()
                if len(found) >= count or remaining <= 0:
                    return found
                self.cond.wait(timeout=min(remaining, 0.1))
        return []

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
