#!/usr/bin/env python3
"""openssl_sni.py DIR...: what OpenSSL (through Python's ssl, a TLS server on memory BIOs) reads as the SNI of
each tls_client_hello corpus file (its first byte is the fuzz target's record-size choice and is skipped), one
JSON line each: {"file", "called": the server-name callback ran, "sni": the name it was given}. The handshake
itself may fail later (no shared cipher, bad key share): only what the name callback saw matters here."""
import json
import os
import ssl
import subprocess
import sys
import tempfile


def server_context(folder):
    key, cert = os.path.join(folder, "key.pem"), os.path.join(folder, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-subj", "/CN=differential.test", "-days", "1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=60)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    # Old protocol versions too: a ClientHello OpenSSL would answer at all is one whose SNI matters.
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    return context


def seen_by_openssl(context, data):
    seen = {"called": False, "sni": None}

    def on_name(_ssl_object, name, _context):
        seen["called"] = True
        seen["sni"] = name
        return None

    context.sni_callback = on_name
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = context.wrap_bio(incoming, outgoing, server_side=True)
    incoming.write(data)
    try:
        server.do_handshake()
    except (ssl.SSLError, UnicodeError, ValueError) as e:
        seen["error"] = type(e).__name__ + ": " + str(e)[:120]
    return seen


def main(roots):
    with tempfile.TemporaryDirectory() as folder:
        context = server_context(folder)
        for root in roots:
            paths = []
            for dirpath, _dirs, names in os.walk(root):
                paths.extend(os.path.join(dirpath, n) for n in names)
            for path in sorted(paths):
                with open(path, "rb") as f:
                    data = f.read()[1:]
                line = {"file": path}
                line.update(seen_by_openssl(context, data))
                print(json.dumps(line))


if __name__ == "__main__":
    main(sys.argv[1:])
