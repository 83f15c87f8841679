"""Rules that name methods and paths, deny lists of groups and clients, and destinations_file lists, through a real
egressd.

Methods: a rule's methods are the plain-HTTP methods it allows; a CONNECT matches only a rule that lists CONNECT
(and no paths), because what a tunnel carries cannot be seen. Paths: egressd normalises a forwarded request's path
(percent-decoding of unreserved characters, upper-case hex, dot segments removed), decides on it and forwards that
normal form, the query untouched; an allow rule also needs its prefix on the "loose" form a lenient server may read
(%2F, %5C and '\\' as '/', '//' merged, ';params' dropped), a deny rule matches either. Each bypass attempt is sent
byte for byte (curl would normalise it first) against an allow rule on /simple/ and a deny rule on /admin.
Deny lists: every deny that applies to the client wins (global, its own, its groups'), and the events name the list.
List files: read relative to the policy file, watched like it, part of the digest; a bad line fails the reload and
the old policy stays; a reload that drops a name closes the tunnels it had allowed.

Every name resolves to 127.0.0.1 (the loopback DNS server); loopback is opened through the address guard by
`except: [loopback]`, so the name rules alone decide.
"""

import os
import re
import time

import harness

harness.isolate_network()

HEX64 = re.compile(r"^[0-9a-f]{64}$")
REVOKE_WITHIN = 1.5  # seconds from the reload to the client seeing its revoked tunnel closed
NAMES = ("get.test", "head.test", "tunnel.test", "paths.test", "open.test", "post.test", "mine.test", "blocked.test",
         "vendor.test", "x.cdn.test", "late.test", "nope.test")
# The list file, as the policy starts with it: comments, a blank line, indentation.
LIST_V1 = "# vendor mirrors\nvendor.test\n\n  .cdn.test   # and every host under it\n"
LIST_V2 = "late.test\n.cdn.test\n"
LISTS = {"vendor.txt": LIST_V1, "deny.txt": "nope.test\n"}


