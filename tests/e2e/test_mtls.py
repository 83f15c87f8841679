"""The TLS listener (an HTTPS proxy) with client certificates: identities from URI SAN, DNS SAN or CN, refusals
of missing, foreign, revoked and unusable certificates (each an egress.deny event, never a plain-text answer),
optional certificates, identity AND source, PROXY headers before the handshake, proxy authentication beside a
certificate, SNI checks inside tunnels carried over TLS, close_notify, SIGHUP reloads of the TLS files (good
and broken) and bad TLS files at start-up.

Clients are curl (--proxy https://...) and Python's ssl module. The PKI comes from certs/egressd-certs (made
once per class, copied for every test so that a test may revoke or break files); a second CA plays the
stranger, and a certificate whose CN holds a space is made with the openssl command. Whenever a connection is
refused, the upstreams behind it must have seen nothing, and DNS no query for the name asked for.
"""

import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import harness

harness.isolate_network()

CERTS_SCRIPT = os.path.join(harness.REPO, "certs", "egressd-certs")
BATCH_PREFIX = "spiffe://e2e.test/ns/batch/"
WORKER_ID = BATCH_PREFIX + "sa/worker"
ALICE_ID = "spiffe://e2e.test/office/alice"
PASSWORD = "mtls-e2e-Passw0rd"

# Client certificates of the class's CA: name -> egressd-certs client flags.
CLIENTS = {
    "worker": ["--uri", WORKER_ID],
    "worker2": ["--uri", BATCH_PREFIX + "sa/worker2"],
    "revoked": ["--uri", BATCH_PREFIX + "sa/revoked"],      # revoked before any egressd starts
    "pref-a": ["--uri", "spiffe://e2e.test/pref/a", "--dns", "a.pref.test"],  # URI, DNS and CN (pref-a)
    "pref-b": ["--dns", "b.pref.test"],                      # DNS and CN (pref-b)
    "pref-c": [],                                            # CN (pref-c) only
    "alice": ["--uri", ALICE_ID],
}
REQUEST_TIMEOUT = 5.0


