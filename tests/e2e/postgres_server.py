"""A real PostgreSQL server for e2e tests: initdb into a fresh directory, postgres on 127.0.0.1 at a free port (and a
socket directory of its own), stopped by its PID. Debian's postgresql package provides the binaries
(/usr/lib/postgresql/<version>/bin, the newest there) unless EGRESSD_PG_BIN names a directory.

As root, initdb and postgres run as the `postgres` system user (initdb refuses root). That user does not exist in
the user namespace harness.isolate_network() makes (`unshare -rn` maps root only), so a test module using this
server calls isolate_network() here before harness's: as root, a network namespace without a user namespace
(`unshare -n`); otherwise the host's loopback (PostgreSQL runs as the current user, and every address is still
127.0.0.1).
"""

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


def isolate_network():
    if os.environ.get("EGRESSD_E2E_NETNS"):
        return
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None or not hasattr(sys, "orig_argv"):
        os.environ["EGRESSD_E2E_NETNS"] = "off"
        return
    try:
        probe = subprocess.run([unshare, "-n", "true"], capture_output=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        probe = None
    if probe is None or probe.returncode != 0:
        os.environ["EGRESSD_E2E_NETNS"] = "off"
        return
    # harness.isolate_network() then only brings the new namespace's loopback up.
    os.environ["EGRESSD_E2E_NETNS"] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(unshare, [unshare, "-n", "--", sys.executable] + list(sys.orig_argv[1:]))


def find_bin():
    env = os.environ.get("EGRESSD_PG_BIN")
    if env:
        return env
    found = []
    for path in glob.glob("/usr/lib/postgresql/*/bin/postgres"):
        version = os.path.basename(os.path.dirname(os.path.dirname(path)))
        if version.isdigit():
            found.append((int(version), os.path.dirname(path)))
    if not found:
        raise unittest_skip("no PostgreSQL server binaries (install Debian's postgresql, or set EGRESSD_PG_BIN)")
    return max(found)[1]


def unittest_skip(reason):
    import unittest
    return unittest.SkipTest(reason)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def children_of(parent):
    """The pids of the processes whose parent is `parent`, from /proc."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                text = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ')'.
        fields = text[text.rfind(")") + 1:].split()
        if len(fields) > 1 and int(fields[1]) == parent:
            out.append(int(name))
    return out


class PostgresServer:
    """initdb + postgres; start()/stop() may be repeated (same port, same data). cleanup() stops and removes."""

    def __init__(self, fsync=False):
        self.bin = find_bin()
        self.fsync = fsync
        # Its own top-level directory: the postgres user must be able to reach it, which a test's 0700
        # directory owned by root would not allow.
        self.dir = tempfile.mkdtemp(prefix="egressd-pg-")
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "postgres.log")
        self.user = None
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise unittest_skip("running as root, but there is no postgres user to run PostgreSQL as")
            self.user = (pw.pw_uid, pw.pw_gid)
            try:
                os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            except OSError as e:
                shutil.rmtree(self.dir, ignore_errors=True)
                # A user namespace that maps root only (another module's `unshare -rn` ran first).
                raise unittest_skip("cannot hand a directory to the postgres user (%s): run this module on its "
                                    "own, as ctest does" % e)
        self.port = free_port()
        self.proc = None
        self._run([os.path.join(self.bin, "initdb"), "-D", self.data, "-A", "trust", "-U", "postgres", "-E", "UTF8",
                   "--no-sync", "--no-instructions"], timeout=120)
        self.start()

    def _as_owner(self):
        if self.user is None:
            return {}
        return {"user": self.user[0], "group": self.user[1], "extra_groups": []}

    def _run(self, argv, timeout):
        with open(self.log_path, "ab") as log:
            done = subprocess.run(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, timeout=timeout,
                                  **self._as_owner())
        if done.returncode != 0:
            raise AssertionError("%s failed (exit %d):\n%s" % (argv[0], done.returncode, self.log()))

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    def url(self, database="postgres"):
        return "postgresql://postgres@127.0.0.1:%d/%s" % (self.port, database)

    def start(self, timeout=30.0):
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [os.path.join(self.bin, "postgres"), "-D", self.data, "-p", str(self.port),
                 "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + self.dir,
                 "-c", "fsync=" + ("on" if self.fsync else "off"), "-c", "max_connections=60"],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, **self._as_owner())
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        for _ in range(10000):
            if self.proc.poll() is not None:
                raise AssertionError("postgres exited with %s:\n%s" % (self.proc.returncode, self.log()))
            ready = subprocess.run([os.path.join(self.bin, "pg_isready"), "-q", "-h", "127.0.0.1", "-p",
                                    str(self.port), "-U", "postgres", "-d", "postgres"], timeout=10)
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.stop(signal.SIGKILL)
        raise AssertionError("postgres did not accept connections within %.0f s:\n%s" % (timeout, self.log()))

    def stop(self, sig=signal.SIGQUIT):
        """SIGQUIT: immediate shutdown (no checkpoint: recovery at the next start); SIGKILL: a crash, of the
        postmaster and its children: a backend outliving its postmaster answers on its connection for a moment
        longer. Each child is a session of its own (PostgreSQL calls setsid()), so they are found by their parent,
        before it dies."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            children = children_of(self.proc.pid) if sig == signal.SIGKILL else []
            self.proc.send_signal(sig)
            for child in children:
                try:
                    os.kill(child, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.proc = None

    def psql(self, sql, database="postgres"):
        """Runs sql as the superuser; returns psql's unaligned output."""
        done = subprocess.run([os.path.join(self.bin, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                               "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database, "-c", sql],
                              capture_output=True, timeout=30)
        if done.returncode != 0:
            raise AssertionError("psql %r: %s" % (sql, done.stderr.decode("utf-8", "replace")))
        return done.stdout.decode("utf-8", "replace").strip()

    def create_database(self, name):
        self.psql("CREATE DATABASE %s STRATEGY = FILE_COPY" % name)
        return self.url(name)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
