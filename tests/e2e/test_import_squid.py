"""`egressd import squid` proven against a real Squid: for each configuration in tests/import/squid, the importer
writes a policy and sample cases (each expectation computed by its model of Squid on the original configuration);
a real Squid runs the ORIGINAL configuration and a real egressd the imported policy, and every sample request is
sent through both, for real, from its source address (and with proxy authentication where it has an identity).
Squid, egressd and the case must agree on allow or deny for every case of policy.cases.yaml; in
policy.inexact-cases.yaml (what the importer says it cannot carry over exactly) every disagreement between Squid
and egressd must come from a line the import report names. The importer grades its own samples, so each fixture
also has probes written by hand (FIXTURE.probes.yaml, see tests/import/squid/README.md): requests its samples
cannot reach, each with what Squid and egressd must decide and the report line that must explain a difference.

Denied means Squid's 403 with `X-Squid-Error: ERR_ACCESS_DENIED` or its 407, egressd's 403 or 407 with
X-Egressd-Reason; anything else is allowed (the upstream may refuse: every name resolves to 127.0.0.1, and most
ports there have no listener). A 400, or no answer at all, is a fault of the test and fails it.

What the test adds to the imported policy, and why: `address_guard: {except: [loopback]}`, because every name
resolves to 127.0.0.1 here (the guard would refuse all of them, where the real names would resolve to public
addresses). Nothing else. egressd runs with the harness's server configuration (a loopback listener, the test's
DNS server, which maps every name of the cases to 127.0.0.1) plus the imported proxy_auth section, its credentials
file made with `egressd passwd` for the fixtures' users; the imported egressd.yaml itself goes through
`egressd config check`. Squid gets a hosts file with the same names, and a reverse name no rule names for every IP
literal (see squid_server.hosts_text).

Fixture sources are loopback addresses (127.20.0.0/16 and the like), so that a request can be sent from each.
A case whose source is another address is sent from it only when the test has a network namespace of its own
(the address is added to its loopback interface there); elsewhere it is checked by `policy test` only, and
counted. So is a case whose destination is an IP literal outside loopback: sent only inside the namespace, where
no connection can leave.
"""

import base64
import concurrent.futures
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import harness
import squid_server

squid_server.isolate_network()
harness.isolate_network()

FIXTURES = os.path.join(harness.REPO, "tests", "import", "squid")

# The fixtures' proxy-auth users (auth.d/passwd holds their apr1 hashes for Squid's basic_ncsa_auth), and the
# user the importer's samples name for "any other user" (a proxy_auth REQUIRED line lets every valid user in).
PASSWORDS = {user: "%s-e2e-password" % user for user in ("alice", "bob", "carol", "someone-else")}

# Every case is sent: the importer writes at most 2,000 per file, which take a few seconds through both proxies.
CONCURRENCY = 8

# One row per fixture, printed when its test ends: the whole file's table is the rows of its tests.
TABLE_HEADER = "%-16s %6s %6s %6s %6s %8s %8s %9s %7s %7s" % (
    "fixture", "cases", "allow", "deny", "sent", "agree", "inexact", "differ", "probes", "as said")


