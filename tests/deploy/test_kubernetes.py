"""deploy/kubernetes/: the kustomize base and its gateway and sidecar overlays, checked offline.

Each kustomization is rendered by tests/deploy/kubernetes/manifests.js (the kustomize features the manifests use,
and no other; where kubectl is installed its own kustomize must render the same objects), and every object is
validated against the Kubernetes and prometheus-operator schemas of the kubernetes-models npm packages, types and
field names both. Then the properties the fleet relies on are checked on the rendered objects: replicas spread
across nodes, the locked-down pod, the policy in a whole-directory ConfigMap mount, probes on the admin endpoints,
a termination grace longer than egressd's own drain, the NLB with PROXY protocol and the listener trusting it,
the NetworkPolicies' shapes and the PodMonitor. Finally the server configurations and policies the ConfigMaps
carry are laid out as the kubelet mounts them and checked by egressd itself (config check, policy check), and
the base's configuration runs, inside a private network namespace (its ports are the manifests' own): a
ConfigMap update, made as the kubelet makes it, is applied live, and SIGTERM drains as the Deployment expects.
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

SOURCE_DIR = Path(os.environ.get("EGRESSD_SOURCE_DIR", Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(SOURCE_DIR / "tests" / "e2e"))
import harness  # noqa: E402  (the end-to-end tests' network isolation and metrics parser)

# The manifests' ports are fixed (3128, 9090): egressd runs only inside a private network namespace.
harness.isolate_network()

BINARY = os.environ.get("EGRESSD_BINARY", "")
MANIFESTS = SOURCE_DIR / "deploy" / "kubernetes"
TOOLS = SOURCE_DIR / "tests" / "deploy" / "kubernetes"
KUSTOMIZATIONS = {
    "base": MANIFESTS / "base",
    "gateway": MANIFESTS / "overlays" / "gateway",
    "sidecar": MANIFESTS / "overlays" / "sidecar",
}
ADMIN_TOKEN = "0123456789abcdef0123456789abcdef"
# (Secret mount directory, key) pairs the manifests mount; the test writes placeholder contents for each.
SECRET_KEYS = {
    ("admin-token", "token"),
    ("postgresql-ca", "ca.pem"),
    ("approvals-users", "approvers.passwd"),
    ("approvals-users", "requesters.passwd"),
    ("approvals-tls", "tls.crt"),
    ("approvals-tls", "tls.key"),
}
NLB_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-type": "external",
    "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
    "service.beta.kubernetes.io/aws-load-balancer-proxy-protocol": "*",
    "service.beta.kubernetes.io/aws-load-balancer-healthcheck-protocol": "http",
    "service.beta.kubernetes.io/aws-load-balancer-healthcheck-path": "/readyz",
}


def tools_missing():
    if shutil.which("node") is None:
        return "node is not installed"
    if not (TOOLS / "node_modules").is_dir():
        return "tests/deploy/kubernetes/node_modules is missing: run npm ci --prefix tests/deploy/kubernetes"
    return None


def run_tool(*args, timeout=120):
    return subprocess.run(["node", str(TOOLS / "manifests.js"), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


_rendered = {}


def render(name):
    """The objects a kustomization makes (rendered once per process)."""
    if name not in _rendered:
        result = run_tool("render", KUSTOMIZATIONS[name])
        if result.returncode != 0:
            raise AssertionError("rendering %s failed: %s" % (name, result.stderr))
        _rendered[name] = json.loads(result.stdout)
    return json.loads(json.dumps(_rendered[name]))


def validation_errors(objects):
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(objects, f)
        f.flush()
        result = run_tool("validate", f.name)
    if result.returncode not in (0, 1):
        raise AssertionError("validate did not run: %s" % result.stderr)
    return result.stdout.splitlines()


def find(objects, kind, name=None):
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    if not found:
        raise AssertionError("no %s %s" % (kind, name or ""))
    return found


def one(objects, kind, name=None):
    found = find(objects, kind, name)
    if len(found) != 1:
        raise AssertionError("%d objects %s %s" % (len(found), kind, name or ""))
    return found[0]


def seconds(duration):
    number, unit = re.fullmatch(r"([0-9]+)(ms|s|m|h|d)", duration).groups()
    return int(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def egressd_container(pod_spec):
    """egressd's container in a pod: the gateway's container or the native sidecar."""
    containers = pod_spec.get("containers", []) + pod_spec.get("initContainers", [])
    found = [c for c in containers if c["name"] == "egressd"]
    if len(found) != 1:
        raise AssertionError("no single egressd container in %s" % [c["name"] for c in containers])
    return found[0]


def egressd_pod(objects):
    """The Deployment whose pods run egressd."""
    def runs_egressd(deployment):
        spec = deployment["spec"]["template"]["spec"]
        return any(c["name"] == "egressd" for c in spec.get("containers", []) + spec.get("initContainers", []))

    deployments = [d for d in find(objects, "Deployment") if runs_egressd(d)]
    if len(deployments) != 1:
        raise AssertionError("no single Deployment running egressd")
    return deployments[0]


def mounted_config_maps(objects):
    """mount path -> ConfigMap object, for egressd's ConfigMap volumes."""
    deployment = egressd_pod(objects)
    spec = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    namespace = deployment["metadata"]["namespace"]
    mounts = {}
    for mount in egressd_container(spec)["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            config_map = [c for c in find(objects, "ConfigMap") if c["metadata"]["name"] == volume["configMap"]["name"]
                          and c["metadata"]["namespace"] == namespace]
            if len(config_map) != 1:
                raise AssertionError("volume %s names a ConfigMap that is not rendered" % mount["name"])
            mounts[mount["mountPath"]] = config_map[0]
    return mounts


