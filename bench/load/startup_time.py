#!/usr/bin/env python3
"""Times a command for bench/load/run.sh: from just before exec to a readiness point.

  startup_time.py --port P [--timeout S] -- COMMAND...   until a TCP connect to 127.0.0.1:P succeeds,
                                                          then stops the command (SIGTERM, then SIGKILL)
  startup_time.py --exit [--timeout S] -- COMMAND...     until the command exits (it must exit 0)

Prints one line: "result metric=startup_ms value=<ms> rss_kib=<VmRSS when ready> ..." (--port) or
"result metric=exit_ms value=<ms> max_rss_kib=<peak RSS of the command> ..." (--exit). The command's output goes
to the files given by --stdout and --stderr (default /dev/null). The same definition serves every proxy: the
connect succeeds once the port is listening (the kernel completes the handshake before any accept()).
Bounded: the command is stopped after --timeout seconds (default 60) and the line then says timeout=1.
Only 127.0.0.1 is ever connected to; only the process started here is signalled, by its PID.
"""
import argparse
import os
import resource
import signal
import socket
import subprocess
import sys
import time


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def stop(proc):
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--port", type=int, help="ready when 127.0.0.1:PORT accepts a connection")
    mode.add_argument("--exit", action="store_true", help="ready when the command exits 0")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--stdout", default=os.devnull)
    parser.add_argument("--stderr", default=os.devnull)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()
    if args.timeout <= 0 or args.timeout > 600:
        sys.exit("--timeout: 0 < S <= 600")

    with open(args.stdout, "ab") as out, open(args.stderr, "ab") as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(args.command, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        deadline = t0 + args.timeout
        try:
            if args.exit:
                try:
                    code = proc.wait(timeout=args.timeout)
                except subprocess.TimeoutExpired:
                    stop(proc)
                    print(f"result metric=exit_ms value=0 timeout=1 pid={proc.pid}", flush=True)
                    return 1
                ms = (time.monotonic() - t0) * 1000
                peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
                print(f"result metric=exit_ms value={ms:.1f} exit={code} max_rss_kib={peak} timeout=0 pid={proc.pid}",
                      flush=True)
                return 0 if code == 0 else 1
            while True:
                now = time.monotonic()
                if now > deadline or proc.poll() is not None:
                    exited = proc.poll() is not None
                    stop(proc)
                    print(f"result metric=startup_ms value=0 timeout={0 if exited else 1} exited={int(exited)} "
                          f"pid={proc.pid}", flush=True)
                    return 1
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    try:
                        s.connect(("127.0.0.1", args.port))
                    except OSError:
                        time.sleep(0.001)
                        continue
                ms = (time.monotonic() - t0) * 1000
                rss = rss_kib(proc.pid)
                print(f"result metric=startup_ms value={ms:.1f} rss_kib={rss} timeout=0 pid={proc.pid}", flush=True)
                return 0
        finally:
            stop(proc)


if __name__ == "__main__":
    sys.exit(main())
