#!/usr/bin/env python3
"""Differential runs: egressd's parsers against a second strict implementation on the same inputs.

  compare.py http_request|http_response|http_chunked --dump EGRESSD_PARSE_DUMP [--node NODE] DIR...
      egressd_parse_dump against Node's llhttp (llhttp_dump.js, strict)
  compare.py tls_client_hello --dump EGRESSD_PARSE_DUMP DIR...
      egressd's ClientHello parser against OpenSSL's server-name callback (openssl_sni.py)
  compare.py --self-test
      checks the classification itself on made-up readings

Every input the two read differently is put in a class and printed. The run fails only on the dangerous
classes: both accept but disagree on what the message is (method, target, where the head ends, a field that
frames or routes the message, the body's bytes or end), or both read a ClientHello but see different names.
egressd refusing what the reference takes is expected (it is stricter on purpose) and only counted."""
import argparse
import collections
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# Fields whose disagreement changes where a message ends or where it goes.
FRAMING_FIELDS = {"content-length", "transfer-encoding", "host", "connection", "upgrade", "expect"}
DANGEROUS = {"method_differs", "target_differs", "status_differs", "head_end_differs", "framing_field_differs",
             "body_differs", "sni_differs"}
MODES = {"http_request": "request", "http_response": "response", "http_chunked": "chunked",
         "tls_client_hello": "client_hello"}


def run_lines(command):
    out = subprocess.run(command, check=True, capture_output=True, timeout=600).stdout
    lines = {}
    for raw in out.decode().split("\n"):
        if not raw:
            continue
        line = json.loads(raw)
        lines[os.path.realpath(line["file"])] = line
    return lines


def field_map(headers):
    fields = collections.defaultdict(list)
    for name, value in headers:
        fields[name.lower()].append(value)
    return fields


def compare_bodies(ours, theirs):
    ours_body, their_body = ours.get("body") or {}, theirs.get("body") or {}
    if ours_body.get("framing") == "error":
        return "egressd_stricter" if their_body.get("ok") else None
    if not their_body.get("ok"):
        return "reference_stricter" if ours_body.get("ok") else None
    if not ours_body.get("ok"):
        return "egressd_stricter"
    if ours_body.get("end") != their_body.get("end") or ours_body.get("data") != their_body.get("data"):
        return "body_differs"
    return None


def classify_http(ours, theirs):
    """One class name, or None when the two read the input the same way."""
    ours_refused = ours["head"] == "error" or (ours.get("body") or {}).get("framing") == "error"
    if ours_refused and theirs["head"] == "error":
        return None
    if ours["head"] != "complete" or theirs["head"] != "complete":
        if ours["head"] == theirs["head"]:
            return None
        if ours["head"] == "complete":
            return "egressd_stricter" if ours_refused else "reference_stricter"
        if theirs["head"] == "complete":
            return "egressd_stricter"
        return "incomplete_vs_error"
    if "method" in ours and ours["method"] != theirs.get("method"):
        return "method_differs"
    if "target" in ours and ours["target"] != theirs.get("target"):
        return "target_differs"
    if "status" in ours and ours["status"] != theirs.get("status"):
        return "status_differs"
    if "head_size" in ours and ours["head_size"] != theirs.get("head_size"):
        return "head_end_differs"
    if "headers" in ours:
        mine, other = field_map(ours["headers"]), field_map(theirs.get("headers", []))
        for name in FRAMING_FIELDS:
            if mine.get(name, []) != other.get(name, []):
                return "framing_field_differs"
        if mine != other:
            return "field_differs"
        if ours.get("reason") != theirs.get("reason") or ours.get("version") != theirs.get("version"):
            return "status_line_differs"
    body = compare_bodies(ours, theirs)
    if body == "body_differs" and "status" in ours and empty_list_element(ours["headers"], "transfer-encoding") and \
            (ours.get("body") or {}).get("framing") == "chunked":
        # RFC 9110 5.6.1: a recipient ignores empty list elements, so a response's "chunked," is chunked, as
        # egressd reads it; llhttp reads the body to the close. egressd re-frames what it forwards, so the
        # client sees one framing either way.
        return "reference_keeps_empty_list_elements"
    return body


def empty_list_element(headers, name):
    values = [value for field, value in headers if field.lower() == name]
    return any(element.strip(" \t") == "" for value in values for element in value.split(","))


def normalised_name(name):
    if name is None:
        return None
    name = name.lower()
    return name[:-1] if name.endswith(".") else name