class PolicyRulesBase(harness.ProxyTestCase):
    """The policy below, as the file policy.yaml of a policy directory; its list files in the test's temporary
    directory, two levels up from the policy file, which names them relatively ("../../lists/vendor.txt"):
    resolved against egressd's working directory instead, those names would point outside the test's directory."""

    watch = False

    def extra_yaml(self):
        return harness.admin_yaml() + harness.reload_yaml(watch=self.watch, debounce="200ms")

    def dns_records(self):
        records = harness.default_records()
        for name in NAMES:
            records[name] = {"A": ["127.0.0.1"], "ttl": 60}
        return records

    def start_proxy(self, settings=None, policy_text=None, extra_yaml=None, **kwargs):
        lists = os.path.join(self.tmp.name, "lists")
        self.list_path = os.path.join(lists, "vendor.txt")
        if not os.path.isdir(lists):
            os.mkdir(lists)
            for name, text in LISTS.items():
                with open(os.path.join(lists, name), "w") as f:
                    f.write(text)
        kwargs.setdefault("policy_files", {"policy.yaml": policy_text or self.policy_text()})
        return super().start_proxy(settings, policy_text, extra_yaml, **kwargs)

    def make_policy(self, index_paths=("/simple/", "/packages/"), index_parent=None):
        """index_parent: the port of a parent proxy on 127.0.0.1 for the index group's traffic."""
        p, e = self.upstream.port, self.echo.port
        parent = "    upstream_proxy: http://127.0.0.1:%d\n" % index_parent if index_parent else ""
        return f"""version: 1
address_guard:
  except: [loopback]
groups:
  methods:
    rules:
      - description: GET only, on both ports (so that a CONNECT to the echo port misses by method, not port)
        ports: [{p}, {e}]
        destinations: [get.test]
        methods: [GET]
      - description: HEAD only
        ports: [{p}]
        destinations: [head.test]
        methods: [HEAD]
      - description: tunnels only
        ports: [{e}]
        destinations: [tunnel.test]
        methods: [CONNECT]
  index:
{parent}    rules:
      - description: the package index, read-only, under two prefixes
        ports: [{p}]
        destinations: [paths.test]
        methods: [GET, HEAD]
        paths: {harness._yaml_list(index_paths)}
      - description: every request, but what the global deny list refuses
        ports: [{p}]
        destinations: [open.test]
  vendor:
    rules:
      - description: the vendor list, any request, tunnels included
        ports: [{p}, {e}]
        destinations_file: ../../lists/vendor.txt
    deny:
      - description: refused to every client of the vendor group
        destinations: [blocked.test]
  shared:
    rules:
      - ports: [{p}]
        destinations: [post.test, mine.test, blocked.test, nope.test]
clients:
  tests:
    sources: [127.0.0.1/32]
    groups: [methods, index, vendor, shared]
    deny:
      - description: refused to this client only
        destinations: [mine.test]
  peer:
    sources: [127.0.0.3/32]
    groups: [vendor, shared]
  outsider:
    sources: [127.0.0.5/32]
    groups: [shared]
  canary:
    sources: [127.0.0.4/32]
    groups: [index]
    mode: report
deny:
  - description: the admin pages, whatever the spelling
    destinations: [open.test]
    paths: ["/admin"]
  - description: no uploads
    destinations: [post.test]
    methods: [POST]
  - description: names a list file refuses
    destinations_file: ../../lists/deny.txt
"""

    def policy_text(self):
        return self.make_policy()

    # -- requests --------------------------------------------------------------------------------------
    def url(self, host, path):
        return "http://%s:%d%s" % (host, self.upstream.port, path)

    def send(self, host, path, method="GET", source=None, body=b"", proxy=None):
        """One request with exactly this request target (no client-side normalisation), from `source`."""
        with (proxy or self.proxy).connect(source=source) as c:
            return self.get(self.url(host, path), method=method, body=body, conn=c)

    def assert_denied(self, resp, reason, client="tests", rule_group=None, rule_index=None, path=None,
                      proxy=None):
        """A 403 with the reason header, and its egress.deny event (naming the deciding list or group)."""
        self.assertIsNotNone(resp, "the proxy closed the connection without a response")
        self.assertEqual((resp.status, resp.header("X-Egressd-Reason")), (403, reason), resp)
        ev = (proxy or self.proxy).wait_event(event="egress.deny", request_id=resp.header("X-Egressd-Request-Id"))
        self.assertEqual((ev["reason"], ev["client"]), (reason, client), ev)
        if rule_group is not None:
            self.assertEqual((ev.get("rule_group"), ev.get("rule_index")), (rule_group, rule_index), ev)
        if path is not None:
            self.assertEqual(ev.get("path"), path, ev)
        return ev

    def assert_passed(self, resp, forwarded, status=404):
        """The upstream answered (404: its answer to any path but a few) and received exactly `forwarded` as the
        request target of its last request."""
        self.assertIsNotNone(resp, "the proxy closed the connection without a response")
        self.assertEqual(resp.status, status, resp)
        self.assertIsNone(resp.header("X-Egressd-Reason"), resp)
        requests = self.upstream.requests
        self.assertTrue(requests, "nothing reached the upstream")
        self.assertEqual(requests[-1]["path"], forwarded, requests)

    def decisions(self, **labels):
        _, samples = self.proxy.metrics()
        return harness.metric_value(samples, "egressd_decisions_total", **labels)

    def open_tunnel(self, host, source=None):
        """A CONNECT tunnel to the echo server; asserts it relays; returns the connection and its egress.allow."""
        c = self.proxy.connect(source=source)
        own = "%s:%d" % c.sock.getsockname()[:2]
        c.send("CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host, self.echo.port, host, self.echo.port))
        resp = c.read_response(method="CONNECT")
        self.assertEqual(resp.status, 200, resp)
        c.send(b"ping")
        self.assertEqual(c.recv_exact(4), b"ping")
        return c, self.proxy.wait_event(event="egress.allow", method="CONNECT", source=own)

    def connect_refused(self, host, reason):
        c, resp = self.connect_tunnel("%s:%d" % (host, self.echo.port))
        with c:
            self.assert_denied(resp, reason)

    def start_digest(self):
        digest = self.proxy.wait_event(event="egressd.start")["policy_digest"]
        self.assertRegex(digest, HEX64)
        return digest

    def assert_in_force(self, version, digest):
        """/status and /metrics name this policy version and digest."""
        status = self.proxy.admin_json("/status")
        self.assertEqual((status["policy"]["version"], status["policy"]["digest"]), (version, digest), status)
        _, samples = self.proxy.metrics()
        self.assertEqual(harness.metric_value(samples, "egressd_policy_version"), version)
        self.assertEqual(harness.metric_value(samples, "egressd_policy_info", digest=digest), 1)

    def write_list(self, text, rename):
        """Rewrites the list file: in place, or written beside it and renamed over it (as deployment tools do)."""
        if not rename:
            with open(self.list_path, "w") as f:
                f.write(text)
            return
        tmp = self.list_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.list_path)


