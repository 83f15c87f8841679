"""The man pages, as `cmake --install` installs them (rendered from docs/man at build time): groff formats each
without a warning, egressd.yaml(5) documents every key the configuration loader accepts and egressd-policy(5)
every key the policy loader accepts (read from the loaders' check_keys lists, so a new key without
documentation fails here), and egressd(8) every command `egressd --help` lists, the signals and the exit codes."""

import gzip
import re
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

from host_support import BINARY, MAN_PAGES, SOURCE_DIR, install


def accepted_keys(source):
    """Every key of every check_keys list in a loader, and the keys of its top-level list (the first one)."""
    lists = re.findall(r"check_keys\([^;]*?\{([^}]*)\}\s*\)", source.read_text(), re.S)
    keys = [re.findall(r'"([a-z_]+)"', body) for body in lists]
    return {k for body in keys for k in body}, keys[0]


def plain_text(roff):
    """The words a reader sees: font changes and escapes removed."""
    text = re.sub(r"\\f[BIRP]", "", roff)
    return text.replace("\\-", "-").replace("\\e", "\\").replace("\\&", "").replace("\\(bu", "*")


def tags(roff):
    """The tags of tagged paragraphs (.TP): what a page lists as its keys, commands or codes."""
    lines = roff.splitlines()
    return [plain_text(lines[i + 1]) for i, line in enumerate(lines[:-1]) if line == ".TP"]


def missing_words(words, text):
    return sorted(w for w in words if not re.search(r"(?<![\w-])" + re.escape(w) + r"(?![\w-])", text))


class ManPagesTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="egressd-man-")
        dest = Path(cls.tmp.name)
        done = install(dest)
        if done.returncode != 0:
            raise AssertionError("cmake --install failed:\n" + done.stdout + done.stderr)
        cls.files = {page: dest / "usr/local/share/man" / section / (page + ".gz")
                     for page, section in MAN_PAGES.items()}
        cls.roff = {page: gzip.decompress(path.read_bytes()).decode() for page, path in cls.files.items()}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    @unittest.skipIf(shutil.which("groff") is None, "groff is missing (apt-get install groff-base)")
    def test_groff_renders_without_warnings(self):
        for page, roff in self.roff.items():
            with self.subTest(page):
                result = subprocess.run(["groff", "-man", "-ww", "-z"], input=roff, capture_output=True, text=True,
                                        timeout=60)
                self.assertEqual(result.returncode, 0, result.stderr)
                self.assertEqual(result.stderr, "")
                shown = subprocess.run(["groff", "-man", "-Tutf8", "-P-c"], input=roff, capture_output=True,
                                       text=True, timeout=60)
                self.assertIn(page.rsplit(".", 1)[0].upper(), shown.stdout)

    @unittest.skipIf(shutil.which("man") is None, "man is missing")
    def test_man_reads_the_installed_files(self):
        for page, path in self.files.items():
            with self.subTest(page):
                result = subprocess.run(["man", "--warnings", "-l", str(path)], capture_output=True, text=True,
                                        env={"MANPAGER": "cat", "MANWIDTH": "100", "PATH": "/usr/bin:/bin"},
                                        timeout=60)
                self.assertEqual(result.returncode, 0, result.stderr)
                self.assertEqual(result.stderr, "")
                self.assertIn("NAME", result.stdout)

    def test_configuration_keys_are_documented(self):
        every, top = accepted_keys(SOURCE_DIR / "config" / "server_config.cpp")
        self.assertIn("listeners", top)
        roff = self.roff["egressd.yaml.5"]
        self.assertEqual(missing_words(top, " ".join(tags(roff))), [], "top-level keys without their own entry")
        self.assertEqual(missing_words(every, plain_text(roff)), [], "keys egressd.yaml(5) never mentions")

    def test_policy_keys_are_documented(self):
        every, top = accepted_keys(SOURCE_DIR / "config" / "policy_loader.cpp")
        self.assertIn("groups", top)
        roff = self.roff["egressd-policy.5"]
        self.assertEqual(missing_words(top, " ".join(tags(roff))), [], "top-level keys without their own entry")
        self.assertEqual(missing_words(every, plain_text(roff)), [], "keys egressd-policy(5) never mentions")

    def test_a_key_without_documentation_is_caught(self):
        every, top = accepted_keys(SOURCE_DIR / "config" / "server_config.cpp")
        text = plain_text(self.roff["egressd.yaml.5"])
        self.assertEqual(missing_words(every | {"an_undocumented_key"}, text), ["an_undocumented_key"])
        self.assertEqual(missing_words(["max_bytes"], text.replace("max_bytes", "max_size")), ["max_bytes"])

    def test_commands_are_documented(self):
        help_text = subprocess.run([str(BINARY), "--help"], capture_output=True, text=True, timeout=30).stdout
        commands = []
        for line in help_text.splitlines():
            match = re.match(r"^\s+egressd ((?:[a-z]+ ?)+|--[a-z]+)", line)
            if match:
                commands.append("egressd " + match.group(1).strip())
        self.assertIn("egressd run", commands)
        self.assertIn("egressd policy explain", commands)
        text = re.sub(r"\s+", " ", plain_text(self.roff["egressd.8"]))
        self.assertEqual(missing_words(commands, text), [])
        approvals = re.search(r"list\|show\|[a-z|]+", help_text).group(0).split("|")
        self.assertEqual(missing_words(approvals, text), [])

    def test_signals_and_exit_codes_are_documented(self):
        roff = self.roff["egressd.8"]
        listed = " ".join(tags(roff))
        self.assertEqual(missing_words(["SIGHUP", "SIGTERM", "SIGINT", "SIGUSR1"], listed), [])
        help_text = subprocess.run([str(BINARY), "--help"], capture_output=True, text=True, timeout=30).stdout
        codes = re.findall(r"(?:Exit codes:|,)\s*(\d) ", " ".join(help_text.split()))
        self.assertGreaterEqual(len(codes), 5)
        exit_section = roff.split(".SH EXIT STATUS", 1)[1].split(".SH", 1)[0]
        self.assertEqual(missing_words(codes, " ".join(tags(exit_section))), [])


if __name__ == "__main__":
    unittest.main()
