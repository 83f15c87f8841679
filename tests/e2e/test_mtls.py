"""The TLS listener (an HTTPS proxy) with client certificates: identities from URI SAN, DNS SAN or CN, refusals
of missing, foreign, revoked and unusable certificates (each an egress.deny event, never a plain-text answer),
optional certificates, identity AND source, PROXY headers before the handshake, proxy authentication beside a
certificate, SNI checks inside tunnels carried over TLS, close_notify, SIGHUP reloads of the TLS files (good
and broken) and bad TLS files at start-up.

Clients are curl (--proxy https://...) and Python's ssl module. The PKI comes from certs/egressd-certs (made
once per class, copied for every test so that a test may revoke or break files); a second CA plays the
stranger; what the script will not make (unusable names, an intermediate CA) is made with the openssl command.
Whenever a connection is refused, the upstreams behind it must have seen nothing, and DNS no query for the
name asked for.
"""

import base64
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import unittest
import warnings

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
BANNER = b"SSH-2.0-e2e-upstream\r\n"
LONG_URI = BATCH_PREFIX + "sa/" + "l" * (2048 - len(BATCH_PREFIX + "sa/"))  # 2048 bytes


def run_certs(*args):
    r = subprocess.run([CERTS_SCRIPT] + [str(a) for a in args], capture_output=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("egressd-certs %s failed: %r" % (" ".join(map(str, args)), r))
    return r


def openssl_sign(directory, name, subject, ext_text, ca_pem, ca_key, serial, days=2):
    """directory/NAME.key and directory/NAME.pem (the leaf only), signed by ca_pem/ca_key with the openssl
    command: for what egressd-certs will not make (a CN with a space, an intermediate CA and its leaves)."""
    key, csr, pem, ext = (os.path.join(directory, name + s) for s in (".key", ".csr", ".pem", ".ext"))
    with open(ext, "w") as f:
        f.write(ext_text)
    for cmd in (["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", key, "-subj", subject, "-out", csr],
                ["openssl", "x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-set_serial", serial,
                 "-days", str(days), "-sha256", "-extfile", ext, "-out", pem]):
        r = subprocess.run(cmd, capture_output=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError("%s failed: %r" % (" ".join(cmd[:2]), r))
    return pem, key


CLIENT_EXT = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"


def make_pki(directory):
    """The class's PKI in directory/pki (CA, server "proxy", CLIENTS, a revoked one, one CN with a space, a leaf
    of an intermediate CA) and a stranger CA in directory/other with a client whose URI would match the batch
    client."""
    pki = os.path.join(directory, "pki")
    run_certs("ca", pki)
    run_certs("server", pki, "proxy")
    for name, flags in CLIENTS.items():
        run_certs("client", pki, name, *flags)
    run_certs("revoke", pki, "revoked")
    ca_pem, ca_key = os.path.join(pki, "ca.pem"), os.path.join(pki, "ca.key")
    # A CN with a space and no SAN: signed by the class's CA, so only its identity is wrong.
    openssl_sign(pki, "spaced", "/CN=bad name", CLIENT_EXT, ca_pem, ca_key, "0x5e2e0001")
    # URI SANs that the batch prefix would match, were they usable identities: one with a space, one of 2049
    # bytes (one too many); and one of exactly 2048 bytes, the longest usable.
    uris = {"space-uri": BATCH_PREFIX + "sa/a b", "uri-2049": LONG_URI + "x", "uri-2048": LONG_URI}
    for i, (name, uri) in enumerate(sorted(uris.items())):
        openssl_sign(pki, name, "/CN=" + name, CLIENT_EXT + "subjectAltName=URI:%s\n" % uri, ca_pem, ca_key,
                     "0x5e2e001%d" % i)
    # An intermediate CA (no CRL of its own anywhere) and a client it issued; chained.pem holds leaf and
    # intermediate, so the client sends the whole chain.
    int_pem, int_key = openssl_sign(
        pki, "intermediate", "/CN=e2e intermediate CA",
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n", ca_pem, ca_key, "0x5e2e0002")
    leaf_pem, _ = openssl_sign(pki, "chained", "/CN=chained",
                               CLIENT_EXT + "subjectAltName=URI:%ssa/chained\n" % BATCH_PREFIX,
                               int_pem, int_key, "0x5e2e0003")
    with open(leaf_pem, "a") as out, open(int_pem) as f:
        out.write(f.read())
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


def v2_header(src, sport, dst="127.0.0.1", dport=3128):
    block = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return b"\r\n\r\n\x00\r\nQUIT\n" + b"\x21\x11" + struct.pack("!H", len(block)) + block


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
        self.banner = harness.RecordingServer(banner=BANNER)  # speaks first, then echoes
        self.addCleanup(self.banner.stop)
        self.egressd_settings = {"listeners": [tls_listener(self.pki)]}
        super().setUp()

    def dns_records(self):
        records = harness.default_records()
        for name in ("batch.test", "office.test", "lb.test", "pref.test"):
            records[name] = {"A": ["127.0.0.1"], "ttl": 60}
        return records

    def policy_text(self):
        web = harness._yaml_list([self.upstream.port, self.echo.port, self.rec.port, self.banner.port])
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
    def cert_files(self, name, pki=None):
        base = os.path.join(pki or self.pki, name)
        return base + ".pem", base + ".key"

    def client_context(self, cert=None, pki=None, max_version=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.ca)  # egressd's server certificate, for 127.0.0.1
        if max_version is not None:
            ctx.maximum_version = max_version
        if cert is not None:
            ctx.load_cert_chain(*self.cert_files(cert, pki))
        return ctx

    def open_tls(self, c, cert, pki, header, context, session, cork, ragged_eofs_ok=True):
        """Sends the PROXY header (if any) on the connection c, then makes it TLS. cork: the header and the
        ClientHello leave in one TCP segment (held back by TCP_CORK until the handshake waits to read)."""
        if cork:
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        if header:
            c.send(header)
        ctx = context or self.client_context(cert, pki)
        c.sock = ctx.wrap_socket(c.sock, server_hostname="127.0.0.1", suppress_ragged_eofs=ragged_eofs_ok,
                                 session=session)
        if cork:
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)

    def tls_conn(self, cert=None, pki=None, source=None, proxy=None, header=b"", ragged_eofs_ok=True, port=None,
                 context=None, session=None, cork=False):
        """A connection to the TLS listener (a PROXY header first, in plain text, if given), handshake done."""
        proxy = proxy or self.proxy
        c = harness.HttpConn(port or proxy.port, proxy.host, timeout=REQUEST_TIMEOUT, source=source)
        try:
            self.open_tls(c, cert, pki, header, context, session, cork, ragged_eofs_ok)
        except BaseException:
            c.close()
            raise
        return c

    def url(self, host, path="/hello", port=None):
        return "http://%s:%d%s" % (host, port or self.upstream.port, path)

    def fetch(self, host, cert="worker", source=None, proxy=None, header=b"", headers=(), pki=None, port=None,
              cork=False):
        """One GET for host over a fresh TLS connection presenting cert; returns the response and the
        connection's own address ("ip:port", what an event's source is without a PROXY header)."""
        with self.tls_conn(cert, pki=pki, source=source, proxy=proxy, header=header, port=port, cork=cork) as c:
            own = "%s:%d" % c.sock.getsockname()[:2]
            return self.get(self.url(host), headers=headers, conn=c), own

    def assert_fetched(self, host, client, identity, cert="worker", source=None, proxy=None, header=b"",
                       event_source=None, headers=(), pki=None, port=None, cork=False,
                       identity_source="mtls"):
        """A 200 from the upstream for a GET over a fresh TLS connection, and its egress.allow event for this
        client and identity (event_source: the source the event must name; default the connection's own)."""
        proxy = proxy or self.proxy
        resp, own = self.fetch(host, cert=cert, source=source, proxy=proxy, header=header, headers=headers,
                               pki=pki, port=port, cork=cork)
        self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)
        ev = proxy.wait_event(event="egress.allow", source=event_source or own)
        self.assertEqual((ev["client"], ev["host"], ev["method"]), (client, host, "GET"), ev)
        if identity is None:
            self.assertNotIn("identity", ev)
            self.assertNotIn("identity_source", ev)
        else:
            self.assertEqual((ev.get("identity"), ev.get("identity_source")), (identity, identity_source), ev)
        return ev

    def assert_fetch_denied(self, host, client, identity, cert="worker", source=None, proxy=None,
                            reason="no_matching_rule", pki=None):
        """egressd's own 403 for a GET over a fresh TLS connection, and its egress.deny event."""
        proxy = proxy or self.proxy
        queries = self.dns.count(host)
        resp, _ = self.fetch(host, cert=cert, source=source, proxy=proxy, pki=pki)
        self.assertEqual((resp.status, resp.header("X-Egressd-Reason")), (403, reason), resp)
        ev = proxy.wait_event(event="egress.deny", request_id=resp.header("X-Egressd-Request-Id"))
        self.assertEqual((ev["client"], ev["host"], ev["reason"]), (client, host, reason), ev)
        if identity is None:
            self.assertNotIn("identity", ev)
        else:
            self.assertEqual((ev.get("identity"), ev.get("identity_source")), (identity, "mtls"), ev)
        self.assertEqual(self.dns.count(host), queries)  # refused in the name phase, before DNS
        return ev

    def attempt_refused(self, cert=None, pki=None, source=None, proxy=None, header=b"", host="batch.test",
                        context=None, session=None, port=None):
        """A TLS connection presenting cert that egressd must refuse: its handshake fails, or the connection
        ends without a single byte of answer to the request sent on it. Returns what the client saw."""
        proxy = proxy or self.proxy
        with harness.HttpConn(port or proxy.port, proxy.host, timeout=REQUEST_TIMEOUT, source=source) as c:
            try:
                self.open_tls(c, cert, pki, header, context, session, cork=False)
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
            pem, key = self.cert_files(cert)
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
        self.assertEqual(ev["trigger"], "SIGHUP", ev)
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
        self.assert_fetch_denied("office.test", "local", ALICE_ID, cert="alice")
        self.assert_upstreams_untouched()
        # From 127.0.0.2: the office client.
        self.assert_fetched("office.test", "office", ALICE_ID, cert="alice", source="127.0.0.2")
        # And the source alone does not make anyone alice: worker from 127.0.0.2 is batch, not office.
        self.assert_fetch_denied("office.test", "batch", WORKER_ID, source="127.0.0.2")
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

    def test_unusable_certificate_names_are_invalid_identities(self):
        # Each is signed by the right CA, and the two URIs start with the batch prefix: only the name is wrong.
        cases = (("spaced", "common_name"), ("space-uri", "uri_san"), ("uri-2049", "uri_san"))
        for cert, field in cases:
            with self.subTest(cert=cert):
                self.attempt_refused(cert)
        evs = self.assert_connection_refused("client_identity_invalid", count=len(cases))
        for ev, (cert, field) in zip(evs, cases):
            self.assertIn(field, ev["detail"], (cert, ev))
        self.assert_nothing_reached()
        # 2048 bytes is still an identity.
        self.assert_fetched("batch.test", "batch", LONG_URI, cert="uri-2048")

    def test_server_certificate_as_client_certificate_refused(self):
        # The CA's own server certificate (EKU serverAuth only) names no client.
        self.attempt_refused("proxy")
        self.assert_connection_refused("client_cert_rejected", detail="unsuitable certificate purpose")
        self.assert_nothing_reached()

    def test_intermediate_ca_without_a_crl_fails_closed(self):
        # CRL_CHECK_ALL: the intermediate has no CRL, so its leaves cannot be checked and are refused...
        self.attempt_refused("chained")
        self.assert_connection_refused("client_cert_rejected", detail="unable to get certificate CRL")
        self.assert_nothing_reached()
        # ... while without a CRL configured, the same chain verifies (so the CRL check is what refused it).
        proxy = self.start_proxy({"listeners": [tls_listener(self.pki, crl=False)]})
        self.assert_fetched("batch.test", "batch", BATCH_PREFIX + "sa/chained", cert="chained", proxy=proxy)
        # Without a CRL, the revoked certificate is just a certificate: the refusal above came from the CRL.
        self.assert_fetched("batch.test", "batch", BATCH_PREFIX + "sa/revoked", cert="revoked", proxy=proxy)

    def test_handshake_must_finish_within_the_header_timeout(self):
        hello = harness.capture_client_hello(servername="127.0.0.1")
        for name, data in (("silent", b""), ("half a ClientHello", hello[:len(hello) // 2])):
            with self.subTest(client=name):
                with self.proxy.connect(timeout=10) as c:
                    own = "%s:%d" % c.sock.getsockname()[:2]
                    t0 = time.monotonic()
                    if data:
                        c.send(data)
                    rest = c.read_until_close(timeout=8)
                    elapsed = time.monotonic() - t0
                    self.assertTrue(c.eof, "still open")
                self.assertEqual(rest, b"")
                self.assertGreater(elapsed, 0.5)   # timeouts.header is 1s
                self.assertLess(elapsed, 4)
                deny = self.proxy.wait_event(event="egress.deny", source=own)
                self.assertEqual((deny["reason"], deny["detail"], deny["method"]),
                                 ("tls_handshake_failed", "handshake timeout", "-"), deny)
                close = self.proxy.wait_event(event="egress.close", source=own)
                self.assertIn(close["cause"], ("header_timeout", "tls_handshake_failed"), close)
        self.assert_nothing_reached()

    def test_tls12_works_and_older_versions_are_refused(self):
        ctx = self.client_context("worker", max_version=ssl.TLSVersion.TLSv1_2)
        with self.tls_conn(context=ctx) as c:
            self.assertEqual(c.sock.version(), "TLSv1.2")
            resp = self.get(self.url("batch.test"), conn=c)
            self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)
        ev = self.proxy.wait_event(event="egress.allow")
        self.assertEqual((ev["client"], ev["identity"], ev["identity_source"]), ("batch", WORKER_ID, "mtls"), ev)
        # Under TLS 1.2 a revoked certificate fails the client's own handshake.
        seen = self.attempt_refused(context=self.client_context("revoked", max_version=ssl.TLSVersion.TLSv1_2))
        self.assertIn("SSLError", seen)
        self.assert_connection_refused("client_cert_rejected", detail="certificate revoked")
        # TLS 1.1 (allowed on our side for the test only) is refused by egressd.
        old = self.client_context("worker")
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            old.minimum_version = ssl.TLSVersion.TLSv1_1
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        self.attempt_refused(context=old)
        self.assert_connection_refused("tls_handshake_failed")
        self.assertEqual(len(self.upstream.requests), 1)

    def test_plain_http_to_the_tls_port_gets_no_plain_text(self):
        request = ("GET %s HTTP/1.1\r\nHost: batch.test\r\n\r\n" % self.url("batch.test")).encode()
        data = self.proxy.send_raw_bytes(request)
        self.assertNotIn(b"HTTP/", data)
        self.assertNotIn(b"X-Egressd", data)
        self.assertTrue(data == b"" or data[:1] == b"\x15", "not a TLS alert: %r" % data)  # at most an alert
        self.assert_connection_refused("tls_handshake_failed")
        # A CONNECT in plain text, likewise.
        data = self.proxy.send_raw_bytes(b"CONNECT batch.test:%d HTTP/1.1\r\nHost: batch.test\r\n\r\n"
                                         % self.echo.port)
        self.assertNotIn(b"HTTP/", data)
        self.assert_connection_refused("tls_handshake_failed", count=2)
        self.assert_nothing_reached()

    def test_connect_and_close_is_not_a_denial(self):
        # A load balancer's health check or a port probe: no byte, so no handshake was refused.
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=5):
            pass
        close = self.proxy.wait_event(event="egress.close", cause="client_closed", timeout=REQUEST_TIMEOUT)
        self.assertEqual((close["requests"], close["bytes_from_client"]), (0, 0), close)
        self.assertEqual(self.proxy.events(event="egress.deny"), [])
        # Half a ClientHello and then the end is a broken handshake, and is reported.
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=5) as c:
            c.sendall(b"\x16\x03\x01\x02\x00\x01")
        self.assert_connection_refused("tls_handshake_failed")
        self.assert_nothing_reached()

    # -- optional certificates and server-only TLS -----------------------------------------------------
    def test_optional_client_certificate(self):
        proxy = self.start_proxy({"listeners": [tls_listener(self.pki, mode="optional")]})
        self.assertEqual(proxy.wait_event(event="egressd.listening")["tls"], "client_certificate_optional")
        # No certificate: decided by the source, with no identity.
        self.assert_fetched("intranet", "local", None, cert=None, proxy=proxy)
        self.assert_fetch_denied("batch.test", "local", None, cert=None, proxy=proxy)
        # A certificate: decided by its identity.
        self.assert_fetched("batch.test", "batch", WORKER_ID, proxy=proxy)
        # Optional does not mean unchecked: a foreign or revoked certificate is still refused.
        self.attempt_refused("stranger", pki=self.other_pki, proxy=proxy)
        self.attempt_refused("revoked", proxy=proxy)
        evs = self.assert_connection_refused("client_cert_rejected", proxy=proxy, count=2)
        self.assertIn("certificate revoked", [e["detail"] for e in evs])
        # And a certificate whose name is unusable is refused, not taken for no certificate.
        self.attempt_refused("spaced", proxy=proxy)
        self.assert_connection_refused("client_identity_invalid", proxy=proxy)
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
        # The header and the ClientHello in one TCP segment (egressd must not read past the header), and a
        # v2 header likewise.
        self.assert_fetched("lb.test", "office-lb", ALICE_ID, cert="alice", proxy=proxy, cork=True,
                            header=v1_header("203.0.113.10", 40010), event_source="203.0.113.10:40010")
        self.assert_fetched("lb.test", "office-lb", ALICE_ID, cert="alice", proxy=proxy, cork=True,
                            header=v2_header("203.0.113.11", 40011), event_source="203.0.113.11:40011")
        # An untrusted source without a header is itself: alice from 127.0.0.2 is office.
        self.assert_fetched("office.test", "office", ALICE_ID, cert="alice", proxy=proxy, source="127.0.0.2")
        self.assertEqual(len(proxy.events(event="egress.allow")), 5)
        self.assertEqual(len(self.upstream.requests), 5)
        # Refusals of the header are silent on a TLS listener: a trusted source that starts with TLS instead
        # of the header, and an untrusted source that sends one.
        hello = harness.capture_client_hello(servername="127.0.0.1")
        for cause, source, data in (("missing_proxy_header", None, hello),
                                    ("untrusted_proxy_header", "127.0.0.2", v1_header("203.0.113.99", 40099) + hello)):
            with self.subTest(cause=cause):
                with proxy.connect(source=source) as c:
                    own = "%s:%d" % c.sock.getsockname()[:2]
                    c.send(data)
                    self.assertEqual(c.read_until_close(timeout=REQUEST_TIMEOUT), b"")
                close = proxy.wait_event(event="egress.close", source=own)
                self.assertEqual(close["cause"], cause, close)
        self.assertEqual(len(proxy.events(event="egress.allow")), 5)
        self.assertEqual(len(self.upstream.requests), 5)
        self.assertEqual(proxy.events(lambda e: "203.0.113.99" in e.get("source", "")), [])

    def test_certificate_stands_in_for_proxy_authentication(self):
        r = subprocess.run([harness.egressd_binary(), "passwd", "carol"], input=(PASSWORD + "\n").encode(),
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r)
        users = os.path.join(self.tmp.name, "users.txt")
        with open(users, "w") as f:
            f.write(r.stdout.decode())
        auth_yaml = "proxy_auth:\n  credentials: %s\n  realm: e2e\n  required: true\n" % json.dumps(users)
        proxy = self.start_proxy({"listeners": [tls_listener(self.pki), "127.0.0.1:0",
                                                tls_listener(self.pki, mode="optional")]}, extra_yaml=auth_yaml)
        plain_port = int(proxy.wait_event(event="egressd.listening", tls="off")["address"].rpartition(":")[2])
        optional_port = int(proxy.wait_event(event="egressd.listening",
                                             tls="client_certificate_optional")["address"].rpartition(":")[2])
        # Authentication is on: the plain listener asks for it.
        with harness.HttpConn(plain_port) as c:
            resp = self.get(self.url("batch.test"), conn=c)
        self.assertEqual((resp.status, resp.header("X-Egressd-Reason")), (407, "proxy_auth_required"), resp)
        # The TLS listener with a verified certificate does not.
        self.assert_fetched("batch.test", "batch", WORKER_ID, proxy=proxy)
        # Credentials beside a certificate change nothing, and are never forwarded.
        basic = "Basic " + base64.b64encode(("carol:" + PASSWORD).encode()).decode()
        self.assert_fetched("batch.test", "batch", WORKER_ID, proxy=proxy, headers=[("Proxy-Authorization", basic)])
        # curl -p: CONNECT without credentials.
        r = self.curl_tls("-p", self.url("batch.test"), proxy=proxy)
        self.assertEqual((r.returncode, r.stdout), (0, b"hello"), r.stderr)
        self.assertEqual(proxy.events(reason="proxy_auth_required", method="CONNECT"), [])
        self.assertEqual(len(self.upstream.requests), 3)
        # On the optional listener, a client without a certificate must authenticate.
        with self.tls_conn(None, proxy=proxy, port=optional_port) as c:
            resp = self.get(self.url("intranet"), conn=c)
        self.assertEqual((resp.status, resp.header("X-Egressd-Reason")), (407, "proxy_auth_required"), resp)
        self.assert_fetched("intranet", "local", "carol", cert=None, proxy=proxy, port=optional_port,
                            headers=[("Proxy-Authorization", basic)], identity_source="proxy_auth")
        self.assert_fetched("batch.test", "batch", WORKER_ID, proxy=proxy, port=optional_port)
        self.assertEqual(len(proxy.events(event="egress.deny")), 2)
        reqs = self.upstream.requests
        self.assertEqual(len(reqs), 5, reqs)
        for req in reqs:
            self.assertNotIn("proxy-authorization", [k.lower() for k, _ in req["headers"]], req)

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

    def test_tunnel_over_tls_relays_both_ways(self):
        # A server that speaks first: its banner must come through while egressd still waits for the client's
        # first bytes (tls: allow peeks at them).
        authority = "batch.test:%d" % self.banner.port
        with self.tls_conn("worker") as c:
            c.send("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority))
            self.assertEqual(c.read_head(), b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.assertEqual(c.recv_exact(len(BANNER)), BANNER)
            c.send(b"SSH-2.0-e2e-client\r\n")
            self.assertEqual(c.recv_exact(20), b"SSH-2.0-e2e-client\r\n")
        # A mebibyte each way through the echo, sent while reading (backpressure on both TLS directions).
        data = bytes(range(256)) * 4096
        authority = "batch.test:%d" % self.echo.port
        with self.tls_conn("worker") as c:
            c.send("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority))
            self.assertEqual(c.read_head(), b"HTTP/1.1 200 Connection established\r\n\r\n")
            got = bytearray()
            deadline = time.monotonic() + 20
            for offset in range(0, len(data), 65536):
                c.send(data[offset:offset + 65536])
                for _ in range(1000):  # keep at most 256 KiB in flight
                    if offset + 65536 - len(got) <= 262144 or time.monotonic() > deadline:
                        break
                    chunk = c.sock.recv(65536)
                    if not chunk:
                        break
                    got += chunk
            got += c.recv_exact(len(data) - len(got), timeout=20)
            self.assertTrue(bytes(got) == data, "the echoed bytes differ (%d of %d)" % (len(got), len(data)))
        close = self.proxy.wait_event(event="egress.close", method="CONNECT", port=self.echo.port)
        established = len(b"HTTP/1.1 200 Connection established\r\n\r\n")
        # (The echo may also have sent its "BYE\n" after our close.)
        self.assertGreaterEqual(close["bytes_to_client"], established + len(data), close)

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
        authority = "batch.test:%d" % self.rec.port
        with self.tls_conn("worker", ragged_eofs_ok=False) as c:
            c.send("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority))
            self.assertEqual(c.read_head(), b"HTTP/1.1 200 Connection established\r\n\r\n")
            c.send(b"ping")
            self.assertEqual(c.recv_exact(4), b"ping")
            # Our close_notify is the tunnel's half-close: the recorder sees EOF and closes, and egressd ends
            # the connection with its own close_notify, which unwrap() waits for (a bare TCP close, or data
            # after it, raises).
            c.sock.settimeout(REQUEST_TIMEOUT)
            c.sock = c.sock.unwrap()
            self.assertEqual(c.read_until_close(timeout=REQUEST_TIMEOUT), b"")
        self.assertTrue(self.rec.wait_all_closed(timeout=REQUEST_TIMEOUT))
        self.assertEqual(self.rec.received(), b"ping")
        self.proxy.wait_event(event="egress.close", method="CONNECT")

    # -- SIGHUP ----------------------------------------------------------------------------------------
    def test_revocation_takes_effect_at_sighup(self):
        self.assert_fetched("batch.test", "batch", BATCH_PREFIX + "sa/worker2", cert="worker2")
        # A TLS 1.2 session of worker2, offered again: never resumed (a resumed session skips the certificate
        # check, and with it the CRL).
        tls12 = self.client_context("worker2", max_version=ssl.TLSVersion.TLSv1_2)
        with self.tls_conn(context=tls12) as c:
            session = c.sock.session
        self.assertIsNotNone(session)
        with self.tls_conn(context=tls12, session=session) as c:
            self.assertFalse(c.sock.session_reused)
        with self.tls_conn("worker2") as established:
            resp = self.get(self.url("batch.test"), conn=established)
            self.assertEqual(resp.status, 200, resp)
            run_certs("revoke", self.pki, "worker2")
            ev = self.reload()
            self.assertEqual(ev["event"], "egressd.reload", ev)
            # The established connection is decided again against the new CRL, and closed...
            self.assertTrue(established.closed_by_peer(timeout=REQUEST_TIMEOUT))
            revoke = self.proxy.wait_event(event="egress.revoke")
            self.assertEqual((revoke["cause"], revoke["action"], revoke["identity"], revoke["detail"]),
                             ("certificate_revoked", "closed", BATCH_PREFIX + "sa/worker2", "certificate revoked"),
                             revoke)
            # ... new connections with it are refused, also when they offer the old session...
            self.attempt_refused("worker2")
            self.attempt_refused(context=tls12, session=session)
            self.assert_connection_refused("client_cert_rejected", detail="certificate revoked", count=2)
        # ... and the CA's other certificates still work.
        self.assert_fetched("batch.test", "batch", WORKER_ID)
        r = self.curl_tls(self.url("batch.test"), cert="worker2")
        self.assertNotEqual(r.returncode, 0, r)
        self.assert_connection_refused("client_cert_rejected", detail="certificate revoked", count=3)
        self.assertEqual(len(self.upstream.requests), 3)

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
            self.assertEqual(ev["event"], "egressd.reload_failed", ev)
            self.assertTrue(any(crl in e for e in ev["errors"]), ev)
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
            self.assertTrue(any("proxy.key: cannot read the private key" in e for e in ev["errors"]), ev)
            self.assert_fetched("batch.test", "batch", WORKER_ID)
            tunnel.send(b"still here")
            self.assertEqual(tunnel.recv_exact(10), b"still here")
            # Files fixed: the next reload takes them.
            os.rename(os.path.join(self.pki, "proxy.key.gone"), os.path.join(self.pki, "proxy.key"))
            run_certs("crl", self.pki)
            ev = self.reload()
            self.assertEqual(ev["event"], "egressd.reload", ev)
            self.attempt_refused("revoked")
            self.assert_connection_refused("client_cert_rejected", detail="certificate revoked", count=2)
            self.assert_fetched("batch.test", "batch", WORKER_ID)
        self.assertEqual(self.rec.connections, 1)
        sent = b"before the reload;after the reload;after the failed reloadstill here"
        self.assertEqual(self.rec.wait_bytes(len(sent)), sent)

    def test_sighup_reloads_server_certificate_client_cas_and_crls(self):
        with self.tls_conn("worker") as c:
            self.assertEqual(c.sock.getpeercert()["subject"], ((("commonName", "proxy"),),))
        self.attempt_refused("stranger", pki=self.other_pki)
        self.assert_connection_refused("client_cert_rejected")
        # A new server certificate, the stranger CA added to the client CAs, and its CRL to the CRL file.
        run_certs("server", self.pki, "proxy2")
        for ext in (".pem", ".key"):
            shutil.copyfile(os.path.join(self.pki, "proxy2" + ext), os.path.join(self.pki, "proxy" + ext))
        for name in ("ca.pem", "crl.pem"):
            with open(os.path.join(self.pki, name), "a") as out, open(os.path.join(self.other_pki, name)) as f:
                out.write(f.read())
        ev = self.reload()
        self.assertEqual(ev["event"], "egressd.reload", ev)
        with self.tls_conn("worker") as c:
            self.assertEqual(c.sock.getpeercert()["subject"], ((("commonName", "proxy2"),),))
            resp = self.get(self.url("batch.test"), conn=c)
            self.assertEqual(resp.status, 200, resp)
        self.assert_fetched("batch.test", "batch", BATCH_PREFIX + "sa/stranger", cert="stranger", pki=self.other_pki)
        # The first CA's CRL still counts.
        self.attempt_refused("revoked")
        evs = self.assert_connection_refused("client_cert_rejected", count=2)
        self.assertEqual([e["detail"] for e in evs],
                         ["unable to get local issuer certificate", "certificate revoked"])


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
        """egressd.yaml with one TLS listener, its settings from line 5 on (paths relative to the file)."""
        text = ("version: 1\nlisteners:\n  - address: 127.0.0.1:0\n    tls:\n" +
                "".join("      %s\n" % line for line in tls_lines) +
                'policy: policy.yaml\nworkers: 1\ndns:\n  servers: ["127.0.0.1:9"]\n')
        path = os.path.join(self.dir, "egressd-%s.yaml" % self.id().rpartition(".")[2])
        with open(path, "w") as f:
            f.write(text)
        return path

    @staticmethod
    def value_at(tls_lines, key):
        """line:column of the value of `key` among tls_lines, as write_config lays them out."""
        for i, line in enumerate(tls_lines):
            if line.startswith(key + ": "):
                return "%d:%d" % (5 + i, 7 + len(key) + 2)
        raise KeyError(key)

    def egressd(self, *args):
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        # From another directory: relative paths are the config file's, not the working directory's. A process
        # that starts serving despite bad files is killed by the timeout, and the test fails.
        return subprocess.run([harness.egressd_binary(), *args], capture_output=True, timeout=10, env=env,
                              stdin=subprocess.DEVNULL, cwd="/")

    def assert_refused_at_start(self, tls_lines, *expected):
        """`run` and `config check` both exit 1 without serving, with each (key, message) of expected reported
        at the value of that key: CONFIG:LINE:COL: error: MESSAGE. Returns the stderr of `run`."""
        path = self.write_config(tls_lines)
        errs = []
        for args in (["run", "--config", path], ["config", "check", path]):
            with self.subTest(command=args[0]):
                r = self.egressd(*args)
                self.assertEqual(r.returncode, 1, r)
                self.assertNotIn(b"egressd.listening", r.stdout)
                err = r.stderr.decode()
                for key, message in expected:
                    self.assertIn("%s:%s: error: %s" % (path, self.value_at(tls_lines, key), message), err)
                errs.append(err)
        return errs[0]

    def pki(self, name):
        return os.path.join(self.dir, "pki", name)

    def test_good_files_with_relative_paths_pass_the_check(self):
        path = self.write_config(["certificate: pki/proxy.pem", "key: pki/proxy.key", "client_ca: pki/ca.pem",
                                  "crl: pki/crl.pem"])
        r = self.egressd("config", "check", path)
        self.assertEqual(r.returncode, 0, r)

    def test_sighup_while_starting_does_not_kill(self):
        # A supervisor may reload as soon as it started egressd: until the server handles SIGHUP, its default
        # action would end the process. A policy of 500,000 names keeps egressd loading for a good while; SIGHUPs
        # go out every few milliseconds from 0.25 s after the start (time to get into main) until it serves.
        rules = "".join("      - ports: [443]\n        destinations: [%s]\n" %
                        ", ".join("h%d-%d.example" % (r, i) for i in range(100)) for r in range(5000))
        with open(os.path.join(self.dir, "big-policy.yaml"), "w") as f:
            f.write("version: 1\ngroups:\n  g:\n    rules:\n" + rules +
                    "clients:\n  c:\n    sources: [127.0.0.1/32]\n    groups: [g]\n")
        path = os.path.join(self.dir, "egressd-sighup.yaml")
        with open(path, "w") as f:
            f.write("version: 1\nlisteners:\n  - address: 127.0.0.1:0\n    tls: {certificate: pki/proxy.pem, "
                    "key: pki/proxy.key, client_ca: pki/ca.pem, crl: pki/crl.pem}\npolicy: big-policy.yaml\n"
                    "workers: 1\n")
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        proc = subprocess.Popen([harness.egressd_binary(), "run", "--config", path], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        stderr = harness.StderrWatch(proc)
        sent = 0
        try:
            time.sleep(0.25)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and proc.poll() is None:
                if any(b"egressd.start" in line for line in lines):
                    break
                proc.send_signal(signal.SIGHUP)
                sent += 1
                time.sleep(0.005)
            self.assertIsNone(proc.poll(), "egressd died of SIGHUP number %d while starting: %r" %
                              (sent, proc.returncode))
            self.assertGreater(sent, 10, "egressd started too fast for this test to mean anything")
            self.assertTrue(any(b"egressd.listening" in line for line in lines), lines)
        finally:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=30)
            reader.join(timeout=5)
            stderr.check()
            proc.stdout.close()
            proc.stderr.close()
        self.assertEqual(proc.returncode, 0)

    def test_missing_key(self):
        self.assert_refused_at_start(
            ["certificate: pki/proxy.pem", "key: pki/missing.key", "client_ca: pki/ca.pem"],
            ("key", self.pki("missing.key") + ": cannot read the private key: No such file or directory"))

    def test_missing_certificate(self):
        self.assert_refused_at_start(
            ["certificate: pki/nothing.pem", "key: pki/proxy.key"],
            ("certificate", self.pki("nothing.pem") + ": cannot read the certificate: No such file or directory"))

    def test_key_not_matching_certificate(self):
        # Well-formed PEM keys of other certificates: the problem is the mismatch, not the file's format. An EC
        # key like the certificate's, and an RSA key (which OpenSSL loads beside the EC certificate unchecked).
        rsa = self.pki("rsa.key")
        if not os.path.exists(rsa):
            r = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                                "-out", rsa], capture_output=True, timeout=60)
            self.assertEqual(r.returncode, 0, r)
        for key in ("worker.key", "rsa.key"):
            with self.subTest(key=key):
                err = self.assert_refused_at_start(["certificate: pki/proxy.pem", "key: pki/" + key],
                                                   ("key", self.pki(key) + ": "))
                self.assertIn("does not match the certificate", err)
                self.assertNotIn("not a PEM private key", err)

    def test_missing_ca_and_broken_crl_both_reported(self):
        self.assert_refused_at_start(
            ["certificate: pki/proxy.pem", "key: pki/proxy.key", "client_ca: pki/nowhere.pem",
             "crl: pki/garbage.pem"],
            ("client_ca", self.pki("nowhere.pem") + ": cannot read the client CA file: No such file or directory"),
            ("crl", self.pki("garbage.pem") + ": no CRL in the file"))


if __name__ == "__main__":
    unittest.main()