def config_path(objects):
    args = egressd_container(egressd_pod(objects)["spec"]["template"]["spec"])["args"]
    if args[:2] != ["run", "--config"]:
        raise AssertionError("egressd is not started with run --config: %s" % args)
    return args[2]


def server_config(objects):
    """The server configuration in its ConfigMap, as a dict."""
    path = config_path(objects)
    config_map = mounted_config_maps(objects)[os.path.dirname(path)]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(config_map["data"][os.path.basename(path)])
        f.flush()
        result = run_tool("yaml-to-json", f.name)
    if result.returncode != 0:
        raise AssertionError(result.stderr)
    return json.loads(result.stdout)


def listen_port(address):
    return int(address.rsplit(":", 1)[1])


def kubelet_mount(directory, files, mode=0o644):
    """A ConfigMap or Secret volume as the kubelet writes it: the files in a timestamped directory, a ..data
    symlink to it, and a symlink per key to ..data/key."""
    directory.mkdir(parents=True)
    payload = directory / "..2026_12_07_10_00_00.000000001"
    payload.mkdir()
    for name, text in files.items():
        (payload / name).write_text(text)
        (payload / name).chmod(mode)
        (directory / name).symlink_to(Path("..data") / name)
    (directory / "..data").symlink_to(payload.name)


def kubelet_update(directory, files):
    """An update of a mounted ConfigMap as the kubelet makes it (its atomic writer): a new timestamped directory,
    a ..data_tmp symlink to it renamed over ..data, then the old directory removed."""
    old = (directory / "..data").resolve()
    payload = directory / "..2026_12_07_10_01_00.000000002"
    payload.mkdir()
    for name, text in files.items():
        (payload / name).write_text(text)
    (directory / "..data_tmp").symlink_to(payload.name)
    os.rename(directory / "..data_tmp", directory / "..data")
    shutil.rmtree(old)


def self_signed_certificate(directory):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-subj", "/CN=egress-approvals.example.com", "-days", "2",
                    "-keyout", str(directory / "tls.key"), "-out", str(directory / "tls.crt")],
                   check=True, capture_output=True, timeout=60)
    return {"tls.crt": (directory / "tls.crt").read_text(), "tls.key": (directory / "tls.key").read_text()}


