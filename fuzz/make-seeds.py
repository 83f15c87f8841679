#!/usr/bin/env python3
"""Writes the seed corpora of the wire-parser fuzz targets (fuzz/corpus/<name>/): cases taken from the unit
tests, the e2e smuggling, SNI, literal and PROXY-protocol catalogues, and real ClientHellos and ServerHellos
made by this machine's OpenSSL (through Python's ssl). Run it again after adding a case; files are named by
what they hold, so a re-run rewrites the same files (the ClientHellos with new randoms and key shares)."""
import os
import re
import ssl
import struct
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    folder = os.path.join(ROOT, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:80]
    with open(os.path.join(folder, safe), "wb") as f:
        f.write(data)


def head(lines, body=b""):
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


REQUESTS = {
    "get-absolute": head(["GET http://allowed.test/hello?x=1 HTTP/1.1", "Host: allowed.test", "User-Agent: curl"]),
    "get-port": head(["GET http://allowed.test:8080/ HTTP/1.1", "Host: other.test"]),
    "get-http10": head(["GET http://allowed.test/ HTTP/1.0"]),
    "get-origin": head(["GET /path HTTP/1.1", "Host: allowed.test"]),
    "connect": head(["CONNECT allowed.test:443 HTTP/1.1", "Host: allowed.test:443"]),
    "connect-v6": head(["CONNECT [2001:db8::1]:443 HTTP/1.1", "Host: [2001:db8::1]:443"]),
    "post-cl": head(["POST http://allowed.test/up HTTP/1.1", "Host: allowed.test", "Content-Length: 5"], b"hello"),
    "post-chunked": head(["POST http://allowed.test/up HTTP/1.1", "Transfer-Encoding: chunked"],
                         b"5\r\nhello\r\n0\r\n\r\n"),
    "cl-te": head(["POST http://allowed.test/ HTTP/1.1", "Content-Length: 5", "Transfer-Encoding: chunked"],
                  b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"),
    "cl-twice-differ": head(["POST http://allowed.test/ HTTP/1.1", "Content-Length: 5", "Content-Length: 6"]),
    "cl-twice-same": head(["POST http://allowed.test/ HTTP/1.1", "Content-Length: 5", "Content-Length: 5"]),
    "cl-list": head(["POST http://allowed.test/ HTTP/1.1", "Content-Length: 5, 6"]),
    "cl-plus": head(["POST http://allowed.test/ HTTP/1.1", "Content-Length: +5"]),
    "te-chunked-identity": head(["POST http://allowed.test/ HTTP/1.1", "Transfer-Encoding: chunked, identity"]),
    "te-xchunked": head(["POST http://allowed.test/ HTTP/1.1", "Transfer-Encoding: xchunked"]),
    "te-twice": head(["POST http://allowed.test/ HTTP/1.1", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked"]),
    "obs-fold": head(["GET http://allowed.test/ HTTP/1.1", "X-Folded: a", " b", "Content-Length: 0"]),
    "te-folded": head(["POST http://allowed.test/ HTTP/1.1", "Transfer-Encoding:", " chunked"]),
    "space-before-colon": head(["POST http://allowed.test/ HTTP/1.1", "Transfer-Encoding : chunked"]),
    "nul-in-value": head(["GET http://allowed.test/ HTTP/1.1", "X-Bad: a\x00b"]),
    "bare-lf": b"GET http://allowed.test/ HTTP/1.1\nHost: a\n\n",
    "h2-preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "connection-strips": head(["GET http://allowed.test/ HTTP/1.1", "Connection: keep-alive, X-Secret, content-length, host",
                               "X-Secret: 1", "Content-Length: 0", "Proxy-Authorization: Basic dTpw",
                               "Proxy-Connection: keep-alive", "TE: trailers", "Upgrade: websocket", "Via: 1.0 lb"]),
    "host-mismatch": head(["GET http://allowed.test/ HTTP/1.1", "Host: evil.test", "Host: second.test"]),
    "userinfo": head(["GET http://user:pw@allowed.test/ HTTP/1.1"]),
    "https-scheme": head(["GET https://allowed.test/ HTTP/1.1"]),
    "version-11-lower": head(["GET http://allowed.test/ http/1.1"]),
    "version-12": head(["GET http://allowed.test/ HTTP/1.2"]),
    "tab-in-line": b"GET\thttp://allowed.test/ HTTP/1.1\r\n\r\n",
    "double-space": b"GET  http://allowed.test/ HTTP/1.1\r\n\r\n",
    "empty-value": head(["GET http://allowed.test/ HTTP/1.1", "X-Empty:", "X-Ws:  \t "]),
    "incomplete": b"GET http://allowed.test/ HTTP/1.1\r\nHost: a\r\n",
}
for name, data in REQUESTS.items():
    write("http_request_head", name, data)

RESPONSES = {
    "200-cl": head(["HTTP/1.1 200 OK", "Content-Length: 5", "Content-Type: text/plain"], b"hello"),
    "200-chunked": head(["HTTP/1.1 200 OK", "Transfer-Encoding: chunked"], b"5\r\nhello\r\n0\r\n\r\n"),
    "200-gzip-chunked": head(["HTTP/1.1 200 OK", "Transfer-Encoding: gzip, chunked"]),
    "200-chunked-gzip": head(["HTTP/1.1 200 OK", "Transfer-Encoding: chunked, gzip"]),
    "200-close": head(["HTTP/1.0 200 OK", "Server: x"], b"until close"),
    "204": head(["HTTP/1.1 204 No Content", "Content-Length: 5"]),
    "304": head(["HTTP/1.1 304 Not Modified", "Content-Length: 1234", "ETag: \"x\""]),
    "100": head(["HTTP/1.1 100 Continue"]),
    "101": head(["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade"]),
    "cl-te": head(["HTTP/1.1 200 OK", "Content-Length: 3", "Transfer-Encoding: chunked"]),
    "empty-reason": b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n",
    "no-reason": b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
    "status-999": head(["HTTP/1.1 999 Odd", "Content-Length: 0"]),
    "connection-close": head(["HTTP/1.1 200 OK", "Connection: close, X-Drop", "X-Drop: 1", "Keep-Alive: timeout=5"]),
    "via": head(["HTTP/1.1 200 OK", "Via: 1.1 cache", "Content-Length: 0"]),
    "bare-lf": b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
    "obs-fold": head(["HTTP/1.1 200 OK", "X-A: a", "\tb"]),
    "cl-twice-differ": head(["HTTP/1.1 200 OK", "Content-Length: 1", "Content-Length: 2"]),
}
# The first byte picks the request method: 0 GET, 1 HEAD, 2 CONNECT.
for name, data in RESPONSES.items():
    write("http_response_head", "get-" + name, b"\x00" + data)
write("http_response_head", "head-200-cl", b"\x01" + RESPONSES["200-cl"])
write("http_response_head", "connect-200", b"\x02" + head(["HTTP/1.1 200 Connection established"]))

CHUNKED = {
    "simple": b"5\r\nhello\r\n0\r\n\r\n",
    "two-chunks": b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    "hex-upper": b"A\r\n0123456789\r\n0\r\n\r\n",
    "leading-zeros": b"0005\r\nhello\r\n0\r\n\r\n",
    "extension": b"5;name=value;x=\"q\"\r\nhello\r\n0\r\n\r\n",
    "ws-before-ext": b"5 ;ext\r\nhello\r\n0\r\n\r\n",
    "trailers": b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n",
    "then-pipelined": b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    "negative": b"-1\r\nhello\r\n0\r\n\r\n",
    "0x-prefix": b"0x5\r\nhello\r\n0\r\n\r\n",
    "overflow": b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
    "bare-lf": b"5\nhello\n0\n\n",
    "missing-crlf": b"5\r\nhelloX\r\n0\r\n\r\n",
    "short": b"5\r\nhel",
    "big-size": b"10000\r\n" + b"a" * 100,
}
# First byte: read size - 1; second byte: data-move size - 1.
for name, data in CHUNKED.items():
    write("http_chunked", name, b"\x00\x00" + data)
    write("http_chunked", name + "-reads-7-3", b"\x06\x02" + data)

TARGETS = [
    "http://allowed.test/", "http://allowed.test", "http://allowed.test:8080/p?q=1", "http://ALLOWED.Test./x",
    "http://127.0.0.1/", "http://127.1/", "http://0x7f000001/", "http://2130706433/", "http://0177.0.0.1/",
    "http://[::1]/", "http://[::ffff:127.0.0.1]:81/", "http://[2001:DB8:0:0:0:0:0:1]/", "http://[fe80::1%25eth0]/",
    "http://user@allowed.test/", "http://allowed.test:0/", "http://allowed.test:65536/", "http://allowed.test:0081/",
    "http://allowed.test:/", "https://allowed.test/", "ftp://allowed.test/", "HTTP://allowed.test/",
    "http://allowed.test#frag", "http://allowed.test\\@evil.test/", "http://allowed.test%2eevil.test/",
    "http://xn--bcher-kva.example/", "http://_srv.allowed.test/", "http://a..b/", "http://-a.test/",
    "allowed.test:443", "127.0.0.1:443", "[::1]:443", "::1:443", "allowed.test", "allowed.test:0",
    "allowed.test:+443", "allowed.test:0443", "[2001:db8::1]:65535", "1.2.3:80", "1.2.3.4.5:80",
    "[::ffff:10.0.0.1]:443", "localhost:22", "allowed.test.:443", "[]:80", "[::1]x:80",
]
for text in TARGETS:
    write("http_target", text, text.encode())


def tls_pair(server_name=None, alpn=None, maximum=None):
    """A real ClientHello from OpenSSL, and the server's first flight answering it."""
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    if alpn:
        client.set_alpn_protocols(alpn)
    if maximum:
        client.maximum_version = maximum
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client.wrap_bio(incoming, outgoing, server_hostname=server_name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def record(content_type, payload, version=b"\x03\x03"):
    return bytes([content_type]) + version + struct.pack(">H", len(payload)) + payload


def split_records(hello, size):
    message = b""
    rest = hello
    while len(rest) >= 5:
        length = struct.unpack(">H", rest[3:5])[0]
        message += rest[5:5 + length]
        rest = rest[5 + length:]
    return b"".join(record(22, message[i:i + size], b"\x03\x01") for i in range(0, len(message), size))


hellos = {
    "tls13-sni": tls_pair("allowed.test", maximum=ssl.TLSVersion.TLSv1_3),
    "tls12-sni": tls_pair("allowed.test", maximum=ssl.TLSVersion.TLSv1_2),
    "alpn": tls_pair("allowed.test", alpn=["h2", "http/1.1"]),
    "no-sni": tls_pair(None),
    "sni-trailing-dot": tls_pair("Allowed.Test."),
    "sni-underscore": tls_pair("_acme.allowed.test"),
    "sni-long": tls_pair(".".join(["a" * 63] * 3)),
}
# The first byte of a tls_client_hello input picks a record size for the re-framing check.
for name, hello in hellos.items():
    write("tls_client_hello", name, b"\x00" + hello)
write("tls_client_hello", "split-into-100-byte-records", b"\x03" + split_records(hellos["tls13-sni"], 100))
write("tls_client_hello", "split-into-7-byte-records", b"\x00" + split_records(hellos["tls13-sni"], 7))
write("tls_client_hello", "ccs-then-hello", b"\x00" + record(20, b"\x01") + hellos["tls13-sni"])
write("tls_client_hello", "not-tls-http", b"\x00GET / HTTP/1.1\r\n\r\n")
write("tls_client_hello", "sslv2-style", b"\x00\x80\x2e\x01\x00\x02")
write("tls_client_hello", "alert", b"\x00" + record(21, b"\x02\x28"))
write("tls_client_hello", "hello-then-appdata", b"\x00" + hellos["tls12-sni"] + record(23, b"early"))

HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")


def server_hello(random, extensions):
    body = b"\x03\x03" + random + b"\x20" + b"\x11" * 32 + b"\x13\x01" + b"\x00"
    body += struct.pack(">H", len(extensions)) + extensions
    return b"\x02" + struct.pack(">I", len(body))[1:] + body


supported_versions = b"\x00\x2b\x00\x02\x03\x04"
hrr = server_hello(HRR_RANDOM, supported_versions + b"\x00\x33\x00\x02\x00\x17")
plain = server_hello(b"\x42" * 32, supported_versions + b"\x00\x33\x00\x24\x00\x1d\x00\x20" + b"\x07" * 32)
ccs = record(20, b"\x01")
write("tls_server_hello", "hrr", record(22, hrr))
write("tls_server_hello", "hrr-then-ccs", record(22, hrr) + ccs)
write("tls_server_hello", "ccs-then-hrr", ccs + record(22, hrr))
write("tls_server_hello", "hrr-in-two-records", record(22, hrr[:20]) + record(22, hrr[20:]))
write("tls_server_hello", "hrr-sharing-record", record(22, hrr + b"\x0b\x00\x00\x00"))
write("tls_server_hello", "server-hello", record(22, plain) + ccs + record(23, b"x" * 40))
write("tls_server_hello", "alert", record(21, b"\x02\x28"))
write("tls_server_hello", "http", b"HTTP/1.1 400 Bad Request\r\n\r\n")

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(command, family, block):
    return SIG + bytes([0x20 | command, family]) + struct.pack(">H", len(block)) + block


def tlv(kind, value):
    return bytes([kind]) + struct.pack(">H", len(value)) + value


def inet4(src, dst, sport, dport):
    return bytes(map(int, src.split("."))) + bytes(map(int, dst.split("."))) + struct.pack(">HH", sport, dport)


def inet6(src, dst, sport, dport):
    import ipaddress
    return ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed + struct.pack(">HH", sport, dport)


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


block = inet4("203.0.113.7", "127.0.0.1", 40000, 80)
with_zero = v2(1, 0x11, block + tlv(0x03, b"\x00" * 4))
good_crc = with_zero[:-4] + struct.pack(">I", crc32c(with_zero))
PROXY = {
    "v1-tcp4": b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\r\nGET / HTTP/1.1\r\n\r\n",
    "v1-tcp6": b"PROXY TCP6 2001:db8::7 ::1 40000 443\r\n",
    "v1-unknown": b"PROXY UNKNOWN\r\n",
    "v1-unknown-rest": b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
    "v1-leading-zero-port": b"PROXY TCP4 203.0.113.7 127.0.0.1 040000 80\r\n",
    "v1-noncanonical-v4": b"PROXY TCP4 203.0.113.07 127.0.0.1 40000 80\r\n",
    "v1-v6-in-tcp4": b"PROXY TCP4 ::1 ::1 1 2\r\n",
    "v1-double-space": b"PROXY TCP4  203.0.113.7 127.0.0.1 40000 80\r\n",
    "v1-bare-lf": b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\n",
    "v1-mapped": b"PROXY TCP6 ::ffff:203.0.113.7 ::1 40000 80\r\n",
    "v2-tcp4": v2(1, 0x11, block),
    "v2-tcp6": v2(1, 0x21, inet6("2001:db8::7", "::1", 40000, 443)),
    "v2-local": v2(0, 0x00, b""),
    "v2-local-with-block": v2(0, 0x11, block),
    "v2-unspec": v2(1, 0x00, b""),
    "v2-udp4": v2(1, 0x12, block),
    "v2-unix": v2(1, 0x31, b"\x00" * 216),
    "v2-tlvs": v2(1, 0x11, block + tlv(0x02, b"allowed.test") + tlv(0x05, b"e2e-unique-id") + tlv(0x04, b"")),
    "v2-crc32c": good_crc,
    "v2-crc32c-wrong": with_zero,
    "v2-tlv-overrun": v2(1, 0x11, block + b"\x02\x00\x09abc"),
    "v2-version-1": SIG + b"\x11\x11\x00\x0c" + block,
    "not-proxy": b"GET / HTTP/1.1\r\n\r\n",
    "tls-first": b"\x16\x03\x01\x00\x05hello",
}
for name, data in PROXY.items():
    write("proxy_protocol", name, data)
print("seeds written under", os.path.join(ROOT, "corpus"), file=sys.stderr)
