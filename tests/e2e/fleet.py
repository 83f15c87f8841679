"""A fleet of egressd replicas behind HAProxy, started from the shipped deploy/haproxy/egressd.cfg.

The shipped file names example addresses and ports (HAProxy on 10.0.1.10:3128, replicas on 10.0.2.11 to .13,
proxy port 3128, admin port 9090). `templated_config` replaces exactly those and nothing else, so the file users
copy is the file tested: here HAProxy listens on 127.0.0.1 and the replicas on 127.0.1.1 to 127.0.1.3, all on one
free proxy port, the replicas' admin endpoints on one free admin port. A second file given to HAProxy before the
shipped one holds what Debian's /etc/haproxy/haproxy.cfg would: a `global` section (logging to stdout, a stats
socket the test reads server states from).

Only the Python 3 standard library is used. Every loop is bounded in count and in time.
"""

import csv
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import unittest

import harness

SHIPPED_CONFIG = os.path.join(harness.REPO, "deploy", "haproxy", "egressd.cfg")
HAPROXY = "/usr/sbin/haproxy"
BACKEND = "egressd_replicas"

SHIPPED_HAPROXY_ADDRESS = "10.0.1.10"
SHIPPED_REPLICA_ADDRESSES = ["10.0.2.11", "10.0.2.12", "10.0.2.13"]
SHIPPED_SERVER_NAMES = ["egressd-1", "egressd-2", "egressd-3"]
SHIPPED_PROXY_PORT = 3128
SHIPPED_ADMIN_PORT = 9090

HAPROXY_ADDRESS = "127.0.0.1"
REPLICA_ADDRESSES = ["127.0.1.1", "127.0.1.2", "127.0.1.3"]

IPV4_WITH_PORT = re.compile(r"\b(\d{1,3}(?:\.\d{1,3}){3}):(\d+)\b")
CHECK_PORT = re.compile(r"\bport (\d+)\b")
IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")


def haproxy_binary():
    path = HAPROXY if os.path.exists(HAPROXY) else shutil.which("haproxy")
    if path is None:
        raise unittest.SkipTest("HAProxy is not installed (Debian package haproxy; scripts/bootstrap installs it)")
    return path


def templated_config(text, addresses, ports):
    """The shipped configuration with its addresses and ports replaced through the two maps ({"10.0.1.10":
    "127.0.0.1"}, {3128: 40000}). Only directive lines are touched (comments keep their examples); an address or
    port on a directive line that the maps do not name is an error, so a changed shipped file fails here loudly
    rather than being tested half templated."""
    used_addresses = set()
    used_ports = set()

    def address_port(m):
        if m.group(1) not in addresses or int(m.group(2)) not in ports:
            raise AssertionError("%s names %s:%s, which the test does not know how to place" % (
                SHIPPED_CONFIG, m.group(1), m.group(2)))
        used_addresses.add(m.group(1))
        used_ports.add(int(m.group(2)))
        return "%s:%d" % (addresses[m.group(1)], ports[int(m.group(2))])

    def check_port(m):
        if int(m.group(1)) not in ports:
            raise AssertionError("%s checks port %s, which the test does not know" % (SHIPPED_CONFIG, m.group(1)))
        used_ports.add(int(m.group(1)))
        return "port %d" % ports[int(m.group(1))]

    out = []
    for line in text.split("\n"):
        if line.lstrip().startswith("#"):
            out.append(line)
            continue
        line = CHECK_PORT.sub(check_port, IPV4_WITH_PORT.sub(address_port, line))
        stray = [a for a in IPV4.findall(line) if a not in addresses.values()]
        if stray:
            raise AssertionError("%s names %s without a port: %r" % (SHIPPED_CONFIG, stray, line))
        out.append(line)
    missing = (set(addresses) - used_addresses, set(ports) - used_ports)
    if missing[0] or missing[1]:
        raise AssertionError("%s no longer names %s: the test's map is out of date" % (SHIPPED_CONFIG, missing))
    return "\n".join(out)