def lay_out(objects, root):
    """egressd's ConfigMap and Secret volumes under root as the kubelet mounts them, with placeholder Secret
    contents; returns the configuration file's path."""
    spec = egressd_pod(objects)["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    config_maps = mounted_config_maps(objects)
    certificate_dir = root / "certificate"
    certificate_dir.mkdir()
    certificate = self_signed_certificate(certificate_dir)
    placeholders = {
        "token": ADMIN_TOKEN + "\n",
        "approvers.passwd": "",
        "requesters.passwd": "",
        "ca.pem": certificate["tls.crt"],
        **certificate,
    }
    for mount in egressd_container(spec)["volumeMounts"]:
        where = root / mount["mountPath"].lstrip("/")
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            kubelet_mount(where, config_maps[mount["mountPath"]]["data"])
        elif "secret" in volume:
            keys = {key for key in placeholders if (where.name, key) in SECRET_KEYS}
            if not keys:
                raise AssertionError("no placeholder for the Secret mounted at %s" % mount["mountPath"])
            kubelet_mount(where, {key: placeholders[key] for key in keys}, mode=0o400)
    return root / config_path(objects).lstrip("/")


class KubernetesTestCase(unittest.TestCase):

    def setUp(self):
        missing = tools_missing()
        if missing:
            # CI installs the tools (scripts/bootstrap test): there, their absence is a failure, not a skip.
            if os.environ.get("CI"):
                self.fail(missing)
            self.skipTest(missing)


class SchemaTest(KubernetesTestCase):

    def test_every_object_matches_its_schema(self):
        # One validation run for all three: each run compiles the schemas' TypeScript declarations anew.
        objects = [o for name in KUSTOMIZATIONS for o in render(name)]
        self.assertGreater(len(objects), 20)
        self.assertEqual(validation_errors(objects), [])

    def test_misspelt_fields_wrong_types_and_unknown_kinds_are_refused(self):
        objects = render("gateway")
        deployment = egressd_pod(objects)
        pod = deployment["spec"]["template"]["spec"]
        pod["terminationGracePeriodSecond"] = pod.pop("terminationGracePeriodSeconds")
        deployment["spec"]["replicas"] = "3"
        one(objects, "PodMonitor")["spec"]["podMetricsEndpoints"][0]["bearerToken"] = "x"
        one(objects, "NetworkPolicy", "egressd-gateway")["spec"]["egress"][0]["to"][0]["ipBlock"]["cidr"] = 10
        objects.append({"apiVersion": "v1", "kind": "Sevice", "metadata": {"name": "egressd"}})
        errors = validation_errors(objects)

        def reported(prefix, *words):
            return [e for e in errors if e.startswith(prefix) and all(w in e for w in words)]

        self.assertTrue(reported("Deployment/egressd/egressd:", "'\"terminationGracePeriodSecond\"' does not exist"),
                        errors)
        self.assertTrue(reported("Deployment/egressd/egressd:", "data/spec/replicas must be integer"), errors)
        self.assertTrue(reported("PodMonitor/egressd/egressd:", "'\"bearerToken\"' does not exist"), errors)
        self.assertTrue(reported("NetworkPolicy/egressd/egressd-gateway:", "cidr must be string"), errors)
        self.assertIn("Sevice//egressd: no schema for apiVersion v1 kind Sevice", errors)
        unexpected = [e for e in errors if not e.startswith(("Deployment/", "PodMonitor/", "NetworkPolicy/egressd/"
                                                             "egressd-gateway", "Sevice/"))]
        self.assertEqual(unexpected, [])

    def test_the_renderer_refuses_kustomize_features_it_does_not_implement(self):
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "kustomization.yaml").write_text("resources: [cm.yaml]\nnamePrefix: prod-\n")
            Path(tmp, "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
            result = run_tool("render", tmp)
            self.assertEqual(result.returncode, 1)
            self.assertIn("'namePrefix' is not supported", result.stderr)

            Path(tmp, "kustomization.yaml").write_text(
                "configMapGenerator:\n  - name: x\n    files: [cm.yaml]\n")
            result = run_tool("render", tmp)
            self.assertEqual(result.returncode, 1)
            self.assertIn("name suffix hashes are not implemented", result.stderr)

    def test_kubectl_kustomize_renders_the_same_objects(self):
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            self.skipTest("kubectl is not installed: the renderer is compared with kustomize where it is")
        for name, directory in KUSTOMIZATIONS.items():
            with self.subTest(kustomization=name):
                rendered = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True,
                                          timeout=120)
                self.assertEqual(rendered.returncode, 0, rendered.stderr)
                with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
                    f.write(rendered.stdout)
                    f.flush()
                    result = subprocess.run(["node", "-e", KUBECTL_AS_JSON, f.name], capture_output=True, text=True,
                                            timeout=60, cwd=TOOLS)
                self.assertEqual(result.returncode, 0, result.stderr)

                def by_id(objects):
                    return {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects}

                self.assertEqual(by_id(json.loads(result.stdout)), by_id(render(name)))


