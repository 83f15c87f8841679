"""egressd import smokescreen, end to end: the real binary imports a smokescreen ACL fixture, a real egressd
serves the imported policy on a TLS listener that requires client certificates, and every derived case
(policy.cases.yaml and policy.inexact-cases.yaml) is sent through it by curl as a CONNECT, with a client
certificate whose subject CN is the case's role, as smokescreen identifies its clients.

Each case says whether smokescreen lets the traffic through ("# smokescreen: ...; traffic passes|blocked") and, for
an inexact case, what egressd does instead ("# egressd: ...; traffic passes|blocked"). An exact case must behave
as smokescreen would; an inexact one as its egressd line says. There is no smokescreen binary to compare with
(it is not packaged in Debian): smokescreen's side is its documented semantics, computed by the importer.

Every case name resolves, through the loopback DNS server, to 127.0.0.1 where an upstream answers; the policy gets
`address_guard: {except: [loopback]}` so that loopback is reachable at all (the imported policy has no address
guard settings). The cases' ports (443, 8443) become the upstream's port: smokescreen does not filter ports and the
imported rules allow every port. IP-literal cases are left out: their addresses are not on loopback.
"""

import itertools
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import harness

harness.isolate_network()

FIXTURES = os.path.join(harness.REPO, "tests", "import", "smokescreen")
CERTS_SCRIPT = os.path.join(harness.REPO, "certs", "egressd-certs")
CLIENT_EXT = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
CASE_RE = re.compile(
    r"# smokescreen: (?P<ss>\S+) .*; traffic (?P<ss_traffic>passes|blocked)\n"
    r"(?:# egressd: .*; traffic (?P<eg_traffic>passes|blocked).*\n)?"
    r"- name: \"(?P<name>[^\n]*)\"\n"
    r"  identity: \"(?P<identity>[^\"]*)\"\n"
    r"  dest: \"(?P<dest>[^\"]*)\"\n")


def run(cmd, timeout=60):
    r = subprocess.run(cmd, capture_output=True, timeout=timeout, text=True)
    if r.returncode != 0:
        raise AssertionError("%s failed: %r" % (" ".join(cmd), r))
    return r


def client_certificate(pki, index, cn):
    """pki/client-INDEX.pem and .key with subject CN cn and no SAN (openssl: a CN may hold '/', which
    egressd-certs does not take as a name)."""
    base = os.path.join(pki, "client-%d" % index)
    ext = base + ".ext"
    with open(ext, "w") as f:
        f.write(CLIENT_EXT)
    subject = "/CN=" + cn.replace("\\", "\\\\").replace("/", "\\/")
    run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", base + ".key", "-subj", subject, "-out", base + ".csr"])
    run(["openssl", "x509", "-req", "-in", base + ".csr", "-CA", os.path.join(pki, "ca.pem"),
         "-CAkey", os.path.join(pki, "ca.key"), "-set_serial", str(0x5e0000 + index), "-days", "2", "-sha256",
         "-extfile", ext, "-out", base + ".pem"])
    return base + ".pem", base + ".key"


def read_cases(path):
    """[(name, identity, host, expected traffic 'passes' | 'blocked', exact)] from a derived cases file."""
    with open(path) as f:
        text = f.read()
    cases = []
    for m in CASE_RE.finditer(text):
        host = m.group("dest").rpartition(":")[0]
        exact = m.group("eg_traffic") is None
        cases.append((m.group("name"), m.group("identity"), host,
                      m.group("ss_traffic") if exact else m.group("eg_traffic"), exact))
    # Every case of the file was read: a format change must fail here, not skip cases silently.
    if len(cases) != text.count("\n- name: "):
        raise AssertionError("read %d of %d cases in %s" % (len(cases), text.count("\n- name: "), path))
    return cases