class MethodRulesTest(PolicyRulesBase):

    def test_get_allowed_post_refused_with_curl(self):
        proxy = "http://127.0.0.1:%d" % self.proxy.port
        r = harness.curl("-x", proxy, "-D", "-", self.url("get.test", "/hello"))
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode("latin-1")
        self.assertTrue(out.startswith("HTTP/1.1 200"), out)
        self.assertTrue(out.endswith("\r\n\r\nhello"), out)
        r = harness.curl("-x", proxy, "-D", "-", "-o", "/dev/null", "--data-binary", "upload",
                         self.url("get.test", "/echo"))
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode("latin-1")
        self.assertTrue(out.startswith("HTTP/1.1 403"), out)
        self.assertRegex(out, r"(?im)^x-egressd-reason: method_not_allowed\r$")
        self.assertEqual([(q["method"], q["path"]) for q in self.upstream.requests], [("GET", "/hello")])
        ev = self.proxy.wait_event(event="egress.deny", host="get.test")
        self.assertEqual((ev["reason"], ev["method"], ev.get("rule_group")), ("method_not_allowed", "POST", "methods"),
                         ev)
        self.assertEqual(self.decisions(verdict="deny", reason="method_not_allowed", client="tests"), 1)

    def test_head_rule_allows_head_only(self):
        with self.proxy.connect() as c:
            resp = self.get(self.url("head.test", "/hello"), method="HEAD", conn=c)
            self.assertEqual((resp.status, resp.header("Content-Length"), resp.body), (200, "5", b""), resp)
            self.assertTrue(c.still_open(wait=0.2), "the HEAD response carried a body")
            self.assert_denied(self.get(self.url("head.test", "/hello"), conn=c), "method_not_allowed")
        self.assertEqual([(q["method"], q["path"]) for q in self.upstream.requests], [("HEAD", "/hello")])

    def test_connect_needs_a_rule_naming_connect(self):
        # get.test's rule names the echo port, but only GET: a tunnel would carry anything.
        self.connect_refused("get.test", "method_not_allowed")
        self.assertEqual(self.echo.connections, 0)
        c, _ = self.open_tunnel("tunnel.test")
        c.close()
        self.assertEqual(self.echo.connections, 1)
        # And a rule for tunnels only allows no plain-HTTP request.
        resp = self.get("http://tunnel.test:%d/hello" % self.echo.port)
        self.assert_denied(resp, "method_not_allowed", rule_group="methods", rule_index=2)
        self.assertEqual(self.echo.connections, 1)

    def test_deny_by_path_does_not_refuse_tunnels(self):
        # The limit of rules naming paths, pinned down: a tunnel's requests cannot be seen, so a deny on /admin
        # refuses no CONNECT. open.test's allow rule names no methods, so it allows tunnels, and /admin is
        # reachable through one; keeping /admin out takes an allow rule that names its methods.
        c, resp = self.connect_tunnel("open.test:%d" % self.upstream.port)
        with c:
            self.assertEqual(resp.status, 200, resp)
            c.send("GET /admin HTTP/1.1\r\nHost: open.test\r\n\r\n")
            self.assertEqual(c.read_response().status, 404)
        self.assertEqual(self.upstream.requests[-1]["path"], "/admin")
        # The same request in plain HTTP is refused.
        self.assert_denied(self.send("open.test", "/admin"), "explicit_deny", rule_group="deny", rule_index=0)