def ports_free(port, hosts):
    for host in hosts:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((host, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def common_free_port(hosts):
    """A port that was free on every one of hosts a moment ago."""
    for _ in range(50):
        port = harness.free_port(hosts[0])
        if ports_free(port, hosts[1:]):
            return port
    raise AssertionError("no port free on all of %s" % hosts)


class HaProxy:
    """/usr/sbin/haproxy -db on a test global section plus the templated shipped configuration."""

    def __init__(self, directory, proxy_port, admin_port):
        self.directory = directory
        self.socket_path = os.path.join(directory, "haproxy.sock")
        self.log_path = os.path.join(directory, "haproxy.log")
        global_path = os.path.join(directory, "global.cfg")
        with open(global_path, "w") as f:
            f.write("global\n    log stdout format raw local0\n    stats socket %s level admin\n" % self.socket_path)
        addresses = {SHIPPED_HAPROXY_ADDRESS: HAPROXY_ADDRESS}
        addresses.update(zip(SHIPPED_REPLICA_ADDRESSES, REPLICA_ADDRESSES))
        with open(SHIPPED_CONFIG) as f:
            text = templated_config(f.read(), addresses, {SHIPPED_PROXY_PORT: proxy_port,
                                                          SHIPPED_ADMIN_PORT: admin_port})
        self.config_path = os.path.join(directory, "egressd.cfg")
        with open(self.config_path, "w") as f:
            f.write(text)
        self.log = open(self.log_path, "wb")
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        self.proc = subprocess.Popen([haproxy_binary(), "-db", "-f", global_path, "-f", self.config_path],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env, cwd=directory)

    def command(self, text, timeout=2.0):
        """One command on the stats socket; its answer."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(self.socket_path)
            s.sendall(text.encode() + b"\n")
            chunks = []
            for _ in range(10000):
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
            return b"".join(chunks).decode("utf-8", "replace")
        finally:
            s.close()

    def server_states(self):
        """{server name: status ("UP", "DOWN", "UP 1/2", ...)} of the replicas' backend; {} while starting."""
        try:
            text = self.command("show stat")
        except OSError:
            return {}
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {r["svname"]: r["status"] for r in rows if r.get("pxname") == BACKEND and
                r.get("svname") not in ("BACKEND", "FRONTEND")}

    def wait_states(self, pred, timeout):
        """The server states once pred(states) holds; raises with the states and HAProxy's log otherwise."""
        deadline = time.monotonic() + timeout
        states = {}
        for _ in range(100000):
            if self.proc.poll() is not None:
                raise AssertionError("HAProxy exited with %s:\n%s" % (self.proc.returncode, self.log_tail()))
            states = self.server_states()
            if states and pred(states):
                return states
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        raise AssertionError("HAProxy's servers did not reach the expected states within %.1fs: %r\n%s" % (
            timeout, states, self.log_tail()))

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join(f.read().decode("utf-8", "replace").split("\n")[-lines:])
        except OSError:
            return ""

    def stop(self):
        harness.terminate(self.proc)
        self.log.close()


class Fleet:
    """Three egressd replicas (each trusting PROXY headers from HAProxy's address only) and HAProxy in front.

    replicas[i] is the running harness.Egressd of replica i (server SHIPPED_SERVER_NAMES[i]); every process a
    replica ever ran is kept in history[i], so that events can be looked up after a restart."""

    def __init__(self, directory, dns_port, policy_text, timeouts):
        self.directory = directory
        self.dns_port = dns_port
        self.policy_text = policy_text
        self.timeouts = dict(timeouts)
        self.proxy_port = common_free_port([HAPROXY_ADDRESS] + REPLICA_ADDRESSES)
        self.admin_port = common_free_port(REPLICA_ADDRESSES)
        self.replicas = [None] * len(REPLICA_ADDRESSES)
        self.history = [[] for _ in REPLICA_ADDRESSES]
        self.haproxy = None
        self._starts = 0

    def start(self):
        for i in range(len(REPLICA_ADDRESSES)):
            self.start_replica(i)
        self.haproxy = HaProxy(self.directory, self.proxy_port, self.admin_port)
        self.wait_all_up()

    def start_replica(self, i):
        self._starts += 1
        d = os.path.join(self.directory, "replica-%d-%d" % (i + 1, self._starts))
        os.mkdir(d)
        listener = {"address": "%s:%d" % (REPLICA_ADDRESSES[i], self.proxy_port),
                    "proxy_protocol": {"trusted": ["%s/32" % HAPROXY_ADDRESS]}}
        replica = harness.Egressd(d, self.policy_text, self.dns_port,
                                  {"listeners": [listener], "timeouts": self.timeouts},
                                  extra_yaml=harness.admin_yaml("%s:%d" % (REPLICA_ADDRESSES[i], self.admin_port)))
        self.replicas[i] = replica
        self.history[i].append(replica)
        return replica

    def wait_all_up(self, timeout=15.0):
        return self.haproxy.wait_states(lambda s: all(s.get(n) == "UP" for n in SHIPPED_SERVER_NAMES), timeout)

    def wait_server(self, i, status, timeout):
        return self.haproxy.wait_states(lambda s: s.get(SHIPPED_SERVER_NAMES[i]) == status, timeout)

    def replica_of(self, source_port, timeout=5.0, event="egress.allow"):
        """The index of the replica that decided the connection from local port `source_port` (its PROXY header
        names that port), from its events; None if none did within timeout."""
        deadline = time.monotonic() + timeout
        for _ in range(10000):
            for i, processes in enumerate(self.history):
                for p in processes:
                    if p.events(lambda e: e.get("event") == event and
                                e.get("source", "").endswith(":%d" % source_port)):
                        return i
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
        return None

    def events(self, pred=None, **fields):
        """Every event of every replica process, as (replica index, event)."""
        return [(i, e) for i, processes in enumerate(self.history) for p in processes for e in p.events(pred, **fields)]

    def connect(self, source, timeout=5.0):
        return harness.HttpConn(self.proxy_port, HAPROXY_ADDRESS, timeout=timeout, source=source)

    def stop(self):
        """Stops HAProxy and every replica; returns the replicas' exit statuses that were neither 0 nor SIGKILL."""
        if self.haproxy is not None:
            self.haproxy.stop()
        processes = [p for ps in self.history for p in ps]
        # All at once: each waits out its drain_delay, and in turn that would add up. Waited for without a second
        # SIGTERM, which could land after egressd has let go of its signal handlers on the way out.
        for p in processes:
            p.signal(signal.SIGTERM)
        bad = []
        for p in processes:
            p.wait_exit(timeout=30)
            rc = p.stop()
            if rc not in (0, -signal.SIGKILL):
                bad.append((p.directory, rc, p.stderr_lines[:20]))
        return bad