# kubectl's YAML (YAML 1.1, as kubectl reads it) as a JSON array.
KUBECTL_AS_JSON = """
const YAML = require('yaml');
const text = require('fs').readFileSync(process.argv[1], 'utf8');
const docs = YAML.parseAllDocuments(text, {version: '1.1'}).map((d) => d.toJS()).filter((o) => o);
process.stdout.write(JSON.stringify(docs));
"""


class FleetTest(KubernetesTestCase):

    def test_replicas_are_spread_across_nodes_and_zones(self):
        for name in ("base", "gateway"):
            with self.subTest(kustomization=name):
                objects = render(name)
                deployment = egressd_pod(objects)
                labels = deployment["spec"]["template"]["metadata"]["labels"]
                self.assertGreaterEqual(deployment["spec"]["replicas"], 2)
                self.assertEqual(deployment["spec"]["selector"]["matchLabels"].items() - labels.items(), set())
                constraints = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
                spread = {c["topologyKey"]: c for c in constraints}
                self.assertEqual(spread["kubernetes.io/hostname"]["whenUnsatisfiable"], "DoNotSchedule")
                self.assertIn("topology.kubernetes.io/zone", spread)
                for constraint in spread.values():
                    self.assertEqual(constraint["maxSkew"], 1)
                    self.assertEqual(constraint["labelSelector"]["matchLabels"].items() - labels.items(), set())
                rolling = deployment["spec"]["strategy"]["rollingUpdate"]
                self.assertEqual(rolling["maxUnavailable"], 0, "a rollout must not shrink the fleet")

                hpa = one(objects, "HorizontalPodAutoscaler")
                self.assertEqual(hpa["apiVersion"], "autoscaling/v2")
                target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]}
                self.assertEqual(hpa["spec"]["scaleTargetRef"], target)
                self.assertGreaterEqual(hpa["spec"]["minReplicas"], 2)
                self.assertEqual(hpa["spec"]["metrics"][0]["resource"]["name"], "cpu")
                self.assertIn("cpu", egressd_container(deployment["spec"]["template"]["spec"])["resources"]["requests"],
                              "a CPU utilization target needs a CPU request")

                pdb = one(objects, "PodDisruptionBudget")
                self.assertEqual(pdb["apiVersion"], "policy/v1")
                self.assertTrue(pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable") == 1)
                self.assertEqual(pdb["spec"]["selector"]["matchLabels"].items() - labels.items(), set())

    def test_pods_run_locked_down(self):
        for name in KUSTOMIZATIONS:
            with self.subTest(kustomization=name):
                spec = egressd_pod(render(name))["spec"]["template"]["spec"]
                container = egressd_container(spec)
                pod_context = spec["securityContext"]
                context = {**pod_context, **container.get("securityContext", {})}
                self.assertIs(context["runAsNonRoot"], True)
                self.assertEqual(context["runAsUser"], 10001, "the image's fixed egressd UID")
                self.assertEqual(pod_context["fsGroup"], 10001, "secrets are readable through the group")
                self.assertEqual(pod_context["seccompProfile"], {"type": "RuntimeDefault"})
                self.assertIs(context["readOnlyRootFilesystem"], True)
                self.assertIs(context["allowPrivilegeEscalation"], False)
                self.assertEqual(context["capabilities"], {"drop": ["ALL"]})
                self.assertIs(spec["automountServiceAccountToken"], False)
                self.assertIn("memory", container["resources"]["limits"])

    def test_configuration_and_policy_are_whole_directory_mounts(self):
        for name in KUSTOMIZATIONS:
            with self.subTest(kustomization=name):
                objects = render(name)
                spec = egressd_pod(objects)["spec"]["template"]["spec"]
                container = egressd_container(spec)
                for mount in container["volumeMounts"]:
                    self.assertNotIn("subPath", mount, "a subPath mount never sees an update")
                    self.assertNotIn("subPathExpr", mount)
                config = server_config(objects)
                config_dir = os.path.dirname(config_path(objects))
                policy_dir = os.path.normpath(os.path.join(config_dir, config["policy"]))
                config_maps = mounted_config_maps(objects)
                self.assertIn(config_dir, config_maps)
                self.assertIn(policy_dir, config_maps, "the policy is not a ConfigMap directory mount")
                self.assertTrue(any(key.endswith(".yaml") for key in config_maps[policy_dir]["data"]))
                self.assertIs(config.get("reload", {}).get("watch", True), True, "the file watch applies the policy")
                for volume in spec["volumes"]:
                    if "secret" in volume:
                        self.assertEqual(volume["secret"]["defaultMode"], 0o400, volume["name"])

    def test_probes_use_the_admin_endpoints(self):
        for name in KUSTOMIZATIONS:
            with self.subTest(kustomization=name):
                objects = render(name)
                container = egressd_container(egressd_pod(objects)["spec"]["template"]["spec"])
                config = server_config(objects)
                ports = {p["name"]: p["containerPort"] for p in container["ports"]}
                admin_port = listen_port(config["admin"]["listen"])
                self.assertFalse(config["admin"]["listen"].startswith("127."), "kubelet probes come to the pod IP")
                self.assertIn("token_file", config["admin"], "admin off loopback needs the token")
                for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
                    get = container[probe]["httpGet"]
                    self.assertEqual(get["path"], path)
                    port = ports[get["port"]] if isinstance(get["port"], str) else get["port"]
                    self.assertEqual(port, admin_port)

    def test_termination_grace_outlasts_egressd_drain(self):
        for name in KUSTOMIZATIONS:
            with self.subTest(kustomization=name):
                objects = render(name)
                spec = egressd_pod(objects)["spec"]["template"]["spec"]
                timeouts = server_config(objects).get("timeouts", {})
                drain = seconds(timeouts.get("drain_delay", "0s")) + seconds(timeouts.get("shutdown_grace", "30s"))
                self.assertGreater(spec["terminationGracePeriodSeconds"], drain)
                # egressd's SIGTERM handling is the drain; a preStop sleep would only postpone it.
                self.assertNotIn("lifecycle", egressd_container(spec))

    def test_gateway_drain_delay_covers_the_readiness_probe(self):
        for name in ("base", "gateway"):
            with self.subTest(kustomization=name):
                objects = render(name)
                probe = egressd_container(egressd_pod(objects)["spec"]["template"]["spec"])["readinessProbe"]
                drain_delay = seconds(server_config(objects)["timeouts"]["drain_delay"])
                self.assertGreater(drain_delay, probe["periodSeconds"] * probe["failureThreshold"])


class GatewayTest(KubernetesTestCase):

    def test_service_is_an_internal_nlb_sending_proxy_protocol(self):
        objects = render("gateway")
        service = one(objects, "Service", "egressd")
        self.assertEqual(service["spec"]["type"], "LoadBalancer")
        annotations = service["metadata"]["annotations"]
        for key, value in NLB_ANNOTATIONS.items():
            self.assertEqual(annotations.get(key), value, key)
        config = server_config(objects)
        self.assertEqual(int(annotations["service.beta.kubernetes.io/aws-load-balancer-healthcheck-port"]),
                         listen_port(config["admin"]["listen"]))
        self.assertIn("preserve_client_ip.enabled=false",
                      annotations["service.beta.kubernetes.io/aws-load-balancer-target-group-attributes"])
        pod = egressd_pod(objects)["spec"]["template"]
        self.assertEqual(service["spec"]["selector"].items() - pod["metadata"]["labels"].items(), set())
        ports = {p["name"]: p["containerPort"] for p in egressd_container(pod["spec"])["ports"]}
        (service_port,) = service["spec"]["ports"]
        self.assertEqual(ports[service_port["targetPort"]], listen_port(config["listeners"][0]["address"]))

    def test_listener_trusts_exactly_the_load_balancers_the_network_policy_admits(self):
        for name in ("base", "gateway"):
            with self.subTest(kustomization=name):
                objects = render(name)
                (listener,) = server_config(objects)["listeners"]
                trusted = listener["proxy_protocol"]["trusted"]
                self.assertTrue(trusted)
                proxy_port = listen_port(listener["address"])
                gateway = one(objects, "NetworkPolicy", "egressd-gateway")["spec"]
                admitted = [peer["ipBlock"]["cidr"] for rule in gateway["ingress"] for peer in rule["from"]
                            if "ipBlock" in peer and any(p["port"] == proxy_port for p in rule["ports"])]
                self.assertEqual(sorted(admitted), sorted(trusted))

    def test_approvals_share_postgresql_with_the_password_from_a_secret(self):
        objects = render("gateway")
        approvals = server_config(objects)["approvals"]
        store = approvals["store"]
        self.assertTrue(store.startswith("postgresql://"), store)
        authority = store[len("postgresql://"):].split("/", 1)[0]
        self.assertNotIn(":", authority.split("@")[0] if "@" in authority else "", "no password in the URL")
        container = egressd_container(egressd_pod(objects)["spec"]["template"]["spec"])
        env = {e["name"]: e for e in container["env"]}
        self.assertIn("secretKeyRef", env["PGPASSWORD"]["valueFrom"])
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        self.assertEqual(ports["approvals"], listen_port(approvals["listen"]))
        service = one(objects, "Service", "egressd-approvals")
        self.assertEqual(service["spec"]["ports"][0]["targetPort"], "approvals")
        policy = one(objects, "NetworkPolicy", "egressd-approvals")["spec"]
        self.assertEqual([p["port"] for rule in policy["ingress"] for p in rule["ports"]], [ports["approvals"]])

    def test_network_policies_let_only_the_gateway_out_and_clients_only_to_it(self):
        objects = render("base")
        default_deny = one(objects, "NetworkPolicy", "default-deny")
        self.assertEqual(default_deny["metadata"]["namespace"], "egressd")
        self.assertEqual(default_deny["spec"], {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})

        pod_labels = egressd_pod(objects)["spec"]["template"]["metadata"]["labels"]
        gateway = one(objects, "NetworkPolicy", "egressd-gateway")["spec"]
        self.assertEqual(gateway["podSelector"]["matchLabels"].items() - pod_labels.items(), set())
        self.assertEqual(sorted(gateway["policyTypes"]), ["Egress", "Ingress"])
        outside = [peer["ipBlock"] for rule in gateway["egress"] for peer in rule["to"] if "ipBlock" in peer]
        self.assertIn("0.0.0.0/0", [block["cidr"] for block in outside])
        self.assertTrue(all("169.254.0.0/16" in block.get("except", []) for block in outside
                            if block["cidr"] == "0.0.0.0/0"), "the metadata service stays out of reach")
        self.assertTrue(self.allows_dns(gateway["egress"]))
        client_namespaces = [peer["namespaceSelector"]["matchLabels"] for rule in gateway["ingress"]
                             for peer in rule["from"] if "namespaceSelector" in peer
                             and [p["port"] for p in rule["ports"]] == [3128]]
        self.assertEqual(client_namespaces, [{"egressd.io/client": "true"}])

        client_policies = [p for p in find(objects, "NetworkPolicy") if p["metadata"]["namespace"] != "egressd"]
        self.assertEqual(len(client_policies), 1)
        client = client_policies[0]
        namespace = one(objects, "Namespace", client["metadata"]["namespace"])
        self.assertEqual(namespace["metadata"]["labels"]["egressd.io/client"], "true")
        spec = client["spec"]
        self.assertEqual(spec["podSelector"], {})
        self.assertEqual(spec["policyTypes"], ["Egress"])
        for rule in spec["egress"]:
            for peer in rule["to"]:
                self.assertNotIn("ipBlock", peer, "an application reaches outside only through the gateway")
        to_gateway = [rule for rule in spec["egress"] for peer in rule["to"]
                      if peer.get("podSelector", {}).get("matchLabels") == pod_labels
                      and peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "egressd"}]
        self.assertEqual([[p["port"] for p in rule["ports"]] for rule in to_gateway], [[3128]])
        self.assertTrue(self.allows_dns(spec["egress"]))

    @staticmethod
    def allows_dns(egress):
        for rule in egress:
            ports = {(p["protocol"], p["port"]) for p in rule.get("ports", [])}
            to_dns = any(peer.get("podSelector", {}).get("matchLabels") == {"k8s-app": "kube-dns"}
                         for peer in rule["to"])
            if to_dns and {("UDP", 53), ("TCP", 53)} <= ports:
                return True
        return False

    def test_pod_monitor_scrapes_metrics_with_the_admin_token(self):
        objects = render("base")
        deployment = egressd_pod(objects)
        spec = deployment["spec"]["template"]["spec"]
        monitor = one(objects, "PodMonitor")
        self.assertEqual(monitor["apiVersion"], "monitoring.coreos.com/v1")
        self.assertEqual(monitor["metadata"]["namespace"], deployment["metadata"]["namespace"])
        self.assertEqual(monitor["spec"]["selector"]["matchLabels"].items() -
                         deployment["spec"]["template"]["metadata"]["labels"].items(), set())
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        self.assertEqual(endpoint["path"], "/metrics")
        ports = {p["name"]: p["containerPort"] for p in egressd_container(spec)["ports"]}
        config = server_config(objects)
        self.assertEqual(ports[endpoint["port"]], listen_port(config["admin"]["listen"]))
        credentials = endpoint["authorization"]["credentials"]
        self.assertEqual(endpoint["authorization"]["type"], "Bearer")
        # The Secret the token file is read from is the one Prometheus sends.
        token_dir = os.path.dirname(os.path.normpath(os.path.join(os.path.dirname(config_path(objects)),
                                                                  config["admin"]["token_file"])))
        mount = [m for m in egressd_container(spec)["volumeMounts"] if m["mountPath"] == token_dir]
        self.assertEqual(len(mount), 1, "the admin token file is not in a mounted volume")
        volume = [v for v in spec["volumes"] if v["name"] == mount[0]["name"]][0]
        self.assertEqual(credentials["name"], volume["secret"]["secretName"])
        self.assertEqual(credentials["key"], os.path.basename(config["admin"]["token_file"]))