class PathRulesTest(PolicyRulesBase):

    def test_allowed_prefix_forwarded_in_normal_form_with_query_unchanged(self):
        cases = [
            # sent, forwarded
            ("/simple/requests/", "/simple/requests/"),
            ("/simple/%72equests/./a/../?q=%2e%2E/../x&y=%zz", "/simple/requests/?q=%2e%2E/../x&y=%zz"),
            ("/packages/a%2fb%5c?", "/packages/a%2Fb%5C?"),
            ("/packages/%7Euser/%41", "/packages/~user/A"),
        ]
        for sent, forwarded in cases:
            with self.subTest(sent=sent):
                self.assert_passed(self.send("paths.test", sent), forwarded)
        resp = self.send("paths.test", "/simple/x", method="HEAD")
        self.assertEqual(resp.status, 404, resp)
        self.assertEqual(self.upstream.requests[-1]["method"], "HEAD")
        ev = self.proxy.wait_event(event="egress.allow", host="paths.test", method="HEAD")
        self.assertEqual(ev.get("path"), "/simple/x", ev)

    def test_request_override_headers_are_not_forwarded(self):
        # Under rules naming methods or paths, X-Original-URL and its kind would let an IIS or Symfony upstream serve
        # another path (or method) than the one decided.
        overrides = [("X-Original-URL", "/admin"), ("X-Rewrite-URL", "/admin"), ("X-HTTP-Method-Override", "DELETE"),
                     ("x-http-method", "DELETE"), ("X-Method-Override", "DELETE")]
        with self.proxy.connect() as c:
            resp = self.get(self.url("paths.test", "/simple/x"), headers=overrides + [("X-Kept", "1")], conn=c)
        self.assert_passed(resp, "/simple/x")
        received = [name.lower() for name, _ in self.upstream.requests[-1]["headers"]]
        self.assertIn("x-kept", received)
        for name, _ in overrides:
            self.assertNotIn(name.lower(), received)

    def test_outside_the_prefixes_refused(self):
        for sent, normal in (("/", "/"), ("/simple", "/simple"), ("/admin", "/admin"),
                             ("/other/simple/", "/other/simple/")):
            with self.subTest(sent=sent):
                self.assert_denied(self.send("paths.test", sent), "path_not_allowed", rule_group="index",
                                   rule_index=0, path=normal)
        # The method is checked first: a rule for GET and HEAD says nothing about a POST under its prefix.
        self.assert_denied(self.send("paths.test", "/simple/x", method="POST", body=b"x"), "method_not_allowed")
        self.assert_upstreams_untouched()
        self.assertEqual(self.decisions(verdict="deny", reason="path_not_allowed", client="tests"), 4)

    # -- bypass attempts: each one against the allow rule on /simple/ (paths.test) and the deny on /admin
    # (open.test, which every other path reaches) ---------------------------------------------------------
    def assert_bypass_refused(self, sent, normal):
        """`sent` never reaches the upstream: refused by the allow rule (path_not_allowed) and by the deny rule
        (explicit_deny); both events name the normal form `normal` egressd decided on."""
        self.assert_denied(self.send("paths.test", sent), "path_not_allowed", rule_group="index", rule_index=0,
                           path=normal)
        self.assert_denied(self.send("open.test", sent), "explicit_deny", rule_group="deny", rule_index=0,
                           path=normal)
        self.assert_upstreams_untouched()
        # The same host's other paths pass: the deny is about /admin, not about open.test.
        self.assert_passed(self.send("open.test", "/simple/admin"), "/simple/admin")

    def test_bypass_dot_segments(self):
        self.assert_bypass_refused("/simple/../admin", "/admin")

    def test_bypass_encoded_dots(self):
        self.assert_bypass_refused("/simple/%2e%2e/admin", "/admin")

    def test_bypass_encoded_dots_mixed_case(self):
        self.assert_bypass_refused("/simple/%2E%2e/admin", "/admin")

    def test_bypass_encoded_slashes(self):
        # %2F stays encoded in the normal form (it is reserved), which keeps /simple/ as its prefix; a server that
        # decodes it reads /simple//..//admin, which is /admin: the loose form catches it.
        self.assert_bypass_refused("/simple/%2F..%2Fadmin", "/simple/%2F..%2Fadmin")

    def test_bypass_encoded_backslash(self):
        self.assert_bypass_refused("/simple/..%5Cadmin", "/simple/..%5Cadmin")

    def test_bypass_raw_backslashes(self):
        # egressd accepts a raw backslash in the target and keeps it; the allow rule refuses it on the normal form
        # already ("/simple" then a backslash is not "/simple/"); the deny rule needs the loose form (backslash as "/").
        self.assert_bypass_refused("/simple\\..\\admin", "/simple\\..\\admin")

    def test_bypass_segment_parameters(self):
        # Tomcat reads "..;" as "..".
        self.assert_bypass_refused("/simple/..;/admin", "/simple/..;/admin")

    def test_bypass_double_slash(self):
        self.assert_bypass_refused("//admin", "//admin")

    def test_bypass_encoded_unreserved_letter(self):
        self.assert_bypass_refused("/%61dmin", "/admin")

    def test_parent_proxy_gets_the_normal_form(self):
        # A recording server as the parent: what egressd sends it, byte for byte (a parent egressd would
        # normalise again and hide it).
        parent = harness.HttpUpstream()
        self.addCleanup(parent.stop)
        proxy = self.start_proxy(policy_text=self.make_policy(index_parent=parent.port), extra_yaml=self.extra_yaml())
        resp = self.send("paths.test", "/simple/%72equests/./x/..?q=%2e%2E", proxy=proxy)
        self.assertEqual(resp.status, 404, resp)
        self.assertEqual([(q["method"], q["path"]) for q in parent.requests],
                         [("GET", "http://paths.test:%d/simple/requests/?q=%%2e%%2E" % self.upstream.port)])
        self.assert_denied(self.send("paths.test", "/simple/..;/admin", proxy=proxy), "path_not_allowed",
                           proxy=proxy)
        self.assertEqual(len(parent.requests), 1, parent.requests)

    def test_paths_are_case_sensitive(self):
        # Not a bypass egressd closes: paths are case-sensitive (RFC 3986 6.2.2.1), so the deny on /admin does not
        # name /ADMIN. A server that folds case needs its other spellings listed too.
        self.assert_passed(self.send("open.test", "/ADMIN"), "/ADMIN")
        self.assert_denied(self.send("paths.test", "/SIMPLE/x"), "path_not_allowed")


