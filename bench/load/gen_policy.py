#!/usr/bin/env python3
"""Large generated policies for bench/load/run.sh (the start-up and policy-load rows).

  gen_policy.py names N PORT POLICY.yaml SQUID_LIST
      a policy whose one rule lists N domain names (port PORT) for the client 127.0.0.1/32, and the same N names,
      one a line, for Squid's  acl NAME dstdomain "SQUID_LIST"
  gen_policy.py million PER_RULE POLICY.yaml
      the 1,000,000-rule policy of bench/policy_bench.cpp in one file: 10,000 clients, each with its own group of
      100 domain patterns (every tenth a wildcard) and its neighbour's; PER_RULE 1 writes one destination per
      rule (a million rules), 100 writes the same patterns a hundred per rule (10,000 rules)

Names are under example.com and never resolved: nothing here touches the network.
"""
import sys

CLIENTS = 10_000
RULES_PER_GROUP = 100


def rule_domain(group, rule):
    # As bench/policy_bench.cpp's rule_domain.
    base = f"svc{group}.example.com"
    if rule % 10 == 9:
        return f"*.r{rule}.{base}"
    return f"h{rule}.{base}"


def names(n, port, policy_path, squid_path):
    listed = [f"h{i % 1000}.svc{i // 1000}.example.com" for i in range(n)]
    with open(policy_path, "w") as out:
        out.write("version: 1\ngroups:\n  names:\n    description: A long allow-list\n    rules:\n")
        out.write(f"      - ports: [{port}]\n        destinations:\n")
        out.writelines(f"          - {name}\n" for name in listed)
        out.write("clients:\n  bench:\n    sources: [127.0.0.1/32]\n    groups: [names]\n")
    with open(squid_path, "w") as out:
        out.writelines(f"{name}\n" for name in listed)


def million(per_rule, policy_path):
    if per_rule not in (1, 100):
        sys.exit("PER_RULE is 1 or 100")
    with open(policy_path, "w") as out:
        out.write("version: 1\ngroups:\n")
        for g in range(CLIENTS):
            parts = [f"  g{g}:\n    rules:\n"]
            for r in range(0, RULES_PER_GROUP, per_rule):
                ports = "443" if r % 2 == 0 else "80, 443"
                listed = ", ".join(f'"{rule_domain(g, d)}"' for d in range(r, r + per_rule))
                parts.append(f"      - ports: [{ports}]\n        destinations: [{listed}]\n")
            out.write("".join(parts))
        out.write("clients:\n")
        for c in range(CLIENTS):
            out.write(f"  c{c}:\n    sources: [10.{c // 256}.{c % 256}.0/24]\n    groups: [g{c}, g{(c + 1) % CLIENTS}]\n")


def main():
    if len(sys.argv) == 6 and sys.argv[1] == "names":
        names(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
    elif len(sys.argv) == 4 and sys.argv[1] == "million":
        million(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
