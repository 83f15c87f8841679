"""`cmake --install` into a DESTDIR: every file where a host expects it (the absolute /etc and /var paths under
DESTDIR too), the installed configuration valid for `egressd config check`, the README's
`egressd passwd ... >> /etc/egressd/users.txt` working with the installed binary on PATH, the unit naming the
binary under the prefix given at install time, and the logrotate snippet rotating a running egressd's files
(logrotate's rename, then SIGUSR1) without losing a line."""

import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from host_support import MAN_PAGES, Process, denied_request, install


class InstallTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="egressd-install-")
        cls.dest = Path(cls.tmp.name) / "dest"
        done = install(cls.dest)
        if done.returncode != 0:
            raise AssertionError("cmake --install failed:\n" + done.stdout + done.stderr)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_files_are_where_a_host_expects_them(self):
        files = ["usr/local/bin/egressd", "usr/local/lib/systemd/system/egressd.service",
                 "etc/egressd/egressd.yaml", "etc/egressd/policy.yaml", "etc/egressd/approvers.passwd",
                 "etc/egressd/requesters.passwd", "etc/logrotate.d/egressd"]
        files += [f"usr/local/share/man/{section}/{page}.gz" for page, section in MAN_PAGES.items()]
        for path in files:
            self.assertTrue((self.dest / path).is_file(), path)
        for path in ("var/lib/egressd", "var/log/egressd"):
            self.assertTrue((self.dest / path).is_dir(), path)
        self.assertTrue(os.access(self.dest / "usr/local/bin/egressd", os.X_OK))
        for name in ("approvers.passwd", "requesters.passwd"):
            self.assertEqual((self.dest / "etc/egressd" / name).stat().st_mode & 0o077, 0o040, name)
        installed = {str(p.relative_to(self.dest)) for p in self.dest.rglob("*") if p.is_file()}
        self.assertEqual(installed, set(files), "cmake --install installs exactly these files")

    def test_installed_configuration_is_valid(self):
        binary = self.dest / "usr/local/bin/egressd"
        result = subprocess.run([str(binary), "config", "check", str(self.dest / "etc/egressd/egressd.yaml")],
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("valid", result.stdout)
        config = (self.dest / "etc/egressd/egressd.yaml").read_text()
        # A host's paths: the unit's StateDirectory and LogsDirectory.
        self.assertIn("store: /var/lib/egressd/approvals.db", config)
        self.assertIn("path: /var/log/egressd/events.log", config)

    def test_readme_passwd_line_works_after_install(self):
        etc = self.dest / "etc/egressd"
        env = dict(os.environ, PATH=f"{self.dest / 'usr/local/bin'}:/usr/bin:/bin")
        # The README's line, with /etc/egressd under DESTDIR: egressd comes from PATH.
        subprocess.run(["sh", "-c", f"printf '%s\\n' 'a long password' | egressd passwd alice >> {etc}/users.txt"],
                       env=env, check=True, timeout=60)
        self.addCleanup((etc / "users.txt").unlink)
        self.assertRegex((etc / "users.txt").read_text(), r"^alice:\$pbkdf2-sha256\$600000\$")
        config = etc / "with-auth.yaml"
        config.write_text((etc / "egressd.yaml").read_text() + "proxy_auth:\n  credentials: users.txt\n")
        self.addCleanup(config.unlink)
        result = subprocess.run(["egressd", "config", "check", str(config)], env=env, capture_output=True, text=True,
                                timeout=60)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_unit_names_the_binary_under_the_install_prefix(self):
        unit = (self.dest / "usr/local/lib/systemd/system/egressd.service").read_text()
        self.assertIn("ExecStart=/usr/local/bin/egressd run --config /etc/egressd/egressd.yaml\n", unit)
        other = Path(self.tmp.name) / "opt"
        done = install(other, prefix="/opt/egressd")
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        unit = (other / "opt/egressd/lib/systemd/system/egressd.service").read_text()
        self.assertIn("ExecStart=/opt/egressd/bin/egressd run --config /etc/egressd/egressd.yaml\n", unit)
        self.assertTrue((other / "opt/egressd/bin/egressd").is_file())
        self.assertTrue((other / "etc/egressd/egressd.yaml").is_file())

    @unittest.skipIf(shutil.which("logrotate") is None and not Path("/usr/sbin/logrotate").exists(),
                     "logrotate is missing (apt-get install logrotate)")
    def test_logrotate_snippet_rotates_a_running_egressd(self):
        snippet = (self.dest / "etc/logrotate.d/egressd").read_text()
        self.assertIn("/var/log/egressd/events.log /var/log/egressd/deny.log {", snippet)
        self.assertIn("--signal=SIGUSR1", snippet)
        work = Path(tempfile.mkdtemp(prefix="egressd-logrotate-"))
        self.addCleanup(shutil.rmtree, work, ignore_errors=True)
        logs = work / "log"
        logs.mkdir()

        installed = (self.dest / "etc/egressd/egressd.yaml").read_text()
        config_text = installed
        for old, new in [('  - 127.0.0.1:3128\n  - "[::1]:3128"\n', "  - 127.0.0.1:0\n"),
                         ("listen: 127.0.0.1:9090", "listen: 127.0.0.1:0"),
                         ("listen: 127.0.0.1:9091", "listen: 127.0.0.1:0"),
                         ("stdout: false", "stdout: true"),
                         ("/var/log/egressd/", f"{logs}/"),
                         ("/var/lib/egressd/", f"{work}/")]:
            self.assertIn(old, config_text)
            config_text = config_text.replace(old, new)
        etc = work / "etc"
        shutil.copytree(self.dest / "etc/egressd", etc)
        (etc / "egressd.yaml").write_text(config_text)
        process = Process([str(self.dest / "usr/local/bin/egressd"), "run", "--config", str(etc / "egressd.yaml")])
        self.addCleanup(process.stop)
        port = process.listener_port()

        before = [denied_request(port, "pastebin.com")[1] for _ in range(3)]
        events, denials = logs / "events.log", logs / "deny.log"
        self.wait_for_ids(denials, before)

        # The snippet as shipped, but for this test's directory, this process, and this machine's users.
        rotate_conf = snippet.replace("/var/log/egressd/", f"{logs}/")
        rotate_conf = re.sub(r"^\s*su egressd egressd\n", "", rotate_conf, flags=re.M)
        rotate_conf = rotate_conf.replace("create 0640 egressd egressd", "create 0640 root root")
        rotate_conf = re.sub(r"postrotate\n.*?endscript", f"postrotate\n        kill -USR1 {process.proc.pid}\n"
                             "    endscript", rotate_conf, flags=re.S)
        self.assertIn("kill -USR1", rotate_conf)
        conf = work / "logrotate.conf"
        conf.write_text(rotate_conf)
        logrotate = shutil.which("logrotate") or "/usr/sbin/logrotate"
        result = subprocess.run([logrotate, "--force", "--state", str(work / "state"), str(conf)],
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

        after = [denied_request(port, "pastebin.com")[1] for _ in range(3)]
        self.wait_for_ids(denials, after)
        rotated = [p for p in logs.iterdir() if p.name.startswith("deny.log-")]
        self.assertEqual(len(rotated), 1, sorted(p.name for p in logs.iterdir()))
        # delaycompress: the newest rotation stays plain. Workers batch their events, so the order across
        # workers may differ from the order of the requests.
        self.assertEqual(sorted(self.ids(rotated[0])), sorted(before))
        self.assertEqual(sorted(self.ids(denials)), sorted(after))
        self.assertTrue(any(p.name.startswith("events.log-") for p in logs.iterdir()))
        self.assertEqual(process.stop(), 0)

    @staticmethod
    def ids(path):
        return re.findall(r'"event":"egress\.deny".*?"request_id":"([0-9a-f]+)"', path.read_text())

    def wait_for_ids(self, path, wanted, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists() and set(wanted) <= set(self.ids(path)):
                return
            time.sleep(0.05)
        self.fail(f"{path}: missing some of {wanted}")


if __name__ == "__main__":
    unittest.main()