def run_certs(*args):
    r = subprocess.run([CERTS_SCRIPT] + [str(a) for a in args], capture_output=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("egressd-certs %s failed: %r" % (" ".join(map(str, args)), r))
    return r


def make_pki(directory):
    """The class's PKI in directory/pki (CA, server "proxy", CLIENTS, a revoked one, one CN with a space) and a
    stranger CA in directory/other with a client whose URI would match the batch client."""
    pki = os.path.join(directory, "pki")
    run_certs("ca", pki)
    run_certs("server", pki, "proxy")
    for name, flags in CLIENTS.items():
        run_certs("client", pki, name, *flags)
    run_certs("revoke", pki, "revoked")
    # A CN with a space and no SAN: signed by the class's CA, so only its identity is wrong.
    ext = os.path.join(directory, "spaced.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n")
    key, csr, pem = (os.path.join(pki, "spaced" + s) for s in (".key", ".csr", ".pem"))
    for cmd in (["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", key, "-subj", "/CN=bad name", "-out", csr],
                ["openssl", "x509", "-req", "-in", csr, "-CA", os.path.join(pki, "ca.pem"), "-CAkey",
                 os.path.join(pki, "ca.key"), "-set_serial", "0x5e2e0001", "-days", "2", "-sha256",
                 "-extfile", ext, "-out", pem]):
        r = subprocess.run(cmd, capture_output=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError("%s failed: %r" % (" ".join(cmd[:2]), r))
    other = os.path.join(directory, "other")
    run_certs("ca", other)
    run_certs("client", other, "stranger", "--uri", BATCH_PREFIX + "sa/stranger")
    return pki, other


def tls_listener(pki, client_ca=True, crl=True, mode=None, proxy_protocol=None, address="127.0.0.1:0"):
    tls = {"certificate": os.path.join(pki, "proxy.pem"), "key": os.path.join(pki, "proxy.key")}
    if client_ca:
        tls["client_ca"] = os.path.join(pki, "ca.pem")
        if crl:
            tls["crl"] = os.path.join(pki, "crl.pem")
        if mode:
            tls["client_certificate"] = mode
    listener = {"address": address, "tls": tls}
    if proxy_protocol:
        listener["proxy_protocol"] = {"trusted": proxy_protocol}
    return listener


def v1_header(src, sport, dst="127.0.0.1", dport=3128):
    return ("PROXY TCP4 %s %s %d %d\r\n" % (src, dst, sport, dport)).encode()


class MtlsTest(harness.ProxyTestCase):
    needs_tls = True  # a TLS upstream (self.tls, certificate self.cert for tls.test) for tunnels to carry TLS

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if shutil.which("openssl") is None:
            raise unittest.SkipTest("no openssl command")
        cls.class_pki, cls.other_pki = make_pki(cls.class_tmp.name)

    def setUp(self):
        # Every test gets its own copy of the PKI: a test may revoke certificates and break files in it.
        self.pki_tmp = tempfile.TemporaryDirectory(prefix="egressd-e2e-pki-")
        self.addCleanup(self.pki_tmp.cleanup)
        self.pki = os.path.join(self.pki_tmp.name, "pki")
        shutil.copytree(self.class_pki, self.pki)
        self.ca = os.path.join(self.pki, "ca.pem")
        self.rec = harness.RecordingServer()  # records every byte, echoes it back; named by the policy
        self.addCleanup(self.rec.stop)
        self.egressd_settings = {"listeners": [tls_listener(self.pki)]}
        super().setUp()

    def dns_records(self):
        records = harness.default_records()
        for name in ("batch.test", "office.test", "lb.test", "pref.test"):
            records[name] = {"A": ["127.0.0.1"], "ttl": 60}
        return records

    def policy_text(self):
        web = harness._yaml_list([self.upstream.port, self.echo.port, self.rec.port])
        tunnels = harness._yaml_list([self.tls.port, self.rec.port])

        def group(name, host):
            return f"""  {name}:
    description: {host} on the loopback upstreams
    rules:
      - description: {host}, and 127.0.0.1 by address (this opens loopback through the address guard)
        ports: {web}
        destinations: [{host}, 127.0.0.1/32]
"""
        return ("version: 1\nmode: enforce\ngroups:\n" + group("batch-web", "batch.test") +
                group("office-web", "office.test") + group("lb-web", "lb.test") + group("pref-web", "pref.test") +
                group("local-web", "intranet") + f"""  sni:
    description: tls.test, whose tunnels must carry TLS for tls.test
    rules:
      - description: tls.test with SNI enforcement
        ports: {tunnels}
        destinations: [tls.test]
        tls: require
      - description: loopback by address (guard exemption)
        ports: {tunnels}
        destinations: [127.0.0.1/32]
        tls: require
clients:
  batch:
    description: every batch workload, by the URI SAN prefix
    identities: ["{BATCH_PREFIX}*"]
    groups: [batch-web, sni]
  office:
    description: alice, only from 127.0.0.2
    identities: ["{ALICE_ID}"]
    sources: [127.0.0.2/32]
    groups: [office-web]
  office-lb:
    description: alice, only behind the load balancer (PROXY header sources)
    identities: ["{ALICE_ID}"]
    sources: [203.0.113.0/24]
    groups: [lb-web]
  uri-named:
    description: the certificate pref-a by its URI SAN
    identities: ["spiffe://e2e.test/pref/a"]
    groups: [pref-web]
  dns-named:
    description: the certificates pref-a and pref-b by their DNS SANs
    identities: [a.pref.test, b.pref.test]
    groups: [pref-web]
  cn-named:
    description: the certificates pref-a, pref-b and pref-c by their CNs
    identities: [pref-a, pref-b, pref-c]
    groups: [pref-web]
  local:
    description: loopback sources without a matching identity
    sources: [127.0.0.0/8]
    groups: [local-web]
""")

    # -- helpers ---------------------------------------------------------------------------------------
    def cert(self, name, pki=None):
        base = os.path.join(pki or self.pki, name)
        return base + ".pem", base + ".key"

    def client_context(self, cert=None, pki=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.ca)  # egressd's server certificate, for 127.0.0.1
        if cert is not None:
            ctx.load_cert_chain(*self.cert(cert, pki))
        return ctx

    def tls_conn(self, cert=None, pki=None, source=None, proxy=None, header=b"", ragged_eofs_ok=True):
        """A connection to the TLS listener (a PROXY header first, in plain text, if given), handshake done."""
        c = (proxy or self.proxy).connect(source=source, timeout=REQUEST_TIMEOUT)
        try:
            if header:
                c.send(header)
            c.sock = self.client_context(cert, pki).wrap_socket(c.sock, server_hostname="127.0.0.1",
                                                                suppress_ragged_eofs=ragged_eofs_ok)
        except BaseException:
            c.close()
            raise
        return c

    def url(self, host, path="/hello", port=None):
        return "http://%s:%d%s" % (host, port or self.upstream.port, path)

    def fetch(self, host, cert="worker", source=None, proxy=None, header=b"", headers=()):
        """One GET for host over a fresh TLS connection presenting cert; returns the response."""
        with self.tls_conn(cert, source=source, proxy=proxy, header=header) as c:
            return self.get(self.url(host), headers=headers, conn=c)

    def assert_fetched(self, host, client, identity, cert="worker", source=None, proxy=None, header=b"",
                       event_source=None):
        resp = self.fetch(host, cert=cert, source=source, proxy=proxy, header=header)
        self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)
        rid = resp.header("X-Egressd-Request-Id")
        ev = (proxy or self.proxy).wait_event(event="egress.allow", request_id=rid)
        self.assertEqual((ev["client"], ev["host"], ev["method"]), (client, host, "GET"), ev)
        if identity is None:
            self.assertNotIn("identity", ev)
            self.assertNotIn("identity_source", ev)
        else:
            self.assertEqual((ev.get("identity"), ev.get("identity_source")), (identity, "mtls"), ev)
        if event_source is not None:
            self.assertEqual(ev["source"], event_source, ev)
        return ev

    def attempt_refused(self, cert=None, pki=None, source=None, proxy=None, header=b"", host="batch.test"):
        """A TLS connection presenting cert that egressd must refuse: its handshake fails, or the connection
        ends without a single byte of answer to the request sent on it. Returns what the client saw."""
        c = (proxy or self.proxy).connect(source=source, timeout=REQUEST_TIMEOUT)
        with c:
            if header:
                c.send(header)
            try:
                c.sock = self.client_context(cert, pki).wrap_socket(c.sock, server_hostname="127.0.0.1")
                # TLS 1.3: the client's handshake ends before the server has checked the certificate; the
                # refusal (an alert, or the connection closing) comes with the first read.
                c.send("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (self.url(host), host))
                data = c.read_until_close(timeout=REQUEST_TIMEOUT)
            except socket.timeout:
                self.fail("the connection was neither refused nor answered")
            except (ssl.SSLError, OSError) as e:
                return repr(e)
            self.assertEqual(data, b"", "the refused connection received an answer")
            return "closed"

    def assert_connection_refused(self, reason, detail=None, proxy=None, source_prefix="127.0.0.1:", count=1):
        """The connection refusal's egress.deny (method and host "-") and its egress.close with the same cause."""
        proxy = proxy or self.proxy
        evs = proxy.wait_events(count, event="egress.deny", reason=reason, timeout=REQUEST_TIMEOUT)
        self.assertEqual(len(evs), count, proxy.dump_events())
        for ev in evs:
            self.assertEqual((ev["method"], ev["host"], ev["mode"]), ("-", "-", "enforce"), ev)
            self.assertTrue(ev["source"].startswith(source_prefix), ev)
            self.assertNotIn("identity", ev)
            self.assertNotIn("rule_group", ev)
            if detail is not None:
                self.assertEqual(ev.get("detail"), detail, ev)
            else:
                self.assertTrue(ev.get("detail"), ev)
            close = proxy.wait_event(event="egress.close", request_id=ev["request_id"], timeout=REQUEST_TIMEOUT)
            self.assertEqual(close["cause"], reason, close)
            self.assertEqual(close["requests"], 0, close)
            self.assertEqual(close["source"], ev["source"], close)
        return evs

    def assert_nothing_reached(self, hosts=("batch.test",), proxy=None):
        self.assertEqual((proxy or self.proxy).events(event="egress.allow"), [])
        self.assert_upstreams_untouched()
        self.assertEqual(self.rec.connections, 0)
        for host in hosts:
            self.assertEqual(self.dns.count(host), 0, host)

    def curl_tls(self, *args, cert="worker", proxy=None):
        flags = ["--proxy", "https://127.0.0.1:%d" % (proxy or self.proxy).port, "--proxy-cacert", self.ca]
        if cert is not None:
            pem, key = self.cert(cert)
            flags += ["--proxy-cert", pem, "--proxy-key", key]
        return harness.curl(*flags, *args)

    def reload(self, proxy=None):
        """SIGHUP; returns the egressd.reload or egressd.reload_failed event it caused."""
        proxy = proxy or self.proxy
        before = len(proxy.events(lambda e: e.get("event", "").startswith("egressd.reload")))
        proxy.signal(signal.SIGHUP)
        evs = proxy.wait_events(before + 1, lambda e: e.get("event", "").startswith("egressd.reload"), timeout=10)
        self.assertEqual(len(evs), before + 1, proxy.dump_events())
        ev = evs[-1]
        self.assertEqual(ev["listener"], "127.0.0.1:%d" % proxy.port, ev)
        return ev

    # -- identities ------------------------------------------------------------------------------------
    def test_listening_event_says_client_certificate_required(self):
        ev = self.proxy.wait_event(event="egressd.listening")
        self.assertEqual((ev["tls"], ev["proxy_protocol"]), ("client_certificate_required", "off"), ev)
        plain = self.start_proxy({"listeners": ["127.0.0.1:0"]})
        self.assertEqual(plain.wait_event(event="egressd.listening")["tls"], "off")

    def test_uri_san_prefix_identity_with_curl(self):
        r = self.curl_tls(self.url("batch.test"))
        self.assertEqual((r.returncode, r.stdout), (0, b"hello"), r.stderr)
        get = self.proxy.wait_event(event="egress.allow", method="GET")
        self.assertEqual((get["client"], get["identity"], get["identity_source"], get["host"]),
                         ("batch", WORKER_ID, "mtls", "batch.test"), get)
        self.assertEqual(get["rule_group"], "batch-web", get)
        self.assertTrue(get["source"].startswith("127.0.0.1:"), get)
        # CONNECT over the TLS connection (curl -p), plain HTTP inside the tunnel.
        r = self.curl_tls("-p", self.url("batch.test"))
        self.assertEqual((r.returncode, r.stdout), (0, b"hello"), r.stderr)
        conn = self.proxy.wait_event(event="egress.allow", method="CONNECT")
        self.assertEqual((conn["client"], conn["identity"], conn["identity_source"], conn["host"], conn["port"]),
                         ("batch", WORKER_ID, "mtls", "batch.test", self.upstream.port), conn)
        self.assertEqual([r["path"] for r in self.upstream.requests], ["/hello", "/hello"])
        # The identity's client decides with its own groups: intranet is the source-matched client's.
        r = self.curl_tls("-o", "/dev/null", "-w", "%{http_code}", self.url("intranet"))
        self.assertEqual(r.stdout, b"403", r)
        deny = self.proxy.wait_event(event="egress.deny", host="intranet")
        self.assertEqual((deny["client"], deny["reason"], deny["identity"]), ("batch", "no_matching_rule", WORKER_ID))
        self.assertEqual(len(self.upstream.requests), 2)

    def test_identity_preference_uri_then_dns_then_cn(self):
        self.assert_fetched("pref.test", "uri-named", "spiffe://e2e.test/pref/a", cert="pref-a")
        self.assert_fetched("pref.test", "dns-named", "b.pref.test", cert="pref-b")
        self.assert_fetched("pref.test", "cn-named", "pref-c", cert="pref-c")
        self.assertEqual(len(self.upstream.requests), 3)
        self.assertEqual(self.proxy.events(event="egress.deny"), [])

    def test_identity_and_source_must_both_match(self):
        # alice from 127.0.0.1: neither alice client (127.0.0.2, 203.0.113.0/24) matches, so the source does.
        resp = self.fetch("office.test", cert="alice")
        self.assertEqual(resp.status, 403, resp)
        self.assertEqual(resp.header("X-Egressd-Reason"), "no_matching_rule", resp)
        deny = self.proxy.wait_event(event="egress.deny", request_id=resp.header("X-Egressd-Request-Id"))
        self.assertEqual((deny["client"], deny["identity"], deny["identity_source"]), ("local", ALICE_ID, "mtls"))
        self.assertEqual(self.dns.count("office.test"), 0)
        self.assert_upstreams_untouched()
        # From 127.0.0.2: the office client.
        self.assert_fetched("office.test", "office", ALICE_ID, cert="alice", source="127.0.0.2")
        # And the source alone does not make anyone alice: worker from 127.0.0.2 is batch, not office.
        resp = self.fetch("office.test", cert="worker", source="127.0.0.2")
        self.assertEqual(resp.status, 403, resp)
        deny = self.proxy.wait_event(event="egress.deny", request_id=resp.header("X-Egressd-Request-Id"))
        self.assertEqual((deny["client"], deny["identity"]), ("batch", WORKER_ID))
        self.assertEqual(len(self.upstream.requests), 1)

    # -- refusals --------------------------------------------------------------------------------------
    def test_no_client_certificate_refused(self):
        self.attempt_refused(None)
        self.assert_connection_refused("client_cert_missing", detail="no client certificate")
        r = self.curl_tls(self.url("batch.test"), cert=None)
        self.assertNotEqual(r.returncode, 0, r)
        self.assertEqual(r.stdout, b"")
        self.assert_connection_refused("client_cert_missing", detail="no client certificate", count=2)
        self.assert_nothing_reached()

    def test_certificate_of_another_ca_refused(self):
        self.attempt_refused("stranger", pki=self.other_pki)
        (ev,) = self.assert_connection_refused("client_cert_rejected")
        self.assertIn("issuer", ev["detail"], ev)  # "unable to get local issuer certificate"
        self.assert_nothing_reached()

    def test_certificate_revoked_before_start_refused(self):
        self.attempt_refused("revoked")
        self.assert_connection_refused("client_cert_rejected", detail="certificate revoked")
        self.assert_nothing_reached()
        # The CRL does not refuse the CA's other certificates.
        self.assert_fetched("batch.test", "batch", WORKER_ID)

    def test_certificate_name_with_a_space_is_an_invalid_identity(self):
        self.attempt_refused("spaced")
        (ev,) = self.assert_connection_refused("client_identity_invalid")
        self.assertIn("common_name", ev["detail"], ev)
        self.assert_nothing_reached()

    def test_plain_http_to_the_tls_port_gets_no_plain_text(self):
        request = ("GET %s HTTP/1.1\r\nHost: batch.test\r\n\r\n" % self.url("batch.test")).encode()
        data = self.proxy.send_raw_bytes(request)
        self.assertNotIn(b"HTTP/", data)
        self.assertNotIn(b"X-Egressd", data)
        self.assertTrue(data == b"" or data[:1] == b"\x15", "not a TLS alert: %r" % data)  # at most an alert
        self.assert_connection_refused("tls_handshake_failed")
        # A CONNECT in plain text, likewise.
        data = self.proxy.send_raw_bytes(b"CONNECT batch.test:%d HTTP/1.1\r\nHost: batch.test\r\n\r\n" % self.echo.port)
        self.assertNotIn(b"HTTP/", data)
        self.assert_connection_refused("tls_handshake_failed", count=2)
        self.assert_nothing_reached()

    # -- optional certificates and server-only TLS -----------------------------------------------------
    def test_optional_client_certificate(self):
        proxy = self.start_proxy({"listeners": [tls_listener(self.pki, mode="optional")]})
        self.assertEqual(proxy.wait_event(event="egressd.listening")["tls"], "client_certificate_optional")
        # No certificate: decided by the source, with no identity.
        self.assert_fetched("intranet", "local", None, cert=None, proxy=proxy)
        resp = self.fetch("batch.test", cert=None, proxy=proxy)
        self.assertEqual(resp.status, 403, resp)
        deny = proxy.wait_event(event="egress.deny", request_id=resp.header("X-Egressd-Request-Id"))
        self.assertEqual((deny["client"], deny["reason"]), ("local", "no_matching_rule"), deny)
        self.assertNotIn("identity", deny)
        # A certificate: decided by its identity.
        self.assert_fetched("batch.test", "batch", WORKER_ID, proxy=proxy)
        # Optional does not mean unchecked: a foreign or revoked certificate is still refused.
        self.attempt_refused("stranger", pki=self.other_pki, proxy=proxy)
        self.attempt_refused("revoked", proxy=proxy)
        evs = self.assert_connection_refused("client_cert_rejected", proxy=proxy, count=2)
        self.assertIn("certificate revoked", [e["detail"] for e in evs])
        self.assertEqual(len(proxy.events(event="egress.allow")), 2)
        self.assertEqual(len(self.upstream.requests), 2)

    def test_server_only_tls_decides_by_source(self):
        proxy = self.start_proxy({"listeners": [tls_listener(self.pki, client_ca=False)]})
        self.assertEqual(proxy.wait_event(event="egressd.listening")["tls"], "on")
        self.assert_fetched("intranet", "local", None, cert=None, proxy=proxy)
        # No certificate is asked for, so none names anyone.
        self.assert_fetched("intranet", "local", None, cert="worker", proxy=proxy)
        r = self.curl_tls(self.url("intranet"), cert=None, proxy=proxy)
        self.assertEqual((r.returncode, r.stdout), (0, b"hello"), r.stderr)

    # -- other listener features over TLS --------------------------------------------------------------
    def test_proxy_header_before_the_handshake(self):
        listener = tls_listener(self.pki, proxy_protocol=["127.0.0.1/32"])
        proxy = self.start_proxy({"listeners": [listener]})
        ev = proxy.wait_event(event="egressd.listening")
        self.assertEqual((ev["tls"], ev["proxy_protocol"]), ("client_certificate_required", "on"), ev)
        # The header's source and the certificate's identity together pick office-lb.
        self.assert_fetched("lb.test", "office-lb", ALICE_ID, cert="alice", proxy=proxy,
                            header=v1_header("203.0.113.7", 40000), event_source="203.0.113.7:40000")
        self.assert_fetched("batch.test", "batch", WORKER_ID, proxy=proxy, header=v1_header("203.0.113.8", 40001),
                            event_source="203.0.113.8:40001")
        # An untrusted source without a header is itself: alice from 127.0.0.2 is office.
        self.assert_fetched("office.test", "office", ALICE_ID, cert="alice", proxy=proxy, source="127.0.0.2")
        # A trusted source that starts with TLS instead of the header: refused, and nothing in plain text.
        hello = harness.capture_client_hello(servername="127.0.0.1")
        with proxy.connect() as c:
            c.send(hello)
            self.assertEqual(c.read_until_close(timeout=REQUEST_TIMEOUT), b"")
        close = proxy.wait_event(event="egress.close", cause="missing_proxy_header")
        self.assertTrue(close["source"].startswith("127.0.0.1:"), close)
        self.assertEqual(len(proxy.events(event="egress.allow")), 3)
        self.assertEqual(len(self.upstream.requests), 3)

    def test_certificate_stands_in_for_proxy_authentication(self):
        r = subprocess.run([harness.egressd_binary(), "passwd", "carol"], input=(PASSWORD + "\n").encode(),
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r)
        users = os.path.join(self.tmp.name, "users.txt")
        with open(users, "w") as f:
            f.write(r.stdout.decode())
        auth_yaml = "proxy_auth:\n  credentials: %s\n  realm: e2e\n  required: true\n" % json.dumps(users)
        proxy = self.start_proxy({"listeners": [tls_listener(self.pki), "127.0.0.1:0"]}, extra_yaml=auth_yaml)
        plain = proxy.wait_event(event="egressd.listening", tls="off")
        plain_port = int(plain["address"].rpartition(":")[2])
        # Authentication is on: the plain listener asks for it.
        with harness.HttpConn(plain_port) as c:
            resp = self.get(self.url("batch.test"), conn=c)
        self.assertEqual((resp.status, resp.header("X-Egressd-Reason")), (407, "proxy_auth_required"), resp)
        # The TLS listener with a verified certificate does not.
        self.assert_fetched("batch.test", "batch", WORKER_ID, proxy=proxy)
        # Credentials beside a certificate change nothing, and are never forwarded.
        basic = "Basic " + base64.b64encode(("carol:" + PASSWORD).encode()).decode()
        resp = self.fetch("batch.test", proxy=proxy, headers=[("Proxy-Authorization", basic)])
        self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)
        ev = proxy.wait_event(event="egress.allow", request_id=resp.header("X-Egressd-Request-Id"))
        self.assertEqual((ev["client"], ev["identity"], ev["identity_source"]), ("batch", WORKER_ID, "mtls"), ev)
        # curl -p: CONNECT without credentials.
        r = self.curl_tls("-p", self.url("batch.test"), proxy=proxy)
        self.assertEqual((r.returncode, r.stdout), (0, b"hello"), r.stderr)
        self.assertEqual(proxy.events(reason="proxy_auth_required", method="CONNECT"), [])
        reqs = self.upstream.requests
        self.assertEqual(len(reqs), 3, reqs)
        for req in reqs:
            self.assertNotIn("proxy-authorization", [k.lower() for k, _ in req["headers"]], req)
        self.assertEqual(len(proxy.events(event="egress.deny")), 1)

    def test_sni_enforced_in_tunnels_over_tls(self):
        # curl: CONNECT tls.test over the TLS listener, then TLS for tls.test inside: passes.
        r = self.curl_tls("--cacert", self.cert, "https://tls.test:%d/" % self.tls.port)
        self.assertEqual((r.returncode, r.stdout), (0, b"hello over tls"), r.stderr)
        ev = self.proxy.wait_event(event="egress.allow", method="CONNECT", host="tls.test")
        self.assertEqual((ev["client"], ev["identity"]), ("batch", WORKER_ID), ev)
        # A ClientHello for another name, through a tunnel to tls.test: refused, the upstream gets nothing.
        wrong = harness.capture_client_hello(servername="evil.example")
        authority = "tls.test:%d" % self.rec.port
        with self.tls_conn("worker") as c:
            c.send("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority))
            self.assertEqual(c.read_head(), b"HTTP/1.1 200 Connection established\r\n\r\n")
            c.send(wrong)
            try:
                rest = c.read_until_close(timeout=REQUEST_TIMEOUT)
            except (ssl.SSLError, ConnectionError):
                rest = b""
            self.assertEqual(rest, b"")
        deny = self.proxy.wait_event(event="egress.deny", reason="sni_mismatch", timeout=REQUEST_TIMEOUT)
        self.assertEqual((deny["sni"], deny["host"], deny["client"], deny["identity"]),
                         ("evil.example", "tls.test", "batch", WORKER_ID), deny)
        self.assertTrue(self.rec.wait_all_closed(timeout=REQUEST_TIMEOUT), "the upstream connection stayed open")
        self.assertEqual(self.rec.received(), b"", "client bytes reached the upstream of a refused tunnel")
        # Not TLS at all under require: refused likewise.
        with self.tls_conn("worker") as c:
            c.send("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority))
            self.assertEqual(c.read_head(), b"HTTP/1.1 200 Connection established\r\n\r\n")
            c.send(b"GET / HTTP/1.1\r\nHost: tls.test\r\n\r\n")
            try:
                c.read_until_close(timeout=REQUEST_TIMEOUT)
            except (ssl.SSLError, ConnectionError):
                pass
        self.proxy.wait_event(event="egress.deny", reason="not_tls", timeout=REQUEST_TIMEOUT)
        self.assertTrue(self.rec.wait_all_closed(timeout=REQUEST_TIMEOUT))
        self.assertEqual(self.rec.received(), b"")
        # The matching name's hello goes through, whole.
        right = harness.capture_client_hello(servername="tls.test")
        with self.tls_conn("worker") as c:
            c.send("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority))
            self.assertEqual(c.read_head(), b"HTTP/1.1 200 Connection established\r\n\r\n")
            c.send(right)
            self.assertEqual(c.recv_exact(len(right)), right)  # echoed by the recorder
        self.assertEqual(self.rec.wait_bytes(len(right)), right)
        self.assertEqual(len(self.proxy.events(event="egress.deny")), 2)

    def test_connection_end_sends_close_notify(self):
        with self.tls_conn("worker", ragged_eofs_ok=False) as c:
            resp = self.get(self.url("batch.test"), headers=[("Connection", "close")], conn=c)
            self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)
            # A close_notify is a clean end (b""); a bare TCP close would raise SSLEOFError here.
            self.assertEqual(c.read_until_close(timeout=REQUEST_TIMEOUT), b"")
            self.assertTrue(c.eof)
        # A request egressd refuses, and a tunnel that ends, close with close_notify too.
        with self.tls_conn("worker", ragged_eofs_ok=False) as c:
            resp = self.get(self.url("intranet"), headers=[("Connection", "close")], conn=c)
            self.assertEqual(resp.status, 403, resp)
            self.assertEqual(c.read_until_close(timeout=REQUEST_TIMEOUT), b"")
        authority = "batch.test:%d" % self.echo.port
        with self.tls_conn("worker", ragged_eofs_ok=False) as c:
            c.send("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority))
            self.assertEqual(c.read_head(), b"HTTP/1.1 200 Connection established\r\n\r\n")
            c.send(b"ping")
            self.assertEqual(c.recv_exact(4), b"ping")
            # The half-close goes through as TLS close_notify from us; the echo answers BYE and closes.
            c.sock = c.sock.unwrap()  # sends our close_notify and waits for egressd's
            self.assertEqual(c.read_until_close(timeout=REQUEST_TIMEOUT), b"")

    # -- SIGHUP ----------------------------------------------------------------------------------------
    def test_revocation_takes_effect_at_sighup(self):
        self.assert_fetched("batch.test", "batch", BATCH_PREFIX + "sa/worker2", cert="worker2")
        with self.tls_conn("worker2") as established:
            resp = self.get(self.url("batch.test"), conn=established)
            self.assertEqual(resp.status, 200, resp)
            run_certs("revoke", self.pki, "worker2")
            ev = self.reload()
            self.assertEqual((ev["event"], ev["tls"]), ("egressd.reload", "reloaded"), ev)
            # New connections with it are refused...
            self.attempt_refused("worker2")
            self.assert_connection_refused("client_cert_rejected", detail="certificate revoked")
            # ... the established one is untouched...
            resp = self.get(self.url("batch.test"), conn=established)
            self.assertEqual(resp.status, 200, resp)
        # ... and the CA's other certificates still work.
        self.assert_fetched("batch.test", "batch", WORKER_ID)
        r = self.curl_tls(self.url("batch.test"), cert="worker2")
        self.assertNotEqual(r.returncode, 0, r)
        self.assert_connection_refused("client_cert_rejected", detail="certificate revoked", count=2)
        self.assertEqual(len(self.upstream.requests), 4)

    def test_tunnel_survives_sighup_and_broken_files_keep_the_old_ones(self):
        authority = "batch.test:%d" % self.rec.port
        with self.tls_conn("worker") as tunnel:
            tunnel.send("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority))
            self.assertEqual(tunnel.read_head(), b"HTTP/1.1 200 Connection established\r\n\r\n")
            tunnel.send(b"before the reload;")
            self.assertEqual(tunnel.recv_exact(18), b"before the reload;")
            ev = self.reload()
            self.assertEqual(ev["event"], "egressd.reload", ev)
            tunnel.send(b"after the reload;")
            self.assertEqual(tunnel.recv_exact(17), b"after the reload;")
            # A broken CRL: the reload fails and names it; the running files stay.
            crl = os.path.join(self.pki, "crl.pem")
            with open(crl, "w") as f:
                f.write("this is not a CRL\n")
            ev = self.reload()
            self.assertEqual((ev["event"], ev["tls"]), ("egressd.reload_failed", "kept the running files"), ev)
            self.assertIn(crl, ev["errors"], ev)
            tunnel.send(b"after the failed reload")
            self.assertEqual(tunnel.recv_exact(23), b"after the failed reload")
            self.assertIsNone(self.proxy.proc.poll())
            # The old CRL is still enforced (a context without it would let "revoked" in), and good
            # certificates still work.
            self.attempt_refused("revoked")
            self.assert_connection_refused("client_cert_rejected", detail="certificate revoked")
            self.assert_fetched("batch.test", "batch", WORKER_ID)
            # A missing key fails likewise.
            os.rename(os.path.join(self.pki, "proxy.key"), os.path.join(self.pki, "proxy.key.gone"))
            ev = self.reload()
            self.assertEqual(ev["event"], "egressd.reload_failed", ev)
            self.assertIn("proxy.key: cannot read the private key", ev["errors"], ev)
            self.assert_fetched("batch.test", "batch", WORKER_ID)
            tunnel.send(b"still here")
            self.assertEqual(tunnel.recv_exact(10), b"still here")
        self.assertEqual(self.rec.connections, 1)
        self.assertEqual(self.rec.wait_bytes(78), b"before the reload;after the reload;after the failed reloadstill here")


class MtlsStartupTest(unittest.TestCase):
    """Bad TLS files stop egressd before it serves: file:line:column at the listener's tls key, exit 1."""

    @classmethod
    def setUpClass(cls):
        if shutil.which("openssl") is None:
            raise unittest.SkipTest("no openssl command")
        cls.class_tmp = tempfile.TemporaryDirectory(prefix="egressd-e2e-")
        cls.dir = cls.class_tmp.name
        pki = os.path.join(cls.dir, "pki")
        run_certs("ca", pki)
        run_certs("server", pki, "proxy")
        run_certs("client", pki, "worker", "--uri", WORKER_ID)
        with open(os.path.join(cls.dir, "policy.yaml"), "w") as f:
            f.write("version: 1\nclients:\n  c:\n    sources: [127.0.0.1/32]\n    groups: []\n")
        with open(os.path.join(pki, "garbage.pem"), "w") as f:
            f.write("not PEM at all\n")

    @classmethod
    def tearDownClass(cls):
        cls.class_tmp.cleanup()

    def write_config(self, tls_lines):
        """egressd.yaml with one TLS listener whose `tls:` key is at line 4, column 5; paths relative to it."""
        text = ("version: 1\nlisteners:\n  - address: 127.0.0.1:0\n    tls:\n" +
                "".join("      %s\n" % line for line in tls_lines) +
                'policy: policy.yaml\nworkers: 1\ndns:\n  servers: ["127.0.0.1:9"]\n')
        path = os.path.join(self.dir, "egressd-%s.yaml" % self.id().rpartition(".")[2])
        with open(path, "w") as f:
            f.write(text)
        return path

    def egressd(self, *args):
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        # From another directory: relative paths are the config file's, not the working directory's. A process
        # that starts serving despite bad files is killed by the timeout, and the test fails.
        return subprocess.run([harness.egressd_binary(), *args], capture_output=True, timeout=10, env=env,
                              stdin=subprocess.DEVNULL, cwd="/")

    def assert_refused_at_start(self, tls_lines, *messages):
        path = self.write_config(tls_lines)
        for args in (["run", "--config", path], ["config", "check", path]):
            with self.subTest(command=args[0]):
                r = self.egressd(*args)
                self.assertEqual(r.returncode, 1, r)
                self.assertNotIn(b"egressd.listening", r.stdout)
                err = r.stderr.decode()
                for m in messages:
                    self.assertIn("%s:4:5: error: %s" % (path, m), err)

    def test_good_files_with_relative_paths_pass_the_check(self):
        path = self.write_config(["certificate: pki/proxy.pem", "key: pki/proxy.key", "client_ca: pki/ca.pem",
                                  "crl: pki/crl.pem"])
        r = self.egressd("config", "check", path)
        self.assertEqual(r.returncode, 0, r)

    def test_missing_key(self):
        self.assert_refused_at_start(
            ["certificate: pki/proxy.pem", "key: pki/missing.key", "client_ca: pki/ca.pem"],
            os.path.join(self.dir, "pki/missing.key") + ": cannot read the private key: No such file or directory")

    def test_key_not_matching_certificate(self):
        path = self.write_config(["certificate: pki/proxy.pem", "key: pki/worker.key"])
        for args in (["run", "--config", path], ["config", "check", path]):
            with self.subTest(command=args[0]):
                r = self.egressd(*args)
                self.assertEqual(r.returncode, 1, r)
                self.assertNotIn(b"egressd.listening", r.stdout)
                err = r.stderr.decode()
                self.assertIn("%s:4:5: error: %s" % (path, os.path.join(self.dir, "pki/worker.key")), err)
                self.assertIn("does not match the certificate", err)

    def test_missing_ca_and_broken_crl_both_reported(self):
        self.assert_refused_at_start(
            ["certificate: pki/proxy.pem", "key: pki/proxy.key", "client_ca: pki/nowhere.pem",
             "crl: pki/garbage.pem"],
            os.path.join(self.dir, "pki/nowhere.pem") + ": cannot read the client CA file: No such file or directory",
            os.path.join(self.dir, "pki/garbage.pem") + ": no CRL in the file")


if __name__ == "__main__":
    unittest.main()