class DenyListTest(PolicyRulesBase):

    def test_client_deny_list_denies_that_client_only(self):
        self.assert_denied(self.send("mine.test", "/hello"), "explicit_deny", rule_group="client:tests/deny",
                           rule_index=0)
        self.assertEqual(self.upstream.requests, [])
        resp = self.send("mine.test", "/hello", source="127.0.0.3")
        self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)
        allow = self.proxy.wait_event(event="egress.allow", host="mine.test")
        self.assertEqual((allow["client"], allow.get("rule_group")), ("peer", "shared"), allow)

    def test_group_deny_list_denies_every_client_of_the_group_only(self):
        # tests and peer are in the vendor group; its deny list wins over the shared group's allow.
        self.assert_denied(self.send("blocked.test", "/hello"), "explicit_deny", rule_group="group:vendor/deny",
                           rule_index=0)
        self.assert_denied(self.send("blocked.test", "/hello", source="127.0.0.3"), "explicit_deny", client="peer",
                           rule_group="group:vendor/deny", rule_index=0)
        self.assertEqual(self.upstream.requests, [])
        # outsider is not: the shared group's rule allows it.
        resp = self.send("blocked.test", "/hello", source="127.0.0.5")
        self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)
        self.assertEqual(self.proxy.wait_event(event="egress.allow", host="blocked.test")["client"], "outsider")

    def test_deny_by_method_on_an_allowed_host(self):
        for source, client in ((None, "tests"), ("127.0.0.5", "outsider")):
            with self.subTest(client=client):
                resp = self.send("post.test", "/hello", source=source)
                self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)
                self.assert_denied(self.send("post.test", "/echo", method="POST", source=source, body=b"upload"),
                                   "explicit_deny", client=client, rule_group="deny", rule_index=1)
        self.assertEqual([q["method"] for q in self.upstream.requests], ["GET", "GET"])

    def test_deny_list_file(self):
        self.assert_denied(self.send("nope.test", "/hello"), "explicit_deny", rule_group="deny", rule_index=2)
        self.assertEqual(self.upstream.requests, [])