def egressd(*args, cwd=None, timeout=60):
    return subprocess.run([harness.egressd_binary(), *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, cwd=cwd)


# ---------------------------------------------------------------------------------------------------------
# The cases files: a YAML list of flat mappings of scalars, as the importer writes them. Read here with the
# standard library only (the e2e suite's rule); anything else is an error naming file:line.


def _scalar(text, where):
    text = text.strip()
    if text.startswith('"'):
        try:
            value, end = json.JSONDecoder().raw_decode(text)
        except ValueError:
            raise AssertionError("%s: a double-quoted scalar this reader does not take: %r" % (where, text))
        rest = text[end:].strip()
    elif text.startswith("'"):
        m = re.match(r"'((?:[^']|'')*)'", text)
        if m is None:
            raise AssertionError("%s: unterminated single-quoted scalar: %r" % (where, text))
        value, rest = m.group(1).replace("''", "'"), text[m.end():].strip()
    else:
        value, rest = text.partition(" #")[0].strip(), ""
        if value.startswith(("[", "{", "&", "*", "!", "|", ">")):
            raise AssertionError("%s: a YAML form this reader does not take: %r" % (where, text))
    if rest and not rest.startswith("#"):
        raise AssertionError("%s: text after a quoted scalar: %r" % (where, text))
    return value


def read_cases(path):
    """The cases of a cases file: [{key: str, "_line": int, "_comments": str}], where _comments are the comment
    lines just above the case (the importer says there why it expects what it expects)."""
    cases = []
    with open(path) as f:
        lines = f.read().split("\n")
    current = None
    comments = []
    for number, raw in enumerate(lines, 1):
        where = "%s:%d" % (path, number)
        if not raw.strip():
            comments = []
            continue
        if raw.lstrip().startswith("#"):
            comments.append(raw.strip())
            continue
        if raw.strip() == "[]":
            continue
        m = re.match(r"^(- |  )([A-Za-z_][A-Za-z0-9_]*):(?: (.*))?$", raw)
        if m is None:
            raise AssertionError("%s: a line this reader does not take: %r" % (where, raw))
        if m.group(1) == "- ":
            current = {"_line": number, "_comments": "\n".join(comments)}
            cases.append(current)
            comments = []
        elif current is None:
            raise AssertionError("%s: a key before the first case" % where)
        key = m.group(2)
        if key in current:
            raise AssertionError("%s: %s given twice" % (where, key))
        current[key] = _scalar(m.group(3) or "", where)
    return cases


def split_dest(dest):
    """"host:port" or "[v6]:port" -> (host, port)."""
    if dest.startswith("["):
        host, _, port = dest[1:].partition("]:")
    else:
        host, _, port = dest.rpartition(":")
    return host, int(port)


def ip_literal(host):
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------------------
# Sending one case through one proxy


def request_bytes(case, password):
    host, port = split_dest(case["dest"])
    authority = "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)
    method = case.get("method", "CONNECT")
    if method == "CONNECT":
        lines = ["CONNECT %s HTTP/1.1" % authority]
    else:
        lines = ["%s http://%s%s HTTP/1.1" % (method, authority, case.get("path", "/"))]
    lines += ["Host: %s" % authority, "Connection: close", "User-Agent: egressd-e2e"]
    if method in ("POST", "PUT", "PATCH"):
        lines.append("Content-Length: 0")
    if "identity" in case:
        token = base64.b64encode(("%s:%s" % (case["identity"], password)).encode()).decode()
        lines.append("Proxy-Authorization: Basic %s" % token)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def verdict(kind, status, headers):
    """"deny", "allow" or "fault: ..." for a proxy's answer. A 400, or a refusal that is not the access check's
    (a 403 without the proxy's denial header), is a fault of the test, never counted as either."""
    if kind == "squid":
        denial = status == 407 or (status == 403 and headers.get("x-squid-error", "").startswith("ERR_ACCESS_DENIED"))
        reason = headers.get("x-squid-error", "")
    else:
        denial = status in (403, 407) and "x-egressd-reason" in headers
        reason = headers.get("x-egressd-reason", "")
    if denial:
        return "deny"
    if status in (400, 403, 407):
        return "fault: %d %s" % (status, reason)
    return "allow"


def send(kind, port, case, source):
    """One request on a fresh connection from `source`: (verdict, status and denial header) of the answer."""
    password = case.get("password") or PASSWORDS.get(case.get("identity", ""), "no-such-password")
    try:
        with harness.HttpConn(port, "127.0.0.1", timeout=20.0, source=source) as c:
            c.send(request_bytes(case, password))
            head = c.read_head()
    except (OSError, harness.ConnectionClosed) as e:
        return "fault: %s" % e, ""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    detail = "%d %s" % (status, headers.get("x-squid-error") or headers.get("x-egressd-reason") or "")
    return verdict(kind, status, headers), detail.strip()


# ---------------------------------------------------------------------------------------------------------
# The imported policy, as the test runs it


def guard_loopback(policy_text):
    """The policy with `address_guard: {except: [loopback]}` appended (see the module comment). The importer writes
    no address_guard section; if it ever does, this must merge into it, and says so."""
    if re.search(r"(?m)^address_guard:", policy_text):
        raise AssertionError("the imported policy has an address_guard section: the test must add loopback to it")
    return policy_text.rstrip("\n") + "\naddress_guard:\n  except: [loopback]\n"


def top_level_block(text, key):
    """The top-level `key:` block of a YAML text (its first line and the indented ones after it), or None."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if re.match(r"^%s:" % re.escape(key), line):
            block = [line]
            for more in lines[i + 1:]:
                if more and not more.startswith((" ", "#")):
                    break
                block.append(more)
            return "\n".join(block).rstrip() + "\n"
    return None


def report_entry(case, report_text):
    """The entry of the import report an inexact case points to ("# inexact: see import-report.txt line N" above
    it): the report's line N when it names a squid.conf location ("FILE:LINE: directive"), else None."""
    m = re.search(r"import-report\.txt line (\d+)", case["_comments"])
    if m is None:
        return None
    lines = report_text.split("\n")
    number = int(m.group(1))
    if not 1 <= number <= len(lines) or re.match(r"^\S+:\d+: \S", lines[number - 1]) is None:
        return None
    return lines[number - 1]


# ---------------------------------------------------------------------------------------------------------


class SquidFixturesParse(unittest.TestCase):

    def test_every_fixture_passes_squid_parse(self):
        confs = sorted(f for f in os.listdir(FIXTURES) if f.endswith(".conf"))
        self.assertGreaterEqual(len(confs), 7, confs)
        for name in confs:
            with self.subTest(fixture=name):
                ok, output = squid_server.parse(os.path.join(FIXTURES, name), FIXTURES)
                self.assertTrue(ok, "%s does not pass squid -k parse:\n%s" % (name, output[-3000:]))

    def test_parse_check_catches_a_broken_configuration(self):
        # The check above must be able to fail: on an unknown ACL type Squid exits 1; on a missing ACL file it
        # exits 0 and only says ERROR (the ACL is then empty).
        broken = {"unknown type": "acl x nosuchtype y\n",
                  "missing file": 'acl blocked dstdomain "no-such-list.txt"\nhttp_access deny blocked\n'}
        with tempfile.TemporaryDirectory(prefix="egressd-e2e-") as d:
            for what, text in broken.items():
                with self.subTest(what):
                    conf = os.path.join(d, "broken.conf")
                    with open(conf, "w") as f:
                        f.write("acl office src 127.20.0.0/16\n%shttp_access allow office\n" % text)
                    ok, output = squid_server.parse(conf, d)
                    self.assertFalse(ok, output)


class SquidEquivalence(unittest.TestCase):
    """One test per fixture: import it, run Squid on the original and egressd on the import, compare."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="egressd-e2e-")
        self.addCleanup(self.tmp.cleanup)
        self.added_addresses = []
        self.addCleanup(self._remove_addresses)

    def _remove_addresses(self):
        for address in self.added_addresses:
            subprocess.run(["ip", "addr", "del", address, "dev", "lo"], capture_output=True, timeout=10)

    def sendable_source(self, source):
        """True if a socket can be bound to source: loopback, or an address this test adds to loopback (in its
        own network namespace only)."""
        address = ip_literal(source)
        if address is None:
            raise AssertionError("a case's source is not an IP address: %r" % source)
        if address.is_loopback and address.version == 4:
            return True
        if not squid_server.isolated() or address.version != 4 or shutil.which("ip") is None:
            return False
        if "%s/32" % source in self.added_addresses:
            return True
        done = subprocess.run(["ip", "addr", "add", "%s/32" % source, "dev", "lo"], capture_output=True, timeout=10)
        if done.returncode != 0:
            return False
        self.added_addresses.append("%s/32" % source)
        return True

    def sendable_dest(self, case):
        host, _ = split_dest(case["dest"])
        address = ip_literal(host)
        return address is None or address.is_loopback or squid_server.isolated()

    def read_probes(self, fixture_name):
        """FIXTURE.probes.yaml: requests written by hand beside the fixture, each with what real Squid decides
        (squid), what egressd decides on the import (egressd) and, when those differ, the line the report must
        name (report). They reach what the importer's samples cannot (names a regex matches, say)."""
        path = os.path.join(FIXTURES, fixture_name[:-5] + ".probes.yaml")
        probes = read_cases(path)
        self.assertTrue(probes, "%s has no probes" % path)
        for probe in probes:
            where = "%s:%d" % (path, probe["_line"])
            unknown = set(probe) - {"_line", "_comments", "name", "source", "identity", "password", "dest", "method",
                                    "path", "squid", "egressd", "report"}
            self.assertFalse(unknown, "%s: unknown keys %s" % (where, sorted(unknown)))
            for key in ("name", "source", "dest", "squid", "egressd"):
                self.assertIn(key, probe, "%s: no %s" % (where, key))
            self.assertIn(probe["squid"], ("allow", "deny"), where)
            self.assertIn(probe["egressd"], ("allow", "deny"), where)
            self.assertEqual("report" in probe, probe["squid"] != probe["egressd"],
                             "%s: report names the line when (and only when) squid and egressd differ" % where)
        return probes

    def import_fixture(self, fixture):
        out = os.path.join(self.tmp.name, "import")
        done = egressd("import", "squid", fixture, "--out", out, cwd=FIXTURES)
        self.assertEqual(done.returncode, 0, "egressd import squid %s:\n%s%s" % (fixture, done.stdout, done.stderr))
        for name in ("policy.yaml", "egressd.yaml", "policy.cases.yaml", "policy.inexact-cases.yaml",
                     "import-report.txt"):
            self.assertTrue(os.path.exists(os.path.join(out, name)), "the import wrote no %s" % name)
        return out

    def check_offline(self, out):
        done = egressd("config", "check", os.path.join(out, "egressd.yaml"), cwd=out)
        self.assertEqual(done.returncode, 0, "config check:\n%s%s" % (done.stdout, done.stderr))
        done = egressd("policy", "test", os.path.join(out, "policy.yaml"), os.path.join(out, "policy.cases.yaml"),
                       cwd=out)
        self.assertEqual(done.returncode, 0, "policy test:\n%s%s" % (done.stdout, done.stderr))

    def start_egressd(self, out, dns):
        d = os.path.join(self.tmp.name, "egressd")
        os.mkdir(d)
        if os.path.isdir(os.path.join(out, "lists")):
            shutil.copytree(os.path.join(out, "lists"), os.path.join(d, "lists"))
        with open(os.path.join(out, "policy.yaml")) as f:
            policy = guard_loopback(f.read())
        with open(os.path.join(out, "egressd.yaml")) as f:
            auth = top_level_block(f.read(), "proxy_auth")
        extra = None
        if auth is not None:
            credentials = harness.write_credentials(os.path.join(d, "users.txt"), PASSWORDS)
            extra = re.sub(r"(?m)^(\s+credentials:).*$", lambda m: "%s %s" % (m.group(1), json.dumps(credentials)),
                           auth)
        proxy = harness.Egressd(d, policy, dns.port, extra_yaml=extra)
        self.addCleanup(self._stop_proxy, proxy)
        return proxy

    def _stop_proxy(self, proxy):
        rc = proxy.stop()
        if rc != 0:
            raise AssertionError("egressd exited with %s\nstderr:\n%s" % (rc, "\n".join(proxy.stderr_lines[:60])))

    def run_cases(self, cases, squid, proxy):
        """Sends every case through both proxies; returns [(case, squid verdict, egressd verdict, details)] for the
        cases sent, and the cases not sent."""
        sent, unsent = [], []
        for case in cases:
            if self.sendable_source(case["source"]) and self.sendable_dest(case):
                sent.append(case)
            else:
                unsent.append(case)

        def one(case):
            s, s_detail = send("squid", squid.port, case, case["source"])
            e, e_detail = send("egressd", proxy.port, case, case["source"])
            return case, s, e, "squid %s, egressd %s" % (s_detail, e_detail)

        # One request per user and source first, one at a time: egressd then has each password verified (a PBKDF2
        # run, a good part of a second on a busy machine; remembered per source) before the concurrent requests,
        # which would otherwise each verify it again.
        first = {}
        for case in sent:
            first.setdefault((case.get("identity"), case["source"]), case)
        results = [one(case) for case in first.values() if "identity" in case]
        done = {id(case) for case, _, _, _ in results}
        with concurrent.futures.ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
            results += list(pool.map(one, [case for case in sent if id(case) not in done]))
        return results, unsent

    def equivalence(self, fixture_name):
        started = time.monotonic()
        fixture = os.path.join(FIXTURES, fixture_name)
        ok, output = squid_server.parse(fixture, FIXTURES)
        self.assertTrue(ok, "%s does not pass squid -k parse:\n%s" % (fixture_name, output[-3000:]))
        out = self.import_fixture(fixture_name)
        self.check_offline(out)
        cases = read_cases(os.path.join(out, "policy.cases.yaml"))
        inexact = read_cases(os.path.join(out, "policy.inexact-cases.yaml"))
        with open(os.path.join(out, "import-report.txt")) as f:
            report = f.read()
        self.assertTrue(cases, "the import wrote no cases for %s" % fixture_name)
        for case in cases + inexact:
            for key in ("source", "dest", "expect"):
                self.assertIn(key, case, "case at line %d has no %s: %r" % (case["_line"], key, case))
            self.assertIn(case["expect"], ("allow", "deny"), case)
            if "identity" in case:
                self.assertIn(case["identity"], PASSWORDS, "a user the fixtures have no password for: %r" % case)
        probes = self.read_probes(fixture_name)

        names, literals = set(), set()
        for case in cases + inexact + probes:
            host, _ = split_dest(case["dest"])
            (literals if ip_literal(host) is not None else names).add(host.lower())
        dns = harness.DnsServer({name: {"A": ["127.0.0.1"], "ttl": 300} for name in names})
        self.addCleanup(dns.stop)
        squid = squid_server.Squid(fixture, FIXTURES, squid_server.hosts_text(names, literals))
        self.addCleanup(squid.cleanup)
        proxy = self.start_egressd(out, dns)

        results, unsent = self.run_cases(cases, squid, proxy)
        inexact_results, inexact_unsent = self.run_cases(inexact, squid, proxy)
        probe_results, probes_unsent = self.run_cases(probes, squid, proxy)

        faults = ["line %d %r: squid %s, egressd %s (%s)" % (c["_line"], c.get("name", ""), s, e, d)
                  for c, s, e, d in results + inexact_results + probe_results
                  if s.startswith("fault") or e.startswith("fault")]
        if faults:
            self.fail("%d request(s) the proxies did not answer as a policy would (the first 40):\n%s" % (
                len(faults), "\n".join(faults[:40])))
        wrong = ["policy.cases.yaml:%d %r %s -> %s %s: expect %s, squid %s, egressd %s (%s)" % (
            c["_line"], c.get("name", ""), c["source"], c.get("method", "CONNECT"), c["dest"] + c.get("path", ""),
            c["expect"], s, e, d) for c, s, e, d in results if not c["expect"] == s == e]

        differ = [(c, s, e, d) for c, s, e, d in inexact_results if s != e]
        unexplained = ["policy.inexact-cases.yaml:%d %r: squid %s, egressd %s (%s), and no report line named" % (
            c["_line"], c.get("name", ""), s, e, d) for c, s, e, d in differ if report_entry(c, report) is None]
        off_probes = []
        for c, s, e, d in probe_results:
            where = "%s.probes.yaml:%d %r" % (fixture_name[:-5], c["_line"], c["name"])
            if (s, e) != (c["squid"], c["egressd"]):
                off_probes.append("%s: squid %s, egressd %s (%s); written: squid %s, egressd %s" % (
                    where, s, e, d, c["squid"], c["egressd"]))
            elif s != e and re.search(r"(?m)^%s: " % re.escape(c["report"]), report) is None:
                off_probes.append("%s: the report does not name %s" % (where, c["report"]))

        allow = sum(1 for c in cases if c["expect"] == "allow")
        row = "%-16s %6d %6d %6d %6d %8d %8d %9d %7d %7d" % (
            fixture_name[:-5], len(cases), allow, len(cases) - allow, len(results), len(results) - len(wrong),
            len(inexact_results), len(differ), len(probe_results), len(probe_results) - len(off_probes))
        sys.stderr.write("\n%s\n%s\n" % (TABLE_HEADER, row))
        if unsent or inexact_unsent or probes_unsent:
            sys.stderr.write("  not sent (no network namespace): %d case(s), %d inexact, %d probe(s)\n" % (
                len(unsent), len(inexact_unsent), len(probes_unsent)))
        sys.stderr.write("  %.1f s\n" % (time.monotonic() - started))

        if wrong:
            self.fail("%d case(s) where Squid, egressd and the expectation disagree (the first 40):\n%s\nreport:\n%s"
                      % (len(wrong), "\n".join(wrong[:40]), report))
        if unexplained:
            self.fail("%d inexact case(s) whose disagreement the report does not name (the first 40):\n%s" % (
                len(unexplained), "\n".join(unexplained[:40])))
        if off_probes:
            self.fail("hand-written probes decided otherwise than written:\n" + "\n".join(off_probes))

    def test_debian_default(self):
        self.equivalence("debian-default.conf")

    def test_office(self):
        self.equivalence("office.conf")

    def test_auth(self):
        self.equivalence("auth.conf")

    def test_regex(self):
        self.equivalence("regex.conf")

    def test_networks(self):
        self.equivalence("networks.conf")

    def test_blocklist(self):
        self.equivalence("blocklist.conf")

    def test_reported(self):
        self.equivalence("reported.conf")


if __name__ == "__main__":
    unittest.main()