class SidecarTest(KubernetesTestCase):

    def test_application_uses_its_native_sidecar(self):
        objects = render("sidecar")
        spec = egressd_pod(objects)["spec"]["template"]["spec"]
        sidecar = egressd_container(spec)
        self.assertIn(sidecar, spec["initContainers"])
        self.assertEqual(sidecar["restartPolicy"], "Always", "a native sidecar outlives the application")
        self.assertEqual(sidecar["startupProbe"]["httpGet"]["path"], "/readyz")
        (listener,) = server_config(objects)["listeners"]
        self.assertTrue(listener.startswith("127.0.0.1:"), "the sidecar serves only its own pod")
        (application,) = spec["containers"]
        env = {e["name"]: e.get("value") for e in application["env"]}
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            self.assertEqual(env[name], "http://" + listener)
        for name in ("NO_PROXY", "no_proxy"):
            self.assertIn("127.0.0.1", env[name].split(","))
        policy = one(objects, "NetworkPolicy")
        self.assertEqual(policy["spec"]["podSelector"]["matchLabels"].items() -
                         egressd_pod(objects)["spec"]["template"]["metadata"]["labels"].items(), set())
        self.assertEqual(sorted(policy["spec"]["policyTypes"]), ["Egress", "Ingress"])


class EgressdChecksTest(KubernetesTestCase):
    """The configurations and policies in the ConfigMaps, mounted as the kubelet mounts them, checked by egressd."""

    def setUp(self):
        super().setUp()
        if not BINARY or not os.access(BINARY, os.X_OK):
            self.skipTest("EGRESSD_BINARY is not set to the built egressd (ctest sets it)")

    def test_server_configurations_pass_config_check(self):
        for name in KUSTOMIZATIONS:
            with self.subTest(kustomization=name), tempfile.TemporaryDirectory() as tmp:
                config = lay_out(render(name), Path(tmp))
                result = subprocess.run([BINARY, "config", "check", str(config)], capture_output=True, text=True,
                                        timeout=60)
                self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_policies_pass_policy_check(self):
        for name in KUSTOMIZATIONS:
            with self.subTest(kustomization=name), tempfile.TemporaryDirectory() as tmp:
                objects = render(name)
                config = lay_out(objects, Path(tmp))
                policy_dir = config.parent / server_config(objects)["policy"]
                result = subprocess.run([BINARY, "policy", "check", str(policy_dir)], capture_output=True, text=True,
                                        timeout=60)
                self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_a_broken_policy_in_the_config_map_fails_the_check(self):
        with tempfile.TemporaryDirectory() as tmp:
            objects = render("base")
            policy = one(objects, "ConfigMap", "egressd-policy")
            policy["data"]["policy.yaml"] = policy["data"]["policy.yaml"].replace("ports: [443]", "port: [443]", 1)
            config = lay_out(objects, Path(tmp))
            result = subprocess.run([BINARY, "config", "check", str(config)], capture_output=True, text=True,
                                    timeout=60)
            self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
            self.assertIn("unknown key 'port'", result.stdout + result.stderr)


