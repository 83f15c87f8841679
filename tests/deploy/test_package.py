"""The Debian package: `cpack -G DEB` of this build, installed with apt into a copy of a fresh Debian 12 root
(EGRESSD_TEST_ROOTFS, which already holds the runtime libraries) with no network at all, then used there: the
binary on PATH, the shipped configuration checked, the man pages, the user egressd and its directories, the unit
enabled the Debian way, and a short real run as the user egressd with the installed configuration (on loopback
ports the test picks), reached from the host, stopped by its PID. Then removal keeps the configuration and purge
deletes it. Needs root (chroot, network namespace) and the test root; skips without."""

import fcntl
import gzip
import os
import re
import shutil
import signal
import subprocess
import tempfile
import unittest
import urllib.request
from pathlib import Path

from host_support import BUILD_DIR, MAN_PAGES, TEST_ROOTFS, Process, denied_request

CHROOT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
              "DEBIAN_FRONTEND": "noninteractive", "HOME": "/root"}


def skip_reason():
    if os.geteuid() != 0:
        return "needs root (chroot into a Debian 12 root)"
    if not (TEST_ROOTFS / ".egressd-test-rootfs").exists():
        return f"no test root at {TEST_ROOTFS} (scripts/test-rootfs makes it)"
    for tool in ("cpack", "dpkg-shlibdeps", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (apt-get install cmake dpkg-dev util-linux)"
    return None


def build_package(directory):
    """cpack -G DEB of the build tree into directory. cpack first runs the tree's preinstall target: one cpack at a
    time, so that two tests never build in the same tree at once."""
    with open(BUILD_DIR / "CPackConfig.cmake") as config_file:
        fcntl.flock(config_file, fcntl.LOCK_EX)
        result = subprocess.run(["cpack", "-G", "DEB", "--config", str(BUILD_DIR / "CPackConfig.cmake"), "-B",
                                 str(directory)], cwd=BUILD_DIR, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise AssertionError("cpack failed:\n" + result.stdout[-3000:] + result.stderr[-3000:])
    packages = sorted(Path(directory).glob("egressd_*_amd64.deb"))
    if len(packages) != 1:
        raise AssertionError(f"expected one egressd_<version>_amd64.deb in {directory}: {packages}")
    return packages[0]


@unittest.skipIf(skip_reason(), skip_reason())
class PackageTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="egressd-deb-", dir="/var/tmp")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.deb = build_package(Path(self.tmp) / "package")
        self.root = Path(self.tmp) / "root"
        subprocess.run(["cp", "-a", "--reflink=auto", str(TEST_ROOTFS), str(self.root)], check=True, timeout=300)
        shutil.copy(self.deb, self.root / "tmp" / self.deb.name)

    def chroot(self, *argv, user=None, check=True, timeout=120):
        """A command in the root, in a network namespace of its own: nothing it does can reach a network."""
        command = ["unshare", "--net", "chroot"]
        if user:
            command.append(f"--userspec={user}:{user}")
        result = subprocess.run(command + [str(self.root), *argv], env=CHROOT_ENV, capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
        return result

    def apt_install(self):
        result = self.chroot("apt-get", "install", "-y", "--no-install-recommends", f"/tmp/{self.deb.name}",
                             timeout=300)
        self.assertIn("Setting up egressd", result.stdout)
        return result

    def test_package_metadata(self):
        fields = subprocess.run(["dpkg-deb", "-f", str(self.deb)], capture_output=True, text=True, check=True).stdout
        self.assertRegex(self.deb.name, r"^egressd_\d+\.\d+\.\d+_amd64\.deb$")
        depends = re.search(r"^Depends: (.*)$", fields, re.M).group(1)
        # Computed by dpkg-shlibdeps from the binary, not written by hand.
        for library in ("libc6", "libssl3", "libyaml-cpp0.7", "libc-ares2", "libsystemd0", "libpq5", "libsqlite3-0"):
            self.assertIn(library, depends)
        conffiles = subprocess.run(["dpkg-deb", "--ctrl-tarfile", str(self.deb)], capture_output=True, check=True)
        listed = subprocess.run(["tar", "-xO", "./conffiles"], input=conffiles.stdout, capture_output=True,
                                check=True).stdout.decode().split()
        contents = subprocess.run(["dpkg-deb", "-c", str(self.deb)], capture_output=True, text=True,
                                  check=True).stdout
        etc_files = re.findall(r"^-\S+ \S+ +\d+ \S+ \S+ \.(/etc/\S+)$", contents, re.M)
        self.assertTrue(etc_files)
        self.assertEqual(sorted(listed), sorted(etc_files), "every file under /etc is a conffile")
        for path in ["/usr/bin/egressd", "/usr/lib/systemd/system/egressd.service", "/etc/logrotate.d/egressd"] + \
                [f"/usr/share/man/{section}/{page}.gz" for page, section in MAN_PAGES.items()]:
            self.assertIn("." + path + "\n", contents)

    def test_install_and_run(self):
        self.apt_install()
        version = self.chroot("egressd", "--version").stdout
        self.assertRegex(version, r"^egressd \d+\.\d+\.\d+")
        self.assertIn("valid", self.chroot("egressd", "config", "check", "/etc/egressd/egressd.yaml").stdout)

        # The man pages, without man: installed where man looks, compressed, each a page of its own name.
        for page, section in MAN_PAGES.items():
            roff = gzip.decompress((self.root / "usr/share/man" / section / (page + ".gz")).read_bytes()).decode()
            self.assertIn(f'.TH "{page.rsplit(".", 1)[0].upper()}" "{page[-1]}"', roff)

        # The user, its directories, the password files readable through its group only.
        user = self.chroot("getent", "passwd", "egressd").stdout.strip().split(":")
        self.assertEqual(user[5], "/var/lib/egressd")
        self.assertEqual(user[6], "/usr/sbin/nologin")
        uid, gid = int(user[2]), int(user[3])
        self.assertLess(uid, 1000)
        for directory in ("var/lib/egressd", "var/log/egressd"):
            status = (self.root / directory).stat()
            self.assertEqual((status.st_uid, status.st_gid, status.st_mode & 0o777), (uid, gid, 0o750), directory)
        for name in ("approvers.passwd", "requesters.passwd"):
            status = (self.root / "etc/egressd" / name).stat()
            self.assertEqual((status.st_uid, status.st_gid, status.st_mode & 0o777), (0, gid, 0o640), name)
        # Enabled on a first install, as Debian does (deb-systemd-helper is in the root); nothing started (no systemd).
        wants = self.root / "etc/systemd/system/multi-user.target.wants/egressd.service"
        self.assertTrue(wants.is_symlink())
        # /lib or /usr/lib: the same directory on Debian 12's merged /usr.
        self.assertIn(os.readlink(wants), ["/lib/systemd/system/egressd.service",
                                           "/usr/lib/systemd/system/egressd.service"])
        self.assertTrue((self.root / os.readlink(wants).lstrip("/")).is_file())
        conffiles = self.chroot("dpkg-query", "-W", "-f=${Conffiles}", "egressd").stdout
        self.assertIn("/etc/egressd/egressd.yaml", conffiles)

        # A short real run of the installed binary with the installed configuration, on ports the kernel picks.
        installed = (self.root / "etc/egressd/egressd.yaml").read_text()
        test_config = installed
        for old, new in [('  - 127.0.0.1:3128\n  - "[::1]:3128"\n', "  - 127.0.0.1:0\n"),
                         ("listen: 127.0.0.1:9090", "listen: 127.0.0.1:0"),
                         ("listen: 127.0.0.1:9091", "listen: 127.0.0.1:0"),
                         ("stdout: false", "stdout: true")]:
            self.assertIn(old, test_config)
            test_config = test_config.replace(old, new)
        (self.root / "etc/egressd/test.yaml").write_text(test_config)
        process = Process(["chroot", "--userspec=egressd:egressd", str(self.root), "/usr/bin/egressd", "run",
                           "--config", "/etc/egressd/test.yaml"], env=CHROOT_ENV)
        self.addCleanup(process.stop)
        port = process.listener_port()
        admin = process.output.wait_for("egressd.admin_listening")[0]["address"]
        with urllib.request.urlopen(f"http://{admin}/readyz", timeout=10) as answer:
            self.assertEqual(answer.status, 200)

        status, denied_id = denied_request(port, "pastebin.com")  # the shipped policy's deny list
        self.assertEqual(status, 403)
        status, requested_id = denied_request(port, "unlisted.example")  # an access request, in the store
        self.assertEqual(status, 403)
        process.signal(signal.SIGTERM)
        self.assertEqual(process.stop(), 0)
        self.assertIn("egressd.stop", [e["event"] for e in process.output.events])

        events = (self.root / "var/log/egressd/events.log").read_text()
        self.assertIn(denied_id, events)
        self.assertIn(requested_id, (self.root / "var/log/egressd/events.log").read_text())
        self.assertIn(denied_id, (self.root / "var/log/egressd/deny.log").read_text())
        store = self.root / "var/lib/egressd/approvals.db"
        self.assertEqual(store.stat().st_uid, uid)

    def test_remove_keeps_configuration_and_purge_deletes_it(self):
        self.apt_install()
        (self.root / "etc/egressd/egressd.yaml").write_text(
            (self.root / "etc/egressd/egressd.yaml").read_text() + "# a local change\n")
        self.chroot("apt-get", "remove", "-y", "egressd")
        self.assertFalse((self.root / "usr/bin/egressd").exists())
        self.assertIn("# a local change", (self.root / "etc/egressd/egressd.yaml").read_text())
        # Removed, not purged: the unit stays masked, so a leftover enablement cannot start a missing binary.
        self.assertEqual(os.readlink(self.root / "etc/systemd/system/egressd.service"), "/dev/null")

        self.apt_install()  # reinstalling keeps the local change (a conffile) and unmasks the unit
        self.assertIn("# a local change", (self.root / "etc/egressd/egressd.yaml").read_text())
        self.assertFalse((self.root / "etc/systemd/system/egressd.service").exists())

        self.chroot("apt-get", "purge", "-y", "egressd")
        for path in ("etc/egressd/egressd.yaml", "var/lib/egressd", "var/log/egressd",
                     "etc/systemd/system/multi-user.target.wants/egressd.service"):
            self.assertFalse((self.root / path).exists(), path)
        # Debian keeps system users on purge.
        self.assertEqual(self.chroot("getent", "passwd", "egressd", check=False).returncode, 0)


if __name__ == "__main__":
    unittest.main()
