"""docker/compose/: the sidecar and gateway compose files, checked without a Docker engine.

Both validate against the Compose Specification's JSON schema; their shape is checked for what the sidecar
promises (the application's only network is internal, its proxy variables name the sidecar, which alone also
has an outside network); and the gateway service runs as compose would run it, from the image contents that
test_container builds: its command, its read-only root and tmpfs, its volumes and its secrets at
/run/secrets/<name>, with the approvals page answering and keeping its store in the state volume.
"""

import json
import os
import re
import signal
import subprocess
import unittest

from test_container import (SOURCE_DIR, BINARY, Container, build_image, make_admin_token, make_state_volume,
                            make_test_policy, node_tool, node_tools_missing, output_of, root_missing,
                            start_upstream)

COMPOSE_DIR = SOURCE_DIR / "docker" / "compose"
SIDECAR = COMPOSE_DIR / "sidecar.yaml"
GATEWAY = COMPOSE_DIR / "gateway.yaml"
# egressd's default timeouts.shutdown_grace: an engine's SIGKILL must not come before the drain ends.
SHUTDOWN_GRACE_SECONDS = 30


def load_compose(path):
    result = node_tool("to-json.mjs", path)
    if result.returncode != 0:
        raise AssertionError("%s: %s" % (path, result.stderr))
    return json.loads(result.stdout)


def seconds(duration):
    total = 0.0
    for number, unit in re.findall(r"([0-9.]+)(ms|s|m|h)", duration):
        total += float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def egressd_services(compose):
    return {name: s for name, s in compose["services"].items() if "egressd" in s.get("image", "")}


def mount_sources(service):
    """container path -> (source, mode) of a service's short-syntax volumes."""
    mounts = {}
    for volume in service.get("volumes", []):
        parts = volume.split(":")
        mounts[parts[1]] = (parts[0], parts[2] if len(parts) > 2 else "rw")
    return mounts


class ComposeFilesTest(unittest.TestCase):

    def setUp(self):
        missing = node_tools_missing()
        if missing:
            self.skipTest(missing)

    def test_compose_files_match_the_compose_specification(self):
        result = node_tool("validate-compose.mjs", SIDECAR, GATEWAY)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_sidecar_application_reaches_only_the_proxy(self):
        compose = load_compose(SIDECAR)
        networks = compose["networks"]
        proxies = egressd_services(compose)
        self.assertEqual(len(proxies), 1, "one egressd sidecar")
        (proxy_name, proxy), = proxies.items()
        applications = {name: s for name, s in compose["services"].items() if name != proxy_name}
        self.assertTrue(applications, "an application service beside the sidecar")
        for name, app in applications.items():
            app_networks = app.get("networks", [])
            self.assertTrue(app_networks, "%s would join the default network, which reaches outside" % name)
            for network in app_networks:
                self.assertIs((networks.get(network) or {}).get("internal"), True,
                              "%s is on %s, which is not internal" % (name, network))
                self.assertIn(network, proxy["networks"], "%s cannot reach the sidecar on %s" % (name, network))
            self.assertNotIn("ports", app)
            environment = app["environment"]
            for variable in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
                self.assertEqual(environment.get(variable), "http://%s:3128" % proxy_name, variable)
            self.assertIn("localhost", environment.get("NO_PROXY", ""))
            self.assertEqual(app["depends_on"][proxy_name]["condition"], "service_healthy")
        outside = [n for n in proxy["networks"] if not (networks.get(n) or {}).get("internal")]
        self.assertTrue(outside, "the sidecar has no network that reaches outside")

    def test_proxies_run_read_only_with_state_volume_and_secrets(self):
        for path in (SIDECAR, GATEWAY):
            compose = load_compose(path)
            for name, service in egressd_services(compose).items():
                where = "%s: %s" % (path.name, name)
                self.assertIs(service.get("read_only"), True, where)
                self.assertIn("/tmp", service.get("tmpfs", []), where)
                self.assertEqual(service.get("cap_drop"), ["ALL"], where)
                mounts = mount_sources(service)
                state, _ = mounts["/var/lib/egressd"]
                self.assertIn(state, compose.get("volumes", {}), "%s: the state is a named volume" % where)
                policy, mode = mounts["/etc/egressd/policy"]
                self.assertEqual(mode, "ro", where)
                self.assertTrue((COMPOSE_DIR / policy).is_dir(), "%s: %s is no directory" % (where, policy))
                self.assertIn("admin_token", service.get("secrets", []), where)
                for secret in service.get("secrets", []):
                    self.assertIn(secret, compose["secrets"], where)
                self.assertGreater(seconds(service["stop_grace_period"]), SHUTDOWN_GRACE_SECONDS, where)
                build = service["build"]
                self.assertTrue((COMPOSE_DIR / build["context"] / build["dockerfile"]).is_file(), where)

    def test_gateway_publishes_proxy_and_approvals_and_keeps_admin_local(self):
        (_, gateway), = egressd_services(load_compose(GATEWAY)).items()
        self.assertEqual(gateway["command"], ["run", "--config", "/etc/egressd/gateway.yaml"])
        self.assertIn("3128:3128", gateway["ports"])
        self.assertIn("9091:9091", gateway["ports"])
        self.assertIn("127.0.0.1:9090:9090", gateway["ports"])
        self.assertEqual(sorted(gateway["secrets"]), ["admin_token", "approvers", "requesters"])


