"""The container image, checked without a Docker engine.

docker/Dockerfile is linted (dockerfile-utils), and its runtime stage is built the way an engine would build it,
into a copy of the Debian 12 test root: each COPY from this build's outputs and the sources, each RUN in a chroot
(apt-get stands in for itself: the root already has the packages, so the stand-in checks that the line asks for
exactly deploy/runtime-packages.txt, all installed). The result then runs the way an engine runs a container
with --read-only: its own network namespace (loopback only, so the image's 0.0.0.0 listeners are private to the
test), the root file system read-only, a tmpfs on /tmp, the volumes and secrets bind-mounted, ENTRYPOINT + CMD as
the image's USER. Needs root (mounts, namespaces, chroot) and the test root (EGRESSD_TEST_ROOTFS); skips without.
"""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

SOURCE_DIR = Path(os.environ.get("EGRESSD_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BUILD_DIR = Path(os.environ.get("EGRESSD_BUILD_DIR", SOURCE_DIR / "build" / "ci"))
BINARY = Path(os.environ.get("EGRESSD_BINARY", BUILD_DIR / "proxy" / "egressd"))
TEST_ROOTFS = Path(os.environ.get("EGRESSD_TEST_ROOTFS", SOURCE_DIR / "build" / "rootfs"))
DOCKERFILE = SOURCE_DIR / "docker" / "Dockerfile"
NODE_TOOLS = SOURCE_DIR / "tests" / "deploy" / "container"
RUNTIME_PACKAGES = SOURCE_DIR / "deploy" / "runtime-packages.txt"

# What the build stage produces, as the runtime stage's COPY --from=build names it, and where this build has it.
BUILD_OUTPUTS = {"/src/build/release/proxy/egressd": BINARY}

CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOST_TOOL_ENV = {"PATH": os.environ.get("PATH", CONTAINER_PATH), "LANG": "C.UTF-8"}

# Where an engine's apt-get would fetch packages, this one checks that each is already in the root, and records
# its arguments for the test: no network in tests, and the root holds exactly the runtime list.
APT_GET_STAND_IN = """#!/bin/sh
echo "$*" >> /apt-get.calls
[ "$1" = update ] && exit 0
for arg in "$@"; do
  case "$arg" in
    -*|install) ;;
    *) dpkg-query -W -f='${Status}\\n' "$arg" 2>/dev/null | grep -q 'install ok installed' \\
         || { echo "apt-get stand-in: $arg is not in the test root" >&2; exit 100; } ;;
  esac
done
"""


def runtime_packages():
    names = []
    for line in RUNTIME_PACKAGES.read_text().splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            names.append(name)
    return names


def node_tool(script, *args):
    return subprocess.run(["node", str(NODE_TOOLS / script), *map(str, args)], capture_output=True, text=True,
                          timeout=60)


def node_tools_missing():
    if shutil.which("node") is None:
        return "node is not installed (scripts/bootstrap installs it)"
    if not (NODE_TOOLS / "node_modules").is_dir():
        return "tests/deploy/container/node_modules is missing: run npm ci --prefix tests/deploy/container"
    return None


def root_missing():
    if os.geteuid() != 0:
        return "needs root (chroot, mount and network namespaces); CI runs as root"
    if not (TEST_ROOTFS / ".egressd-test-rootfs").is_file():
        return "no test root at %s: scripts/test-rootfs makes it (scripts/bootstrap test does)" % TEST_ROOTFS
    for tool in ("unshare", "nsenter", "curl"):
        if shutil.which(tool) is None:
            return "%s is not installed" % tool
    return None


class Instruction:
    def __init__(self, keyword, text, line):
        self.keyword = keyword
        self.text = text
        self.line = line

    def flags_and_rest(self):
        """Leading --name=value flags, and what follows them."""
        flags = {}
        rest = self.text
        for _ in range(20):
            match = re.match(r"--([a-z-]+)=(\S+)\s+", rest)
            if not match:
                break
            flags[match.group(1)] = match.group(2)
            rest = rest[match.end():]
        return flags, rest

    def exec_form(self, text=None):
        """The JSON array of the exec form, or None for the shell form."""
        text = self.text if text is None else text
        return json.loads(text) if text.lstrip().startswith("[") else None


def parse_dockerfile(path):
    """The stages of a Dockerfile, each a list of Instructions (continuations joined, comments dropped)."""
    stages = []
    pending = ""
    start = 0
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = pending + stripped
        pending = ""
        keyword, _, rest = text.partition(" ")
        instruction = Instruction(keyword.upper(), rest.strip(), start)
        if instruction.keyword == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    return stages


class Image:
    """The runtime stage's file system (a directory) and its configuration, as an engine records them."""

    def __init__(self, root):
        self.root = root
        self.user = "0:0"
        self.workdir = "/"
        self.env = {"PATH": CONTAINER_PATH}
        self.labels = {}
        self.exposed = []
        self.volumes = []
        self.stop_signal = None
        self.healthcheck = None
        self.entrypoint = []
        self.cmd = []
        self.apt_get_calls = []

    def inside(self, path):
        return self.root / path.lstrip("/")


def copy_into(image, instruction, build_dir_sources):
    flags, rest = instruction.flags_and_rest()
    words = instruction.exec_form(rest) or shlex.split(rest)
    *sources, dest = words
    owner = flags.get("chown", "0:0").split(":")
    uid = int(owner[0])
    gid = int(owner[1] if len(owner) > 1 else owner[0])
    target = image.inside(dest)
    for source in sources:
        if "from" in flags:
            if source not in build_dir_sources:
                raise AssertionError("line %d copies %s from the build stage, which this test cannot map to a "
                                     "build output: add it to BUILD_OUTPUTS" % (instruction.line, source))
            origin = Path(build_dir_sources[source])
        else:
            origin = SOURCE_DIR / source
        if not origin.exists():
            raise AssertionError("line %d: COPY source %s does not exist" % (instruction.line, origin))
        if origin.is_dir():
            shutil.copytree(origin, target, dirs_exist_ok=True)
            copied = [target, *target.rglob("*")]
        else:
            into_dir = dest.endswith("/") or len(sources) > 1
            file_target = target / origin.name if into_dir else target
            file_target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, file_target)
            copied = [file_target]
        for path in copied:
            os.chown(path, uid, gid, follow_symlinks=False)


def run_in_root(image, instruction):
    command = instruction.exec_form() or ["/bin/sh", "-c", instruction.text]
    uid, _, gid = image.user.partition(":")
    result = subprocess.run(["chroot", "--userspec=%s:%s" % (uid, gid or uid), str(image.root), *command],
                            env=image.env, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise AssertionError("line %d: RUN failed (%d)\n%s\n%s" % (instruction.line, result.returncode,
                                                                     result.stdout, result.stderr))


def build_runtime_stage(root):
    """Applies the Dockerfile's last stage to root (a copy of the test root) and returns the Image."""
    stages = parse_dockerfile(DOCKERFILE)
    image = Image(root)
    stand_in = image.inside("/usr/local/sbin/apt-get")
    stand_in.write_text(APT_GET_STAND_IN)
    stand_in.chmod(0o755)
    for instruction in stages[-1]:
        keyword = instruction.keyword
        if keyword == "FROM":
            continue
        elif keyword == "LABEL":
            for word in shlex.split(instruction.text):
                name, _, value = word.partition("=")
                image.labels[name] = value
        elif keyword == "COPY":
            copy_into(image, instruction, BUILD_OUTPUTS)
        elif keyword == "RUN":
            run_in_root(image, instruction)
        elif keyword == "ENV":
            for word in shlex.split(instruction.text):
                name, _, value = word.partition("=")
                image.env[name] = value
        elif keyword == "USER":
            image.user = instruction.text
        elif keyword == "WORKDIR":
            image.workdir = instruction.text
        elif keyword == "EXPOSE":
            image.exposed = instruction.text.split()
        elif keyword == "VOLUME":
            image.volumes = instruction.exec_form() or instruction.text.split()
        elif keyword == "STOPSIGNAL":
            image.stop_signal = instruction.text
        elif keyword == "HEALTHCHECK":
            flags, rest = instruction.flags_and_rest()
            kind, _, command = rest.partition(" ")
            assert kind == "CMD", "line %d: HEALTHCHECK %s" % (instruction.line, kind)
            image.healthcheck = instruction.exec_form(command) or ["/bin/sh", "-c", command]
        elif keyword == "ENTRYPOINT":
            image.entrypoint = instruction.exec_form() or ["/bin/sh", "-c", instruction.text]
        elif keyword == "CMD":
            image.cmd = instruction.exec_form() or ["/bin/sh", "-c", instruction.text]
        else:
            raise AssertionError("line %d: %s is not handled by this test" % (instruction.line, keyword))
    calls = image.inside("/apt-get.calls")
    image.apt_get_calls = calls.read_text().splitlines() if calls.exists() else []
    calls.unlink(missing_ok=True)
    stand_in.unlink()
    return image


def build_image(test):
    """A fresh copy of the test root with the runtime stage applied, removed when the test ends."""
    work = Path(tempfile.mkdtemp(prefix="egressd-image-"))
    test.addCleanup(shutil.rmtree, work, ignore_errors=True)
    root = work / "root"
    subprocess.run(["cp", "-a", str(TEST_ROOTFS), str(root)], check=True, timeout=300)
    return build_runtime_stage(root), work


# Run by the namespace holder: the mounts of a container started with --read-only --tmpfs /tmp and its volumes,
# loopback up, then a chroot into the read-only root whose working directory is the image's WORKDIR.
HOLDER_SCRIPT = r"""
set -eu
root=$1; workdir=$2; shift 2
mount --bind "$root" "$root"
mount -o remount,bind,ro "$root"
mount -t proc proc "$root/proc"
mount -t sysfs -o ro sysfs "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$root/tmp"
while [ $# -gt 0 ]; do
  mount --bind "$1" "$root$2"
  if [ "$3" = ro ]; then mount -o remount,bind,ro "$root$2"; fi
  shift 3
done
python3 -c '
import fcntl, socket, struct
s = socket.socket()
flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, struct.pack("16sH", b"lo", 0)))[1]
fcntl.ioctl(s, 0x8914, struct.pack("16sH", b"lo", flags | 1))
'
# "ready" only once inside the chroot: nsenter --root takes the holder's root as it is at that moment.
exec chroot "$root" /bin/sh -c 'cd "$1" && echo ready && exec sleep 900' sh "$workdir"
"""


class Container:
    """A running container made of an Image: a holder process owns its network and mount namespaces; commands
    enter them (as the image's USER, in its root and WORKDIR) or only the network namespace (host tools)."""

    def __init__(self, test, image, work, mounts):
        self.test = test
        self.image = image
        self.work = work
        args = []
        for container_path, (host_path, mode) in mounts.items():
            target = image.inside(container_path)
            if Path(host_path).is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                # An engine makes the mount point in the container's layer before it turns read-only.
                target.parent.mkdir(parents=True, exist_ok=True)
                target.touch(exist_ok=True)
            args += [str(host_path), container_path, mode]
        self.holder = subprocess.Popen(
            ["unshare", "--net", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", HOLDER_SCRIPT,
             "holder", str(image.root), image.workdir, *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        test.addCleanup(self.stop_holder)
        line = self.holder.stdout.readline()
        if line.strip() != "ready":
            self.holder.wait(timeout=10)
            raise AssertionError("the container's namespaces could not be set up: " + self.holder.stderr.read())
        self.processes = []

    def stop_holder(self):
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        if self.holder.poll() is None:
            self.holder.kill()
        self.holder.wait(timeout=10)
        self.holder.stdout.close()
        self.holder.stderr.close()

    def enter(self, as_user=True):
        """The nsenter prefix: the container's namespaces, root and working directory, and its USER."""
        command = ["nsenter", "-t", str(self.holder.pid), "--net", "--mount", "--root", "--wd"]
        if as_user:
            uid, _, gid = self.image.user.partition(":")
            command += ["--setuid", uid, "--setgid", gid or uid]
        return command + ["--"]

    def exec(self, argv, timeout=30):
        """Runs argv inside the container, as an engine's `docker exec` does."""
        return subprocess.run(self.enter() + argv, env=self.environment(), capture_output=True, text=True,
                              timeout=timeout)

    def environment(self):
        return dict(self.image.env, HOME="/var/lib/egressd", HOSTNAME="egressd-test")

    def start(self, argv):
        """Starts argv inside the container with stdout and stderr in files of the work directory."""
        out = open(self.work / ("stdout-%d" % len(self.processes)), "w+")
        err = open(self.work / ("stderr-%d" % len(self.processes)), "w+")
        self.test.addCleanup(out.close)
        self.test.addCleanup(err.close)
        process = subprocess.Popen(self.enter() + argv, env=self.environment(), stdout=out, stderr=err)
        process.out = out
        process.err = err
        self.processes.append(process)
        return process

    def host_tool(self, argv, timeout=30):
        """Runs a host tool (curl, python3) in the container's network namespace only, without the host's
        proxy variables (a no_proxy there would bypass curl -x)."""
        return subprocess.run(["nsenter", "-t", str(self.holder.pid), "--net", "--"] + argv, capture_output=True,
                              text=True, timeout=timeout, env=HOST_TOOL_ENV)

    def start_host_tool(self, argv):
        process = subprocess.Popen(["nsenter", "-t", str(self.holder.pid), "--net", "--"] + argv,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=HOST_TOOL_ENV)
        self.processes.append(process)
        return process

    def curl(self, *args):
        result = self.host_tool(["curl", "-sS", "--max-time", "10", "-o", "/dev/stdout", "-w", "\n%{http_code}",
                                 *args])
        body, _, status = result.stdout.rpartition("\n")
        return int(status or 0), body

    def wait_until(self, check, what, timeout=20):
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout * 10)):
            if check():
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        raise AssertionError("timed out waiting for " + what)


def output_of(process):
    process.out.seek(0)
    process.err.seek(0)
    return process.out.read() + process.err.read()


def events_of(process):
    process.out.seek(0)
    events = []
    for line in process.out.read().splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


# The policy the running tests mount over /etc/egressd/policy, as a user mounts theirs: clients on the
# container's loopback may reach the test's upstream there, nothing else.
TEST_POLICY = """version: 1
mode: enforce
groups:
  test-upstream:
    rules:
      - description: the test's upstream on the container's loopback
        ports: [8080]
        destinations: [127.0.0.1/32]
clients:
  local:
    sources: [127.0.0.0/8]
    groups: [test-upstream]
"""


def make_admin_token(work):
    """The admin token secret as the README says to make it: owned by the image's user, mode 0400."""
    token = work / "admin-token"
    token.write_text(subprocess.run(["openssl", "rand", "-hex", "32"], capture_output=True, text=True,
                                    check=True).stdout)
    os.chown(token, 10001, 10001)
    token.chmod(0o400)
    return token


def make_state_volume(image, work):
    """A named volume as an engine makes it: initialised from the image's directory, owner and mode included."""
    state = work / "state"
    source = image.inside("/var/lib/egressd")
    state.mkdir()
    shutil.copystat(source, state)
    stat = source.stat()
    os.chown(state, stat.st_uid, stat.st_gid)
    return state


def make_test_policy(work, unguarded=()):
    policy = work / "policy"
    policy.mkdir()
    guard = "address_guard:\n  except: [%s]\n" % ", ".join(unguarded)
    (policy / "policy.yaml").write_text(TEST_POLICY + guard)
    return policy


def start_upstream(container, work):
    site = work / "site"
    site.mkdir()
    (site / "hello.txt").write_text("hello from the upstream\n")
    container.start_host_tool(["python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(site),
                               "8080"])
    container.wait_until(lambda: container.host_tool(["curl", "-sf", "-o", "/dev/null",
                                                      "http://127.0.0.1:8080/hello.txt"]).returncode == 0,
                         "the test's upstream")


class DockerfileTest(unittest.TestCase):
    """The recipe itself, read without building it: no root needed."""

    def test_dockerfile_passes_the_linter(self):
        missing = node_tools_missing()
        if missing:
            self.skipTest(missing)
        result = subprocess.run([str(NODE_TOOLS / "node_modules" / ".bin" / "dockerfile-utils"), "lint",
                                 str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertEqual(result.stdout.strip(), "", "dockerfile-utils reports problems")

    def test_runtime_stage_declares_what_a_container_needs(self):
        stages = parse_dockerfile(DOCKERFILE)
        self.assertEqual(len(stages), 2, "a build stage and a runtime stage")
        runtime = {i.keyword: i for i in stages[-1]}
        self.assertTrue(stages[-1][0].text.startswith("debian:12"), stages[-1][0].text)
        self.assertRegex(runtime["USER"].text, r"^10001:10001$", "a fixed numeric UID:GID (runAsNonRoot)")
        self.assertEqual(sorted(runtime["EXPOSE"].text.split()), ["3128", "9090", "9091"])
        self.assertEqual(runtime["VOLUME"].exec_form(), ["/etc/egressd", "/var/lib/egressd"])
        self.assertEqual(runtime["STOPSIGNAL"].text, "SIGTERM")
        self.assertIn("HEALTHCHECK", runtime)
        self.assertIn("org.opencontainers.image.title", runtime["LABEL"].text)
        self.assertEqual(runtime["ENTRYPOINT"].exec_form(), ["/usr/local/bin/egressd"])
        self.assertEqual(runtime["CMD"].exec_form(), ["run", "--config", "/etc/egressd/egressd.yaml"])

    def test_build_stage_installs_only_what_the_build_needs(self):
        build_stage = parse_dockerfile(DOCKERFILE)[0]
        runs = " ".join(i.text for i in build_stage if i.keyword == "RUN")
        match = re.search(r"scripts/bootstrap (\S+)", runs)
        self.assertIsNotNone(match, "the build stage installs its packages with scripts/bootstrap")
        mode = match.group(1)
        self.assertNotEqual(mode, "deps", "bootstrap deps installs the whole test suite's packages too")
        bootstrap = (SOURCE_DIR / "scripts" / "bootstrap").read_text()
        has_mode = re.search(r"(?m)^\s*%s\)" % re.escape(mode), bootstrap)
        self.assertTrue(has_mode, "scripts/bootstrap has no mode " + mode)
        self.assertIn("-DEGRESSD_BUILD_TESTS=OFF", runs)


class ImageContentsTest(unittest.TestCase):
    """The runtime stage built into a Debian 12 root and run like a read-only container."""

    def setUp(self):
        missing = root_missing()
        if missing:
            self.skipTest(missing)

    def test_runtime_stage_installs_exactly_the_runtime_packages(self):
        image, _ = build_image(self)
        installs = [call.split() for call in image.apt_get_calls if call.split()[:1] != ["update"]]
        self.assertEqual(len(installs), 1, image.apt_get_calls)
        packages = [word for word in installs[0] if not word.startswith("-") and word != "install"]
        self.assertEqual(sorted(packages), sorted(runtime_packages()))
        self.assertIn("-y", installs[0])
        self.assertIn("--no-install-recommends", installs[0])
        self.assertFalse(any(image.inside("/var/lib/apt/lists").glob("*Packages*")), "apt lists left in the image")
        # The binary finds every library it links in the root.
        ldd = subprocess.run(["chroot", str(image.root), "ldd", "/usr/local/bin/egressd"], capture_output=True,
                             text=True, timeout=30)
        self.assertEqual(ldd.returncode, 0, ldd.stderr)
        self.assertNotIn("not found", ldd.stdout)
        # The user the README tells people to chown mounted keys to.
        passwd = image.inside("/etc/passwd").read_text()
        self.assertRegex(passwd, r"(?m)^egressd:x:10001:10001:")

    def test_image_serves_read_only_as_its_user(self):
        image, work = build_image(self)
        token = make_admin_token(work)
        state = make_state_volume(image, work)
        resolv = work / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\n")
        container = Container(self, image, work, {
            "/var/lib/egressd": (state, "rw"),
            "/run/secrets/admin_token": (token, "ro"),
            "/etc/resolv.conf": (resolv, "ro"),
        })

        # The image's own configuration and policy are valid and readable by its user.
        check = container.exec(image.entrypoint + ["config", "check", "/etc/egressd/egressd.yaml"])
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        policy_check = container.exec(image.entrypoint + ["policy", "check", "/etc/egressd/policy"])
        self.assertEqual(policy_check.returncode, 0, policy_check.stdout + policy_check.stderr)
        self.assertIn("valid", policy_check.stdout)
        self.assertNotEqual(container.exec(image.healthcheck).returncode, 0, "healthy with nothing running")

        # Then the user's own policy, mounted over the image's, as docker/compose does.
        policy = make_test_policy(work)
        mount = subprocess.run(["nsenter", "-t", str(container.holder.pid), "--mount", "--", "mount", "--bind",
                                "-o", "ro", str(policy), str(image.inside("/etc/egressd/policy"))],
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(mount.returncode, 0, mount.stderr)
        start_upstream(container, work)

        proxy = container.start(image.entrypoint + image.cmd)
        container.wait_until(lambda: proxy.poll() is not None or container.exec(image.healthcheck).returncode == 0,
                             "the HEALTHCHECK to pass")
        self.assertIsNone(proxy.poll(), output_of(proxy))
        self.assertEqual(container.curl("http://127.0.0.1:9090/readyz")[0], 200)

        # The proxy on the image's listener, with the mounted policy applied.
        status, body = container.curl("-x", "http://127.0.0.1:3128", "http://127.0.0.1:8080/hello.txt")
        self.assertEqual((status, body), (200, "hello from the upstream\n"), output_of(proxy))
        status, body = container.curl("-p", "-x", "http://127.0.0.1:3128", "http://127.0.0.1:8080/hello.txt")
        self.assertEqual((status, body), (200, "hello from the upstream\n"), "CONNECT tunnel")
        self.assertEqual(container.curl("-x", "http://127.0.0.1:3128", "http://127.0.0.2:8080/hello.txt")[0], 403)

        # The admin endpoints beyond the probes take the mounted token, which the user could read.
        self.assertEqual(container.curl("http://127.0.0.1:9090/metrics")[0], 401)
        status, metrics = container.curl("-H", "Authorization: Bearer " + token.read_text().strip(),
                                         "http://127.0.0.1:9090/metrics")
        self.assertEqual(status, 200)
        self.assertIn("egressd_", metrics)

        # Stopped the way the engine stops it.
        self.assertEqual(image.stop_signal, "SIGTERM")
        proxy.send_signal(signal.SIGTERM)
        self.assertEqual(proxy.wait(timeout=40), 0, output_of(proxy))
        events = [e.get("event") for e in events_of(proxy)]
        self.assertIn("egressd.stop", events)
        self.assertNotIn("Read-only file system", output_of(proxy))
        self.assertEqual(list(state.iterdir()), [], "the sidecar configuration keeps no state")


if __name__ == "__main__":
    unittest.main()