def classify_tls(ours, theirs):
    if ours["status"] == "complete":
        if not theirs["called"]:
            return "reference_stricter"
        if normalised_name(theirs["sni"]) != ours.get("sni"):
            return "sni_differs"
        return None
    if theirs["called"]:
        return "egressd_stricter" if ours["status"] != "incomplete" else "egressd_wants_more"
    return None


def report(classes, examples):
    dangerous = 0
    for name in sorted(classes):
        count = classes[name]
        marker = "DANGEROUS" if name in DANGEROUS else "reported"
        print(f"{name}: {count} ({marker})")
        if name in DANGEROUS:
            dangerous += count
        if name not in ("agree", "egressd_stricter"):
            for file, ours, theirs in examples[name][:10]:
                print(f"  {file}\n    egressd:   {json.dumps(ours)[:400]}\n    reference: {json.dumps(theirs)[:400]}")
    return dangerous


def compare(kind, ours_lines, their_lines):
    classes = collections.Counter()
    examples = collections.defaultdict(list)
    classify = classify_tls if kind == "tls_client_hello" else classify_http
    for file, ours in sorted(ours_lines.items()):
        theirs = their_lines.get(file)
        if theirs is None:
            classes["missing_from_reference"] += 1
            continue
        name = classify(ours, theirs) or "agree"
        classes[name] += 1
        examples[name].append((file, ours, theirs))
    return classes, examples


def self_test():
    head = {"head": "complete", "method": "POST", "target": "/", "version": "1.1", "head_size": 40,
            "headers": [["Content-Length", "3"]], "body": {"framing": "content_length", "ok": True, "data": "abc",
                                                           "end": 3}}
    same = json.loads(json.dumps(head))
    assert classify_http(head, same) is None
    smuggled = json.loads(json.dumps(head))
    smuggled["body"]["end"] = 0
    assert classify_http(head, smuggled) == "body_differs"
    other_length = json.loads(json.dumps(head))
    other_length["headers"] = [["Content-Length", "3"], ["Transfer-Encoding", "chunked"]]
    assert classify_http(head, other_length) == "framing_field_differs"
    assert classify_http({"head": "error"}, head) == "egressd_stricter"
    response = {"head": "complete", "status": 200, "reason": "OK", "version": "1.1", "head_size": 49,
                "headers": [["Transfer-Encoding", "chunked, "]], "body": {"framing": "chunked", "ok": True,
                                                                         "data": "", "end": None}}
    to_the_close = json.loads(json.dumps(response))
    to_the_close["body"] = {"ok": True, "data": "", "end": 0}
    assert classify_http(response, to_the_close) == "reference_keeps_empty_list_elements"
    response["headers"] = [["Transfer-Encoding", "chunked"]]
    to_the_close["headers"] = response["headers"]
    assert classify_http(response, to_the_close) == "body_differs"
    assert classify_tls({"status": "complete", "sni": "a.test"}, {"called": True, "sni": "A.Test."}) is None
    assert classify_tls({"status": "complete", "sni": "a.test"}, {"called": True, "sni": "b.test"}) == "sni_differs"
    assert classify_tls({"status": "malformed"}, {"called": True, "sni": "b.test"}) == "egressd_stricter"
    classes, _ = compare("http_request", {"f": head}, {"f": smuggled})
    assert report(classes, collections.defaultdict(list)) == 1
    print("self-test passed")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", nargs="?", choices=sorted(MODES))
    parser.add_argument("dirs", nargs="*")
    parser.add_argument("--dump", help="the egressd_parse_dump binary")
    parser.add_argument("--node", default="node")
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_intermixed_args()
    if args.self_test:
        return self_test()
    if not args.kind or not args.dump or not args.dirs:
        parser.error("kind, --dump and at least one directory are needed")
    dirs = [d for d in args.dirs if os.path.isdir(d)]
    ours = run_lines([args.dump, MODES[args.kind]] + dirs)
    if args.kind == "tls_client_hello":
        theirs = run_lines([sys.executable, os.path.join(HERE, "openssl_sni.py")] + dirs)
    else:
        theirs = run_lines([args.node, os.path.join(HERE, "llhttp_dump.js"), MODES[args.kind]] + dirs)
    classes, examples = compare(args.kind, ours, theirs)
    print(f"{args.kind}: {sum(classes.values())} inputs from {', '.join(dirs)}")
    dangerous = report(classes, examples)
    if dangerous:
        print(f"FAIL: {dangerous} inputs read differently in a way that matters")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