class GatewayRunTest(unittest.TestCase):
    """The gateway service of docker/compose/gateway.yaml, run from the image contents as compose would."""

    def setUp(self):
        missing = root_missing() or node_tools_missing()
        if missing:
            self.skipTest(missing)

    def test_gateway_serves_approvals_from_its_state_volume(self):
        compose = load_compose(GATEWAY)
        (_, service), = egressd_services(compose).items()
        image, work = build_image(self)

        # The secrets, made as the compose file's comment says, owned by the image's user.
        password = "correct horse battery staple"
        approvers = work / "approvers.passwd"
        made = subprocess.run([str(BINARY), "passwd", "alice"], input=password + "\n", capture_output=True,
                              text=True, timeout=60)
        self.assertEqual(made.returncode, 0, made.stderr)
        approvers.write_text(made.stdout)
        requesters = work / "requesters.passwd"
        requesters.write_text("")
        secret_files = {"admin_token": make_admin_token(work), "approvers": approvers, "requesters": requesters}
        for path in (approvers, requesters):
            os.chown(path, 10001, 10001)
            path.chmod(0o400)

        mounts = {}
        for container_path, (source, mode) in mount_sources(service).items():
            if source in compose.get("volumes", {}):
                mounts[container_path] = (make_state_volume(image, work), mode)
            elif container_path == "/etc/egressd/policy":
                # The test's policy stands in for ../policy, as a user's own does.
                mounts[container_path] = (make_test_policy(work, unguarded=["documentation"]), mode)
            else:
                self.fail("no stand-in for the volume %s:%s" % (source, container_path))
        for secret in service["secrets"]:
            mounts["/run/secrets/" + secret] = (secret_files[secret], "ro")
        resolv = work / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\n")
        mounts["/etc/resolv.conf"] = (resolv, "ro")
        state = mounts["/var/lib/egressd"][0]

        container = Container(self, image, work, mounts)
        start_upstream(container, work)
        check = container.exec(image.entrypoint + ["config", "check", service["command"][-1]])
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        gateway = container.start(image.entrypoint + service["command"])
        container.wait_until(lambda: gateway.poll() is not None or container.exec(image.healthcheck).returncode == 0,
                             "the HEALTHCHECK to pass")
        self.assertIsNone(gateway.poll(), output_of(gateway))
        container.wait_until(lambda: container.curl("http://127.0.0.1:9090/readyz")[0] == 200, "readiness")

        self.assertEqual(container.curl("-x", "http://127.0.0.1:3128", "http://127.0.0.1:8080/hello.txt")[0], 200)
        # A destination no rule allows: denied, and an access request appears on the approvals page. Guarded
        # addresses never become requests, so it is a documentation address the test policy leaves unguarded;
        # nothing is sent to it, and the container's network namespace has no route but loopback anyway.
        self.assertEqual(container.curl("-x", "http://127.0.0.1:3128", "http://203.0.113.5:8080/x")[0], 403)
        self.assertEqual(container.curl("http://127.0.0.1:9091/api/v1/requests")[0], 401)

        def requests():
            status, body = container.curl("-u", "alice:" + password, "http://127.0.0.1:9091/api/v1/requests")
            return json.loads(body)["requests"] if status == 200 else []

        container.wait_until(lambda: any(r.get("host") == "203.0.113.5" for r in requests()), "the access request")
        status, page = container.curl("http://127.0.0.1:9091/login")
        self.assertEqual(status, 200, "the approvals page's sign-in")
        self.assertIn('action="/login"', page)

        gateway.send_signal(signal.SIGTERM)
        self.assertEqual(gateway.wait(timeout=40), 0, output_of(gateway))
        self.assertNotIn("Read-only file system", output_of(gateway))
        stored = [p for p in state.iterdir() if p.name.startswith("approvals.db")]
        self.assertTrue(stored, "the approvals store is not in the state volume")
        for path in stored:
            self.assertEqual(path.stat().st_uid, 10001, path)


if __name__ == "__main__":
    unittest.main()
