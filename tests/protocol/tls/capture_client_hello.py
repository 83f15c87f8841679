#!/usr/bin/env python3
"""Captures a real client's ClientHello as hex, for captured_hellos.hpp. Loopback only, no server reply.

    capture_client_hello.py openssl s_client -connect 127.0.0.1:PORT -servername allowed.test -tls1_3
    capture_client_hello.py curl -sk --connect-to allowed.test:PORT:127.0.0.1:PORT https://allowed.test:PORT/

PORT in the arguments becomes the listener's port. Prints the client's first bytes, up to the end of the
record that completes its ClientHello handshake message, as one line of hex. The client then fails its
handshake (the listener never answers), which is expected.
"""
import socket
import subprocess
import sys


def hello_end(buf):
    """Offset just past the record completing the handshake message, or None while it is incomplete."""
    message = b""
    pos = 0
    while pos + 5 <= len(buf):
        size = int.from_bytes(buf[pos + 3:pos + 5], "big")
        if pos + 5 + size > len(buf):
            return None
        message += buf[pos + 5:pos + 5 + size]
        pos += 5 + size
        if len(message) >= 4 and len(message) >= 4 + int.from_bytes(message[1:4], "big"):
            return pos
    return None


def main():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = str(listener.getsockname()[1])
    client = subprocess.Popen([a.replace("PORT", port) for a in sys.argv[1:]], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    listener.settimeout(5)
    conn, _ = listener.accept()
    conn.settimeout(5)
    buf = b""
    try:
        while (end := hello_end(buf)) is None:
            chunk = conn.recv(65536)
            if not chunk:
                break
            buf += chunk
        else:
            buf = buf[:end]
    finally:
        conn.close()
        listener.close()
        client.wait(timeout=10)
    print(buf.hex())


if __name__ == "__main__":
    main()
