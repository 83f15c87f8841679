"""A real Squid for e2e tests: a configuration file run as it is, listening on 127.0.0.1 at a free port.

The configuration is copied into a directory of its own with its http_port lines replaced by one loopback port,
and a few lines appended (later lines win in squid.conf) that keep Squid's files in that directory and its
names on loopback: see Squid.TAIL. Squid starts in the directory the test names (relative includes, ACL files
and helper arguments are relative to it), in the foreground (-N) under a service name of its own (-n: two
Squids never share a shared-memory segment), and is stopped by its PID.

As root, Squid drops privileges to its cache_effective_user (Debian: proxy), which a user namespace mapping only
root cannot provide: a test module using this server calls isolate_network() here first (a network namespace
without a user namespace, as postgres_server does), and otherwise runs on the host's loopback, Squid as the
current user.
"""

import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import harness
import postgres_server

SQUID = "/usr/sbin/squid"

# GnuTLS builds of Squid (Debian's) parse ssl_bump and ignore it with this error; anything else is a fault.
TOLERATED_PARSE_ERRORS = ("ERROR: 'ssl_bump' requires --with-openssl",)

isolate_network = postgres_server.isolate_network


def isolated():
    """True when this process has a network namespace of its own (nothing but loopback is reachable)."""
    return os.environ.get("EGRESSD_E2E_NETNS") == "1"


def squid_binary():
    if os.path.exists(SQUID):
        return SQUID
    found = shutil.which("squid")
    if found is None:
        raise unittest.SkipTest("Squid is not installed (Debian package squid; scripts/bootstrap installs it)")
    return found


def parse(conf, cwd, timeout=30):
    """`squid -k parse -f conf` run in cwd. Returns (ok, output): ok when Squid exits 0 and reports no error
    beyond TOLERATED_PARSE_ERRORS."""
    done = subprocess.run([squid_binary(), "-k", "parse", "-f", conf], cwd=cwd, capture_output=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    output = (done.stdout + done.stderr).decode("utf-8", "replace")
    faults = [line for line in output.splitlines()
              if re.search(r"\b(FATAL|ERROR|WARNING)\b", line) and not any(t in line for t in TOLERATED_PARSE_ERRORS)]
    return done.returncode == 0 and not faults, output


def hosts_text(names, literals):
    """A hosts file: every name resolves to 127.0.0.1; every IP literal (and loopback) has a reverse name no rule
    names. Squid compares a dstdomain ACL with the reverse name of a request's IP address (unless -n); egressd never
    does, and a reverse lookup that no server answers would cost Squid its DNS timeout for each such request. Squid
    keeps the last line's name for an address, so the literals come last."""
    lines = ["127.0.0.1 %s" % name for name in sorted(set(names))]
    for address in sorted(set(literals) | {"127.0.0.1", "::1"}):
        lines.append("%s no-reverse-name.invalid" % address)
    return "\n".join(lines) + "\n"


class Squid:
    """One Squid process running `conf` (its original text, http_port aside) from the directory `cwd`."""

    # Appended after the configuration: files in our directory, no pinger or netdb, names from our hosts file only
    # (the name server is loopback, never asked for a name the hosts file has), no shutdown delay.
    TAIL = """
# --- appended by tests/e2e/squid_server.py ---
pid_filename {dir}/squid.pid
cache_log {dir}/cache.log
access_log stdio:{dir}/access.log
cache_store_log none
coredump_dir none
netdb_filename none
pinger_enable off
hosts_file {dir}/hosts
dns_nameservers 127.0.0.1
shutdown_lifetime 0 seconds
visible_hostname squid-e2e
"""

    def __init__(self, conf, cwd, hosts, start_timeout=20.0):
        self.cwd = cwd
        # Its own top-level directory: as root, Squid runs as cache_effective_user, who must write here (a test's
        # 0700 directory owned by root would not let it in).
        self.dir = tempfile.mkdtemp(prefix="egressd-squid-")
        self.name = "e2e%d" % os.getpid()
        self.proc = None
        with open(conf) as f:
            self.original = f.read()
        with open(os.path.join(self.dir, "hosts"), "w") as f:
            f.write(hosts)
        if os.geteuid() == 0:
            user = pwd.getpwnam(self.effective_user())
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            os.chown(os.path.join(self.dir, "hosts"), user.pw_uid, user.pw_gid)
        for _ in range(5):
            self.port = harness.free_port()
            if self._start(start_timeout):
                return
        raise AssertionError("Squid did not start:\n%s" % self.log())

    def effective_user(self):
        m = re.findall(r"^\s*cache_effective_user\s+(\S+)", self.original, re.M)
        return m[-1] if m else "proxy"

    def config_text(self):
        """The original text with its http_port lines replaced by ours (the first) or commented out."""
        out = []
        replaced = False
        for line in self.original.splitlines():
            if re.match(r"\s*http_port\s", line):
                out.append("# (e2e) " + line if replaced else "http_port 127.0.0.1:%d" % self.port)
                replaced = True
            else:
                out.append(line)
        if not replaced:
            out.append("http_port 127.0.0.1:%d" % self.port)
        return "\n".join(out) + "\n" + self.TAIL.format(dir=self.dir)

    def _start(self, timeout):
        self.conf = os.path.join(self.dir, "squid.conf")
        with open(self.conf, "w") as f:
            f.write(self.config_text())
        log = open(os.path.join(self.dir, "stdout.log"), "ab")
        try:
            self.proc = subprocess.Popen([squid_binary(), "-n", self.name, "-N", "-f", self.conf], cwd=self.cwd,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        for _ in range(10000):
            if "Accepting HTTP Socket connections" in self.log():
                return True
            if self.proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.stop()
        return False

    def log(self):
        out = []
        for name in ("cache.log", "stdout.log"):
            try:
                with open(os.path.join(self.dir, name), "rb") as f:
                    out.append(f.read().decode("utf-8", "replace"))
            except OSError:
                pass
        return "\n".join(out)[-6000:]

    def access_log(self):
        try:
            with open(os.path.join(self.dir, "access.log")) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc is None:
            return None
        rc = harness.terminate(self.proc)
        self.proc = None
        return rc

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        # Squid removes its shared-memory segments when it exits, not when it is killed.
        for path in glob.glob("/dev/shm/%s-*" % self.name):
            try:
                os.unlink(path)
            except OSError:
                pass
