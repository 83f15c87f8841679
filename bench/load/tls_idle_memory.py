#!/usr/bin/env python3
"""Memory per idle CONNECT tunnel, plain listener against TLS listener (mutual TLS), in one egressd.

Makes a development PKI with certs/egressd-certs in a temporary directory, starts egressd (one worker) with a
plain and a TLS listener on 127.0.0.1, an echo server on 127.0.0.1, then opens N tunnels through each listener
in turn, passes one round trip through each, and reads egressd's RSS before and after. Loopback only; bounded
by N and a 120 s deadline.

    bench/load/tls_idle_memory.py [--egressd build/release/proxy/egressd] [--tunnels 500]
"""
import argparse
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def echo_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4096)

    def serve(conn):
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                conn.sendall(data)

    def accept():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return srv


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--egressd", default=os.path.join(ROOT, "build", "release", "proxy", "egressd"))
    ap.add_argument("--tunnels", type=int, default=500)
    args = ap.parse_args()
    deadline = time.monotonic() + 120
    work = tempfile.mkdtemp(prefix="egressd-tls-idle-")
    proc = None
    echo = echo_server()
    echo_port = echo.getsockname()[1]
    try:
        certs = os.path.join(ROOT, "certs", "egressd-certs")
        pki = os.path.join(work, "pki")
        for step in (["ca", pki], ["server", pki, "proxy"], ["client", pki, "bench", "--uri", "spiffe://bench/w"]):
            subprocess.run([certs] + step, check=True, capture_output=True, timeout=60)
        with open(os.path.join(work, "policy.yaml"), "w") as f:
            f.write("version: 1\ntls: off\ngroups:\n  echo:\n    rules:\n      - ports: [%d]\n"
                    "        destinations: [127.0.0.1/32]\nclients:\n  local:\n    sources: [127.0.0.1/32]\n"
                    "    groups: [echo]\n  bench:\n    identities: [spiffe://bench/w]\n    groups: [echo]\n" % echo_port)
        with open(os.path.join(work, "egressd.yaml"), "w") as f:
            f.write("version: 1\npolicy: policy.yaml\nworkers: 1\nlisteners:\n  - 127.0.0.1:0\n"
                    "  - address: 127.0.0.1:0\n    tls: {certificate: pki/proxy.pem, key: pki/proxy.key, "
                    "client_ca: pki/ca.pem}\nlimits: {max_connections_per_client: 100000}\n"
                    "logging: {stdout: true}\n")
        proc = subprocess.Popen([args.egressd, "run", "--config", os.path.join(work, "egressd.yaml")],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        ports = {}
        while len(ports) < 2 and time.monotonic() < deadline:
            event = json.loads(proc.stdout.readline())
            if event.get("event") == "egressd.listening":
                ports[event["tls"]] = int(event["address"].rpartition(":")[2])
        # Events keep coming; nobody must block egressd's stdout.
        threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
        tls_context = ssl.create_default_context(cafile=os.path.join(pki, "ca.pem"))
        tls_context.load_cert_chain(os.path.join(pki, "bench.pem"), os.path.join(pki, "bench.key"))
        results = {}
        held = []
        for kind, port in (("plain", ports["off"]), ("tls", ports["client_certificate_required"])):
            time.sleep(0.5)
            before = rss_kib(proc.pid)
            for i in range(args.tunnels):
                if time.monotonic() > deadline:
                    raise RuntimeError("out of time after %d %s tunnels" % (i, kind))
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                if kind == "tls":
                    s = tls_context.wrap_socket(s, server_hostname="localhost")
                s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (echo_port, echo_port))
                head = s.recv(4096)
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError("tunnel %d refused: %r" % (i, head))
                s.sendall(b"x" * 100)
                got = b""
                while len(got) < 100:
                    got += s.recv(100 - len(got))
                held.append(s)
            time.sleep(1)
            results[kind] = (before, rss_kib(proc.pid))
        for kind, (before, after) in results.items():
            print("%-5s %d idle tunnels: RSS %d -> %d KiB, %.1f KiB per tunnel" %
                  (kind, args.tunnels, before, after, (after - before) / args.tunnels))
        plain = (results["plain"][1] - results["plain"][0]) / args.tunnels
        tls = (results["tls"][1] - results["tls"][0]) / args.tunnels
        print("tls/plain: %.1f" % (tls / plain if plain > 0 else float("nan")))
        for s in held:
            s.close()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        echo.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