class ImportSmokescreenE2E(unittest.TestCase):
    serials = itertools.count(1)  # one class CA: every client certificate its own serial and files

    @classmethod
    def setUpClass(cls):
        if shutil.which("openssl") is None:
            raise unittest.SkipTest("no openssl command")
        cls.tmp = tempfile.TemporaryDirectory(prefix="egressd-e2e-smokescreen-")
        cls.pki = os.path.join(cls.tmp.name, "pki")
        run([CERTS_SCRIPT, "ca", cls.pki])
        run([CERTS_SCRIPT, "server", cls.pki, "proxy"])

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def import_acl(self, fixture):
        out = os.path.join(self.tmp.name, "import-" + fixture)
        r = subprocess.run([harness.egressd_binary(), "import", "smokescreen", os.path.join(FIXTURES, fixture),
                            "--out", out], capture_output=True, timeout=60, text=True)
        self.assertEqual(r.returncode, 0, r)
        self.assertIn("egressd policy check: valid", r.stdout)
        return out

    def check_fixture(self, fixture):
        out = self.import_acl(fixture)
        cases = []
        for name in ("policy.cases.yaml", "policy.inexact-cases.yaml"):
            cases += read_cases(os.path.join(out, name))
        cases = [c for c in cases if not re.match(r"^[0-9.]+$|^\[", c[2])]
        self.assertTrue(any(c[4] for c in cases) and any(not c[4] for c in cases), cases)
        self.assertTrue(any(c[3] == "passes" for c in cases) and any(c[3] == "blocked" for c in cases), cases)

        upstream = harness.HttpUpstream()
        self.addCleanup(upstream.stop)
        dns = harness.DnsServer({c[2]: {"A": ["127.0.0.1"], "ttl": 60} for c in cases})
        self.addCleanup(dns.stop)
        with open(os.path.join(out, "policy.yaml")) as f:
            policy = f.read() + "address_guard:\n  except: [loopback]\n"
        listener = {"address": "127.0.0.1:0",
                    "tls": {"certificate": os.path.join(self.pki, "proxy.pem"),
                            "key": os.path.join(self.pki, "proxy.key"),
                            "client_ca": os.path.join(self.pki, "ca.pem"),
                            "client_certificate": "required"}}
        workdir = tempfile.mkdtemp(prefix="run-", dir=self.tmp.name)
        proxy = harness.Egressd(workdir, policy, dns.port, settings={"listeners": [listener]})
        self.addCleanup(proxy.stop)

        certs = {}
        for identity in sorted({c[1] for c in cases}):
            certs[identity] = client_certificate(self.pki, next(self.serials), identity)
        seen = set()
        mismatches = []
        passes = 0
        for name, identity, host, expected, exact in cases:
            if (identity, host) in seen:
                continue
            seen.add((identity, host))
            pem, key = certs[identity]
            r = harness.curl("-p", "--proxy", "https://localhost:%d" % proxy.port,
                             "--proxy-cacert", os.path.join(self.pki, "ca.pem"),
                             "--proxy-cert", pem, "--proxy-key", key,
                             "-o", "/dev/null", "-w", "%{http_connect} %{http_code}",
                             "http://%s:%d/hello" % (host, upstream.port))
            codes = r.stdout.decode().split()
            got = {("200", "200"): "passes", ("403", "000"): "blocked"}.get(tuple(codes), "unexpected %r" % codes)
            passes += got == "passes"
            if got != expected:
                mismatches.append("%s (%s, %s): expected traffic %s, got %s; curl: %s" % (
                    name, identity, "exact" if exact else "inexact", expected, got, r.stderr.decode().strip()))
        self.assertEqual(mismatches, [], "\n".join(mismatches) + "\n" + "\n".join(proxy.raw_lines[-20:]))
        # Each tunnel that passed carried exactly one request to the upstream; a blocked one carried none.
        self.assertEqual(len(upstream.requests), passes)

    def test_sample_config_with_global_lists(self):
        self.check_fixture("sample_config_with_global.yaml")

    def test_payments_acl(self):
        self.check_fixture("payments.yaml")


if __name__ == "__main__":
    unittest.main()