class MountedGatewayTest(KubernetesTestCase):
    """The base's egressd, run on its ConfigMaps and Secrets as the kubelet mounts them."""

    def setUp(self):
        super().setUp()
        if not BINARY or not os.access(BINARY, os.X_OK):
            self.skipTest("EGRESSD_BINARY is not set to the built egressd (ctest sets it)")
        if os.environ.get("EGRESSD_E2E_NETNS") != "1":
            self.skipTest("no private network namespace (unshare -rn refused): the manifests' ports are fixed")
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.objects = render("base")
        self.config = lay_out(self.objects, Path(self.tmp.name))
        container = egressd_container(egressd_pod(self.objects)["spec"]["template"]["spec"])
        self.admin_port = {p["name"]: p["containerPort"] for p in container["ports"]}["admin"]
        self.proxy_port = {p["name"]: p["containerPort"] for p in container["ports"]}["proxy"]
        self.log = open(Path(self.tmp.name) / "egressd.log", "w+")
        self.addCleanup(self.log.close)
        self.process = subprocess.Popen([BINARY, *container["args"][:2], str(self.config)], stdout=self.log,
                                        stderr=subprocess.STDOUT)
        self.addCleanup(self.stop)

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def admin(self, path, token=None):
        connection = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=5)
        try:
            headers = {"Authorization": "Bearer " + token} if token else {}
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            return response.status, response.read().decode()
        finally:
            connection.close()

    def wait_for(self, condition, what, timeout=20.0):
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.1) + 1):
            try:
                if condition():
                    return
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.log.seek(0)
        self.fail("%s: not within %.0f s\n%s" % (what, timeout, self.log.read()[-4000:]))

    def status(self):
        code, body = self.admin("/status", ADMIN_TOKEN)
        self.assertEqual(code, 200, body)
        return json.loads(body)["policy"]

    def test_config_map_update_is_applied_live_and_sigterm_drains(self):
        self.wait_for(lambda: self.admin("/readyz")[0] == 200, "/readyz 200 (the readiness probe)")
        self.assertEqual(self.admin("/healthz")[0], 200)
        self.assertEqual(self.admin("/metrics")[0], 401, "/metrics needs the token off loopback")
        first = self.status()
        code, metrics = self.admin("/metrics", ADMIN_TOKEN)
        self.assertEqual(code, 200)
        samples = harness.parse_metrics(metrics)
        self.assertEqual(harness.metric_value(samples, "egressd_policy_info", digest=first["digest"]), 1)

        # kubectl apply of a changed policy: the kubelet swaps the mount's ..data, the file watch reloads.
        config_maps = mounted_config_maps(self.objects)
        policy_dir = Path(self.tmp.name) / "etc" / "egressd" / "policy"
        (key, text), = config_maps["/etc/egressd/policy"]["data"].items()
        changed = text.replace("destinations: [pypi.org, files.pythonhosted.org]",
                               "destinations: [pypi.org, files.pythonhosted.org, upload.pypi.org]")
        self.assertNotEqual(changed, text)
        kubelet_update(policy_dir, {key: changed})
        self.wait_for(lambda: self.status()["version"] == first["version"] + 1, "the policy reloaded")
        second = self.status()
        self.assertNotEqual(second["digest"], first["digest"])
        self.assertEqual(second["rules"], first["rules"])

        # SIGTERM: readiness turns 503 at once, the listener keeps accepting for drain_delay, then egressd exits
        # by itself, well within terminationGracePeriodSeconds.
        grace = egressd_pod(self.objects)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        stopped_at = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.wait_for(lambda: self.admin("/readyz")[0] == 503, "/readyz 503 after SIGTERM", timeout=2)
        with socket.create_connection(("127.0.0.1", self.proxy_port), timeout=2):
            pass
        self.assertLess(time.monotonic() - stopped_at, seconds(server_config(self.objects)["timeouts"]["drain_delay"]),
                        "the listener was checked after drain_delay")
        self.assertEqual(self.process.wait(timeout=grace), 0)


if __name__ == "__main__":
    unittest.main()