class ListFileTest(PolicyRulesBase):

    def test_list_file_allows_its_names_only(self):
        for host in ("vendor.test", "x.cdn.test"):
            resp = self.send(host, "/hello")
            self.assertEqual((resp.status, resp.body), (200, b"hello"), "%s: %r" % (host, resp))
        self.assert_denied(self.send("late.test", "/hello"), "no_matching_rule")
        # The list is the rule's: no methods named, so tunnels too.
        c, allow = self.open_tunnel("vendor.test")
        c.close()
        self.assertEqual(allow.get("rule_group"), "vendor", allow)
        # Found relative to the policy file that names them, and listed among the policy's files.
        files = self.proxy.admin_json("/status")["policy"]["files"]
        lists = [f for f in files if f.endswith(".txt")]
        self.assertEqual(len(lists), 2, files)
        self.assertTrue(any(os.path.samefile(os.path.join(self.proxy.directory, f), self.list_path) for f in lists),
                        files)


class ListFileWatchTest(PolicyRulesBase):
    """reload.watch on: list files are watched like the policy file."""

    watch = True

    def wait_file_reload(self, mark, version):
        ev = self.proxy.wait_reload(mark, timeout=10)
        self.assertEqual((ev["event"], ev.get("trigger"), ev.get("policy_version")),
                         ("egressd.reload", "file_change", version), ev)
        return ev

    def test_list_change_applies_without_signal_and_revokes_tunnels(self):
        digest = self.start_digest()
        tunnel, allow = self.open_tunnel("vendor.test")
        with tunnel:
            mark = self.proxy.event_count()
            self.write_list(LIST_V2, rename=True)
            ev = self.wait_file_reload(mark, 2)
            started = time.monotonic()
            self.assertRegex(ev["policy_digest"], HEX64)
            self.assertNotEqual(ev["policy_digest"], digest, "the digest does not cover the list file")
            self.assertTrue(tunnel.closed_by_peer(timeout=REVOKE_WITHIN),
                            "the tunnel to a name the list dropped stayed open %.1f s after the reload" % REVOKE_WITHIN)
            self.assertLess(time.monotonic() - started, REVOKE_WITHIN + 0.1)
        rev = self.proxy.wait_event(event="egress.revoke", request_id=allow["request_id"])
        self.assertEqual((rev["host"], rev["reason"], rev["cause"]), ("vendor.test", "no_matching_rule",
                                                                      "policy_revoked"), rev)
        self.assert_in_force(2, ev["policy_digest"])
        resp = self.send("late.test", "/hello")
        self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)
        self.assert_denied(self.send("vendor.test", "/hello"), "no_matching_rule")
        # Written in place this time; the content of the start again, so the digest of the start again.
        mark = self.proxy.event_count()
        self.write_list(LIST_V1, rename=False)
        ev3 = self.wait_file_reload(mark, 3)
        self.assertEqual(ev3["policy_digest"], digest)
        resp = self.send("vendor.test", "/hello")
        self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)
        self.assert_denied(self.send("late.test", "/hello"), "no_matching_rule")

    def test_bad_list_line_fails_reload_and_keeps_policy(self):
        digest = self.start_digest()
        mark = self.proxy.event_count()
        self.write_list("late.test\n  bad_name!.test\n", rename=True)
        ev = self.proxy.wait_reload(mark, timeout=10)
        self.assertEqual((ev["event"], ev.get("trigger"), ev.get("policy_version")),
                         ("egressd.reload_failed", "file_change", 1), ev)
        self.assertEqual(len(ev["errors"]), 1, ev)
        self.assertRegex(ev["errors"][0], r"lists/vendor\.txt:2:3: error: .*bad_name!\.test")
        status = self.proxy.admin_json("/status")
        self.assertEqual((status["last_reload"]["result"], status["last_reload"]["errors"]), ("failed", ev["errors"]),
                         status)
        self.assert_in_force(1, digest)
        _, samples = self.proxy.metrics()
        self.assertEqual(harness.metric_value(samples, "egressd_reloads_total", result="failed"), 1)
        # The old list is in force: neither half of the new one applied.
        resp = self.send("vendor.test", "/hello")
        self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)
        self.assert_denied(self.send("late.test", "/hello"), "no_matching_rule")
        # Fixed, the file watch takes it.
        mark = self.proxy.event_count()
        self.write_list(LIST_V2, rename=True)
        self.wait_file_reload(mark, 2)
        resp = self.send("late.test", "/hello")
        self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)

    def test_watch_follows_the_list_files_a_reload_names(self):
        new_list = os.path.join(self.tmp.name, "lists", "new.txt")
        with open(new_list, "w") as f:
            f.write("late.test\n")
        mark = self.proxy.event_count()
        self.proxy.write_policy(self.make_policy().replace("../../lists/vendor.txt", "../../lists/new.txt"),
                                name="policy.yaml", rename=True)
        self.wait_file_reload(mark, 2)
        resp = self.send("late.test", "/hello")
        self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)
        # The list the policy names now is watched...
        mark = self.proxy.event_count()
        with open(new_list, "w") as f:
            f.write("x.cdn.test\n")
        self.wait_file_reload(mark, 3)
        self.assert_denied(self.send("late.test", "/hello"), "no_matching_rule")
        # ...and the one it no longer names is not.
        mark = self.proxy.event_count()
        self.write_list("vendor.test\nlate.test\n", rename=False)
        time.sleep(1.0)
        self.assertEqual(self.proxy.reload_events(mark), [])

    def test_a_list_named_by_a_failed_reload_reloads_once_written(self):
        # The policy is saved before the list it names exists: that reload fails, and writing the list is the
        # change that makes the next one work, with no signal.
        new_list = os.path.join(self.tmp.name, "lists", "later.txt")
        mark = self.proxy.event_count()
        self.proxy.write_policy(self.make_policy().replace("../../lists/vendor.txt", "../../lists/later.txt"),
                                name="policy.yaml", rename=True)
        ev = self.proxy.wait_reload(mark, timeout=10)
        self.assertEqual((ev["event"], ev.get("trigger")), ("egressd.reload_failed", "file_change"), ev)
        self.assertRegex(" ".join(ev["errors"]), r"cannot read destinations_file '[^']*lists/later\.txt'")
        self.assert_denied(self.send("late.test", "/hello"), "no_matching_rule")
        mark = self.proxy.event_count()
        with open(new_list + ".tmp", "w") as f:
            f.write("late.test\n")
        os.rename(new_list + ".tmp", new_list)
        self.wait_file_reload(mark, 2)
        resp = self.send("late.test", "/hello")
        self.assertEqual((resp.status, resp.body), (200, b"hello"), resp)

    def test_keep_alive_request_after_reload_decided_by_new_paths(self):
        with self.proxy.connect() as c:
            self.assert_passed(self.get(self.url("paths.test", "/simple/a"), conn=c), "/simple/a")
            mark = self.proxy.event_count()
            self.proxy.write_policy(self.make_policy(index_paths=("/packages/",)), name="policy.yaml", rename=True)
            self.wait_file_reload(mark, 2)
            self.assert_denied(self.get(self.url("paths.test", "/simple/a"), conn=c), "path_not_allowed")
            self.assert_passed(self.get(self.url("paths.test", "/packages/a"), conn=c), "/packages/a")
        self.assertEqual([q["path"] for q in self.upstream.requests], ["/simple/a", "/packages/a"])


class ReportModeTest(PolicyRulesBase):

    def test_report_mode_path_denial_passes_as_would_deny(self):
        resp = self.send("paths.test", "/simple/../admin?x=1", source="127.0.0.4")
        self.assert_passed(resp, "/admin?x=1")
        ev = self.proxy.wait_event(event="egress.would_deny", host="paths.test")
        self.assertEqual((ev["client"], ev["reason"], ev["mode"], ev.get("path")),
                         ("canary", "path_not_allowed", "report", "/admin"), ev)
        self.assertEqual(self.proxy.events(event="egress.deny"), [])
