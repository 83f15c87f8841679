"""logging.format: the same traffic logged as egressd's own JSON, as Elastic Common Schema and as OCSF.

For each format the real proxy serves an allowed forwarded GET, a denied CONNECT, a name DNS cannot resolve and
a wrong Proxy-Authorization, and every line is checked: the fields the contract in docs/EVENT_FORMATS.md
promises (instance, path, query, status, user, egress.error), and the fields each schema requires.

Schema sources (the lists below are written from them):
- ECS 8.11: https://www.elastic.co/guide/en/ecs/8.11/ecs-base.html (@timestamp is the one required field),
  ecs-ecs.html (ecs.version must be in every event), ecs-allowed-values-event-kind.html,
  ecs-allowed-values-event-category.html (with each category's expected event types) and
  ecs-allowed-values-event-type.html.
- OCSF 1.1.0: https://schema.ocsf.io/1.1.0/classes/base_event (required: activity_id, category_uid, class_uid,
  metadata, severity_id, time, type_uid), objects/metadata (required: product, version), objects/product
  (required: vendor_name), classes/network_activity and classes/http_activity (the Network category needs one of
  src_endpoint or dst_endpoint; HTTP Activity one of http_request or http_response; activity_id enums),
  classes/application_lifecycle (required: app), and the security_control profile (action_id 0, 1, 2, 99;
  disposition_id).
"""

import base64
import json
import os
import subprocess
import tempfile
import unittest

import harness

harness.isolate_network()

INSTANCE = "e2e-node-1"

ECS_KINDS = {"alert", "enrichment", "event", "metric", "state", "pipeline_error", "signal"}
ECS_TYPES_OF = {
    "network": {"access", "allowed", "connection", "denied", "end", "info", "protocol", "start"},
    "web": {"access", "error", "info"},
    "process": {"access", "change", "end", "info", "start"},
}
OCSF_BASE_REQUIRED = ("activity_id", "category_uid", "class_uid", "metadata", "severity_id", "time", "type_uid")
OCSF_ACTIVITIES = {4001: {0, 1, 2, 3, 4, 5, 6, 99}, 4002: {0, 1, 2, 3, 4, 5, 6, 7, 8, 99}, 6002: {0, 1, 2, 3, 4, 99}}


def get(obj, path):
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


class EventFormatsBase(harness.ProxyTestCase):
    fmt = None
    http_query = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        r = subprocess.run([harness.egressd_binary(), "passwd", "alice"], input=b"right-password\n",
                           capture_output=True, timeout=20)
        if r.returncode != 0:
            raise AssertionError("egressd passwd failed: %r" % (r,))
        cls.credentials = os.path.join(cls.class_tmp.name, "users.txt")
        with open(cls.credentials, "w") as f:
            f.write(r.stdout.decode().strip() + "\n")

    def extra_yaml(self):
        return "proxy_auth:\n  credentials: %s\n  required: false\n" % json.dumps(self.credentials)

    def start_proxy(self, settings=None, policy_text=None, extra_yaml=None, **kwargs):
        merged = dict(settings or {})
        merged["logging"] = {"format": self.fmt, "instance": INSTANCE,
                             "http_query": "true" if self.http_query else "false", **merged.get("logging", {})}
        return super().start_proxy(merged, policy_text, extra_yaml, **kwargs)

    # -- the traffic --------------------------------------------------------------------------------------
    def traffic(self):
        """Runs the four requests; returns {what: (request id, event view)} with each decision's event."""
        out = {}
        resp = self.get(self.up_url("allowed.test", "/hello?token=s3cret"))
        self.assertEqual(resp.status, 200, resp)
        allow = self.proxy.wait_event(event="egress.allow", pred=lambda e: e.get("host") == "allowed.test"
                                      or get(harness.raw_line(e), "destination.address") == "allowed.test"
                                      or get(harness.raw_line(e), "dst_endpoint.hostname") == "allowed.test")
        rid = self.request_id_of(allow)
        out["allow"] = (rid, allow)
        out["allow_close"] = (rid, self.wait_close(rid))

        c, resp = self.connect_tunnel("nowhere.example:443")
        c.close()
        self.assertEqual(resp.status, 403, resp)
        rid = resp.header("X-Egressd-Request-Id")
        out["deny"] = (rid, self.wait_decision("egress.deny", rid))
        out["deny_close"] = (rid, self.wait_close(rid))

        resp = self.get(self.up_url("nx.dns.test", "/"))
        self.assertEqual(resp.status, 502, resp)
        rid = resp.header("X-Egressd-Request-Id")
        out["error"] = (rid, self.wait_decision("egress.error", rid))

        wrong = "Basic " + base64.b64encode(b"mallory:guess").decode()
        resp = self.get(self.up_url("allowed.test", "/x"), headers=[("Proxy-Authorization", wrong)])
        self.assertEqual(resp.status, 407, resp)
        rid = resp.header("X-Egressd-Request-Id")
        out["auth"] = (rid, self.wait_decision("egress.deny", rid))
        # DNS failures are never denials: no egress.deny for that request, in any format.
        self.assertEqual([e for e in self.proxy.events(event="egress.deny")
                          if self.request_id_of(e) == out["error"][0]], [])
        return out

    def request_id_of(self, view):
        raw = harness.raw_line(view)
        return raw.get("request_id") or get(raw, "event.id") or get(raw, "metadata.uid")

    def wait_decision(self, name, rid):
        return self.proxy.wait_event(event=name, pred=lambda e: self.request_id_of(e) == rid)

    def wait_close(self, rid):
        return self.proxy.wait_event(event="egress.close", pred=lambda e: self.request_id_of(e) == rid)

    def notices(self):
        return [e for e in self.proxy.events() if str(e.get("event", "")).startswith("egressd.")]


class EgressdFormatTest(EventFormatsBase):
    fmt = "egressd"

    def test_new_fields_in_egressd_format(self):
        t = self.traffic()
        allow = t["allow"][1]
        self.assertEqual(allow["instance"], INSTANCE)
        self.assertEqual(allow["method"], "GET")
        self.assertEqual(allow["path"], "/hello")
        self.assertNotIn("query", allow, "the query stays out without logging.http_query")
        self.assertEqual(allow["status"], 200)
        self.assertEqual(allow["port"], self.upstream.port)
        deny = t["deny"][1]
        self.assertEqual(deny["reason"], "no_matching_rule")
        self.assertNotIn("path", deny, "a CONNECT has no path")
        self.assertNotIn("status", deny)
        error = t["error"][1]
        self.assertEqual(error["reason"], "dns_nxdomain")
        self.assertEqual(error["path"], "/")
        self.assertEqual(error["status"], 502)
        self.assertIsNone(error["address"])
        auth = t["auth"][1]
        self.assertEqual(auth["reason"], "proxy_auth_failed")
        self.assertEqual(auth["user"], "mallory")
        self.assertNotIn("guess", json.dumps(harness.raw_line(auth)), "never the password")
        self.assertNotIn("guess", "\n".join(self.proxy.raw_lines))
        for name, (rid, ev) in t.items():
            self.assertEqual(ev["instance"], INSTANCE, name)
        for ev in self.notices():
            self.assertEqual(ev["instance"], INSTANCE, ev)


class EcsFormatTest(EventFormatsBase):
    fmt = "ecs"

    def check_ecs(self, raw):
        line = json.dumps(raw)
        self.assertIn("@timestamp", raw, line)
        self.assertRegex(raw["@timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual(get(raw, "ecs.version"), "8.11.0", line)
        self.assertIn(get(raw, "event.kind"), ECS_KINDS, line)
        categories = get(raw, "event.category")
        types = get(raw, "event.type")
        self.assertTrue(categories and types, line)
        for c in categories:
            self.assertIn(c, ECS_TYPES_OF, line)
        for t in types:
            self.assertTrue(any(t in ECS_TYPES_OF[c] for c in categories), "%s: %s" % (t, line))
        self.assertEqual(get(raw, "host.name"), INSTANCE, line)
        self.assertEqual(get(raw, "observer.name"), INSTANCE, line)
        self.assertEqual(get(raw, "egressd.event"), get(raw, "event.action"), line)
        self.assertFalse([k for k in raw if "." in k], "nested objects, not dotted keys: " + line)

    def test_ecs_lines(self):
        t = self.traffic()
        for name, (rid, ev) in t.items():
            self.check_ecs(harness.raw_line(ev))
            self.assertEqual(get(harness.raw_line(ev), "event.id"), rid, name)
        for ev in self.notices():
            self.check_ecs(harness.raw_line(ev))
            self.assertEqual(get(harness.raw_line(ev), "event.category"), ["process"])
        allow = harness.raw_line(t["allow"][1])
        self.assertEqual(get(allow, "event.type"), ["allowed"])
        self.assertEqual(get(allow, "event.category"), ["network", "web"])
        self.assertEqual(get(allow, "event.outcome"), "success")
        self.assertEqual(get(allow, "source.ip"), "127.0.0.1")
        self.assertIsInstance(get(allow, "source.port"), int)
        self.assertEqual(get(allow, "destination.domain"), "allowed.test")
        self.assertEqual(get(allow, "destination.ip"), "127.0.0.1")
        self.assertEqual(get(allow, "destination.port"), self.upstream.port)
        self.assertEqual(get(allow, "url.path"), "/hello")
        self.assertIsNone(get(allow, "url.query"))
        self.assertEqual(get(allow, "http.request.method"), "GET")
        self.assertEqual(get(allow, "http.response.status_code"), 200)
        self.assertEqual(get(allow, "rule.ruleset"), "web")
        self.assertEqual(get(allow, "egressd.client"), "tests")
        deny = harness.raw_line(t["deny"][1])
        self.assertEqual(get(deny, "event.type"), ["denied"])
        self.assertEqual(get(deny, "event.reason"), "no_matching_rule")
        self.assertEqual(get(deny, "destination.address"), "nowhere.example")
        self.assertEqual(get(deny, "http.request.method"), "CONNECT")
        error = harness.raw_line(t["error"][1])
        self.assertEqual(get(error, "event.type"), ["error"])
        self.assertEqual(get(error, "event.action"), "egress.error")
        self.assertEqual(get(error, "error.code"), "dns_nxdomain")
        self.assertEqual(get(error, "http.response.status_code"), 502)
        close = harness.raw_line(t["deny_close"][1])
        self.assertEqual(get(close, "event.type"), ["connection", "end"])
        self.assertIsInstance(get(close, "event.duration"), int)
        self.assertEqual(get(harness.raw_line(t["auth"][1]), "egressd.user"), "mallory")


class OcsfFormatTest(EventFormatsBase):
    fmt = "ocsf"
    http_query = True

    def check_ocsf(self, raw):
        line = json.dumps(raw)
        for attribute in OCSF_BASE_REQUIRED:
            self.assertIn(attribute, raw, line)
        self.assertEqual(raw["type_uid"], raw["class_uid"] * 100 + raw["activity_id"], line)
        self.assertEqual(raw["category_uid"], raw["class_uid"] // 1000, line)
        self.assertIn(raw["activity_id"], OCSF_ACTIVITIES[raw["class_uid"]], line)
        self.assertIsInstance(raw["time"], int)
        self.assertIn(raw["severity_id"], {0, 1, 2, 3, 4, 5, 6, 99}, line)
        self.assertEqual(get(raw, "metadata.version"), "1.1.0", line)
        self.assertEqual(get(raw, "metadata.product.vendor_name"), "egressd", line)
        if "action_id" in raw:
            self.assertIn(raw["action_id"], {0, 1, 2, 99}, line)
            self.assertIn("disposition_id", raw, line)
        if raw["class_uid"] in (4001, 4002):
            self.assertTrue("src_endpoint" in raw or "dst_endpoint" in raw, line)
            self.assertEqual(get(raw, "proxy_endpoint.hostname"), INSTANCE, line)
        if raw["class_uid"] == 4002:
            self.assertTrue("http_request" in raw or "http_response" in raw, line)
        if raw["class_uid"] == 6002:
            self.assertEqual(get(raw, "app.vendor_name"), "egressd", line)

    def test_ocsf_lines(self):
        t = self.traffic()
        for name, (rid, ev) in t.items():
            self.check_ocsf(harness.raw_line(ev))
            self.assertEqual(get(harness.raw_line(ev), "metadata.uid"), rid, name)
        notices = self.notices()
        self.assertTrue(notices)
        for ev in notices:
            self.check_ocsf(harness.raw_line(ev))
            self.assertEqual(harness.raw_line(ev)["class_uid"], 6002)
            self.assertEqual(ev["instance"], INSTANCE)
        allow = harness.raw_line(t["allow"][1])
        self.assertEqual(allow["class_uid"], 4002)
        self.assertEqual(allow["activity_id"], 3)
        self.assertEqual(allow["action_id"], 1)
        self.assertEqual(get(allow, "http_request.url.path"), "/hello")
        self.assertEqual(get(allow, "http_request.url.query_string"), "token=s3cret")
        self.assertEqual(get(allow, "http_response.code"), 200)
        self.assertEqual(get(allow, "dst_endpoint.hostname"), "allowed.test")
        self.assertEqual(get(allow, "dst_endpoint.ip"), "127.0.0.1")
        self.assertEqual(get(allow, "src_endpoint.ip"), "127.0.0.1")
        deny = harness.raw_line(t["deny"][1])
        self.assertEqual(deny["activity_id"], 1, "1 Connect")
        self.assertEqual(deny["action_id"], 2)
        self.assertEqual(deny["disposition_id"], 2)
        self.assertEqual(get(deny, "unmapped.egressd.reason"), "no_matching_rule")
        error = harness.raw_line(t["error"][1])
        self.assertEqual(error["status_id"], 2)
        self.assertEqual(error["status_detail"], "dns_nxdomain")
        close = harness.raw_line(t["allow_close"][1])
        self.assertEqual(close["class_uid"], 4001)
        self.assertEqual(close["activity_id"], 2)
        self.assertGreater(get(close, "traffic.bytes_in"), 0)
        self.assertEqual(get(harness.raw_line(t["auth"][1]), "unmapped.egressd.user"), "mallory")


if __name__ == "__main__":
    unittest.main()
