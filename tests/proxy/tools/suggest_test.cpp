#include "proxy/tools/suggest.hpp"

#include "config/policy_loader.hpp"
#include "config/rfc3339.hpp"
#include "policy/connection.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace egressd::proxy::tools {
namespace {

namespace pol = egressd::policy;

// One decision event in the egressd format, as the proxy writes it.
struct event {
    std::string kind = "egress.would_deny";
    std::string client = "web";
    std::string source = "10.30.1.9";
    std::string host;
    int port = 443;
    std::string reason = "no_matching_rule";
    std::string time = "2026-11-20T10:00:00.000Z";
    std::string address;
    std::string identity;
    std::string request_id;  // empty: a new one for every line, as for separate requests

    std::string line() const
    {
        static int requests = 0;
        std::string id = request_id.empty() ? "r" + std::to_string(++requests) : request_id;
        std::string src = source.find(':') != std::string::npos ? "[" + source + "]:40000" : source + ":40000";
        std::string j = "{\"time\":\"" + time + "\",\"event\":\"" + kind + "\",\"request_id\":\"" + id + "\"," +
                        "\"client\":" + (client.empty() ? std::string("null") : "\"" + client + "\"") +
                        ",\"source\":\"" + src + "\",\"method\":\"CONNECT\",\"host\":\"" + host +
                        "\",\"port\":" + std::to_string(port) + ",\"address\":" +
                        (address.empty() ? std::string("null") : "\"" + address + "\"") + ",\"reason\":\"" + reason +
                        "\",\"mode\":\"report\",\"instance\":\"test-host\"";
        if (!identity.empty()) {
            j += ",\"identity\":\"" + identity + "\",\"identity_source\":\"proxy_auth\"";
        }
        return j + "}";
    }
};

event at(std::string host, int port = 443)
{
    event e;
    e.host = std::move(host);
    e.port = port;
    return e;
}

struct run_result {
    int code = -1;
    std::string out;
    std::string err;
};

class suggest_test : public ::testing::Test {
protected:
    std::string write_events(const std::vector<event>& events, const std::string& name = "events.log")
    {
        std::string text;
        for (const auto& e : events) {
            text += e.line() + "\n";
        }
        return dir_.write(name, text).string();
    }

    std::string write_file(const std::string& name, const std::string& text) { return dir_.write(name, text).string(); }

    run_result suggest(std::vector<std::string> args)
    {
        std::ostringstream out;
        std::ostringstream err;
        run_result r;
        r.code = policy_suggest(args, out, err);
        r.out = out.str();
        r.err = err.str();
        return r;
    }

    // The suggestion for these events, which must be a valid policy without warnings.
    std::shared_ptr<const pol::policy> learn(const std::vector<event>& events, std::vector<std::string> extra = {},
                                             std::string* text = nullptr)
    {
        std::vector<std::string> args{"--events", write_events(events)};
        args.insert(args.end(), extra.begin(), extra.end());
        auto r = suggest(args);
        EXPECT_EQ(r.code, 0) << r.err;
        if (text != nullptr) {
            *text = r.out;
        }
        auto loaded = config::load_policy_texts({{"learned.yaml", r.out}});
        for (const auto& e : loaded.errors) {
            ADD_FAILURE() << e.format("error") << "\n" << r.out;
        }
        for (const auto& w : loaded.warnings) {
            ADD_FAILURE() << w.format("warning") << "\n" << r.out;
        }
        return loaded.snapshot;
    }

    test_support::temp_dir dir_;
};

pol::time_point now() { return std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()); }

// Decides what the event records as `policy explain` would: the client matched by source and identity, the name
// phase, and the recorded address (if any) in the address phase.
pol::decision decide(const pol::policy& p, const event& e)
{
    auto source = pol::address::parse(e.source);
    std::optional<std::string> identity;
    if (!e.identity.empty()) {
        identity = e.identity;
    }
    auto client = p.match_client(pol::client_facts{source, identity});
    auto target = pol::host::parse(e.host);
    EXPECT_TRUE(target.value) << e.host;
    auto port = static_cast<std::uint16_t>(e.port);
    auto d = p.decide_name(client, *target.value, port, now());
    if (!d.allowed() || e.address.empty() || target.value->is_address()) {
        return d;
    }
    std::vector<pol::address> resolved{*pol::address::parse(e.address)};
    auto vetting = pol::vet_addresses(p, client, *target.value, port, resolved, now());
    return vetting.decisions.front();
}

void expect_allowed(const pol::policy& p, const event& e)
{
    auto d = decide(p, e);
    EXPECT_TRUE(d.allowed()) << e.host << ":" << e.port << " " << pol::to_string(d.why);
    ASSERT_TRUE(d.client);
    EXPECT_EQ(p.client_name(*d.client), e.client);
}

pol::reason reason_for(const pol::policy& p, const event& e) { return decide(p, e).why; }

bool lists_destination(const std::string& text, const std::string& destination)
{
    return text.find("- \"" + destination + "\"") != std::string::npos;
}

TEST_F(suggest_test, exact_names_with_their_ports_grouped_into_rules)
{
    auto api = at("api.example.com", 443);
    api.address = "93.184.216.34";
    auto api80 = at("api.example.com", 80);
    auto files = at("files.example.org", 443);
    files.time = "2026-11-21T08:30:00.000Z";
    std::string text;
    auto p = learn({api, api, api80, files, files}, {}, &text);
    ASSERT_TRUE(p);
    for (const auto& e : {api, api80, files}) {
        expect_allowed(*p, e);
    }
    EXPECT_EQ(reason_for(*p, at("api.example.com", 8443)), pol::reason::port_not_allowed);
    EXPECT_EQ(reason_for(*p, at("files.example.org", 80)), pol::reason::port_not_allowed);
    EXPECT_EQ(reason_for(*p, at("www.example.com", 443)), pol::reason::no_matching_rule);
    EXPECT_EQ(reason_for(*p, at("example.com", 443)), pol::reason::no_matching_rule);
    // One rule per port set; each destination with its hits and first and last sighting.
    EXPECT_NE(text.find("  learned-web:\n"), std::string::npos) << text;
    EXPECT_NE(text.find("ports: [80, 443]\n        destinations:\n          - \"api.example.com\"  # 3 hits, first "
                        "2026-11-20T10:00:00Z, last 2026-11-20T10:00:00Z"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("ports: [443]\n        destinations:\n          - \"files.example.org\"  # 2 hits, first "
                        "2026-11-21T08:30:00Z, last 2026-11-21T08:30:00Z"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("version: 1\nmode: enforce\n"), std::string::npos) << text;
}

TEST_F(suggest_test, hits_count_requests_not_the_events_of_their_phases)
{
    // A CONNECT in report mode logs its name phase and its tunnel phase under one request id.
    auto name_phase = at("api.example.com");
    name_phase.request_id = "c473472b01000004";
    auto tunnel_phase = name_phase;
    tunnel_phase.time = "2026-11-20T10:00:01.000Z";
    auto next_request = at("api.example.com");
    next_request.time = "2026-11-20T11:00:00.000Z";
    std::string text;
    auto p = learn({name_phase, tunnel_phase, next_request}, {}, &text);
    ASSERT_TRUE(p);
    EXPECT_NE(text.find("\"api.example.com\"  # 2 hits, first 2026-11-20T10:00:00Z, last 2026-11-20T11:00:00Z"),
              std::string::npos)
        << text;
}

TEST_F(suggest_test, four_siblings_stay_exact_and_five_collapse_to_a_wildcard)
{
    std::vector<event> four;
    for (std::string label : {"a", "b", "c", "d"}) {
        four.push_back(at(label + ".cdn.example.net"));
    }
    std::string text;
    auto p = learn(four, {}, &text);
    ASSERT_TRUE(p);
    EXPECT_TRUE(lists_destination(text, "a.cdn.example.net")) << text;
    EXPECT_EQ(text.find("*.cdn.example.net"), std::string::npos) << text;
    EXPECT_EQ(reason_for(*p, at("e.cdn.example.net")), pol::reason::no_matching_rule);

    auto five = four;
    five.push_back(at("e.cdn.example.net"));
    five.push_back(at("deep.x.cdn.example.net"));  // below the collapsed parent: folded into its pattern
    p = learn(five, {}, &text);
    ASSERT_TRUE(p);
    EXPECT_TRUE(lists_destination(text, "*.cdn.example.net")) << text;
    EXPECT_FALSE(lists_destination(text, "a.cdn.example.net")) << text;
    EXPECT_FALSE(lists_destination(text, "deep.x.cdn.example.net")) << text;
    EXPECT_NE(text.find("6 hits"), std::string::npos) << text;
    EXPECT_NE(text.find("6 names seen: a.cdn.example.net b.cdn.example.net"), std::string::npos) << text;
    for (const auto& e : five) {
        expect_allowed(*p, e);
    }
    EXPECT_TRUE(decide(*p, at("zzz.cdn.example.net")).allowed());
    // The parent itself was not seen: "*." leaves it out.
    EXPECT_EQ(reason_for(*p, at("cdn.example.net")), pol::reason::no_matching_rule);

    // Seen too: ".parent" takes it in.
    five.push_back(at("cdn.example.net"));
    p = learn(five, {}, &text);
    ASSERT_TRUE(p);
    EXPECT_TRUE(lists_destination(text, ".cdn.example.net")) << text;
    EXPECT_FALSE(lists_destination(text, "cdn.example.net")) << text;
    expect_allowed(*p, at("cdn.example.net"));

    // The threshold is an option; 0 turns collapsing off.
    p = learn(four, {"--collapse", "4"}, &text);
    EXPECT_TRUE(lists_destination(text, "*.cdn.example.net")) << text;
    p = learn(five, {"--collapse", "0"}, &text);
    EXPECT_TRUE(lists_destination(text, "e.cdn.example.net")) << text;
    EXPECT_EQ(text.find("*.cdn.example.net"), std::string::npos) << text;
}

TEST_F(suggest_test, never_collapses_to_a_public_suffix)
{
    std::vector<event> events;
    for (std::string label : {"a", "b", "c", "d", "e", "f"}) {
        events.push_back(at(label + ".com"));
        events.push_back(at(label + ".co.uk"));
        events.push_back(at(label + "-shop.example.co.uk"));
    }
    std::string text;
    auto p = learn(events, {}, &text);
    ASSERT_TRUE(p);
    EXPECT_EQ(text.find("*.com\""), std::string::npos) << text;
    EXPECT_EQ(text.find("*.co.uk\""), std::string::npos) << text;
    EXPECT_EQ(text.find("\".com\""), std::string::npos) << text;
    EXPECT_TRUE(lists_destination(text, "a.com")) << text;
    EXPECT_TRUE(lists_destination(text, "a.co.uk")) << text;
    // Three labels are a registrable name under a two-label suffix: collapsible.
    EXPECT_TRUE(lists_destination(text, "*.example.co.uk")) << text;
    EXPECT_EQ(reason_for(*p, at("g.com")), pol::reason::no_matching_rule);
}

TEST_F(suggest_test, ip_literals_become_host_cidrs_and_guarded_ones_are_left_out)
{
    auto v4 = at("93.184.216.34", 443);
    auto v6 = at("2606:4700::1111", 8443);
    auto loopback = at("127.0.0.1", 8080);
    auto metadata = at("169.254.169.254", 80);
    auto documentation = at("192.0.2.10", 443);
    std::string text;
    auto p = learn({v4, v6, v6, loopback, metadata, documentation}, {}, &text);
    ASSERT_TRUE(p);
    EXPECT_TRUE(lists_destination(text, "93.184.216.34/32")) << text;
    EXPECT_TRUE(lists_destination(text, "2606:4700::1111/128")) << text;
    expect_allowed(*p, v4);
    expect_allowed(*p, v6);
    EXPECT_EQ(reason_for(*p, at("93.184.216.35", 443)), pol::reason::no_matching_rule);
    // A CIDR rule naming a guarded address would open the guard for it: never suggested.
    EXPECT_EQ(text.find("127.0.0.1/32"), std::string::npos) << text;
    EXPECT_EQ(text.find("169.254.169.254/32"), std::string::npos) << text;
    EXPECT_EQ(text.find("192.0.2.10/32"), std::string::npos) << text;
    EXPECT_FALSE(decide(*p, loopback).allowed());
    EXPECT_NE(text.find("#     169.254.169.254:80 (address_guard: cloud_metadata)"), std::string::npos) << text;
    EXPECT_NE(text.find("#     127.0.0.1:8080 (address_guard: loopback)"), std::string::npos) << text;
}

TEST_F(suggest_test, refusals_of_the_deny_list_guard_and_tls_checks_are_never_suggested)
{
    auto wanted = at("api.example.com");
    std::vector<event> events{wanted};
    for (std::string reason : {"explicit_deny", "address_guard", "sni_mismatch", "sni_missing", "not_tls",
                               "dns_nxdomain", "proxy_auth_failed", "bad_request", "unknown_client"}) {
        auto e = at(reason + ".example.org");
        e.kind = "egress.deny";
        e.reason = reason;
        events.push_back(e);
    }
    auto allowed = at("allowed.example.org");
    allowed.kind = "egress.allow";
    allowed.reason = "allowed";
    events.push_back(allowed);
    auto no_client = at("orphan.example.org");
    no_client.client.clear();
    events.push_back(no_client);
    auto closed = at("closed.example.org");
    closed.kind = "egress.close";
    events.push_back(closed);
    std::string text;
    auto p = learn(events, {}, &text);
    ASSERT_TRUE(p);
    expect_allowed(*p, wanted);
    expect_allowed(*p, allowed);
    for (std::string host : {"explicit_deny", "address_guard", "sni_mismatch", "sni_missing", "not_tls", "dns_nxdomain",
                             "proxy_auth_failed", "bad_request", "unknown_client", "orphan", "closed"}) {
        EXPECT_FALSE(lists_destination(text, host + ".example.org")) << text;
        EXPECT_EQ(reason_for(*p, at(host + ".example.org")), pol::reason::no_matching_rule) << host;
    }
    EXPECT_NE(text.find("#   1 decision(s) with reason explicit_deny\n"), std::string::npos) << text;
    EXPECT_NE(text.find("#   1 decision(s) with reason address_guard\n"), std::string::npos) << text;
    EXPECT_NE(text.find("#   1 decision(s) without a client"), std::string::npos) << text;
    EXPECT_NE(text.find("12 decisions read, 2 used, 10 skipped (see the end); 1 other events"), std::string::npos)
        << text;
}

constexpr std::string_view current_policy_text = R"(version: 1
mode: enforce
tls: require
address_guard:
  except: [loopback, documentation]
groups:
  base:
    rules:
      - ports: [443]
        destinations: [base.example.com]
clients:
  web:
    description: the web tier
    sources: [10.30.0.0/16, "2001:db8:30::/48"]
    groups: []
    mode: report
  alice:
    identities: [alice]
    groups: [base]
deny:
  - description: Paste site, exfiltration risk
    destinations: [pastebin.com, .pastebin.com]
  - description: Telnet to a range
    destinations: [93.184.216.0/24]
    ports: [23]
)";

TEST_F(suggest_test, the_current_policy_gives_identification_deny_list_and_guard)
{
    auto current = write_file("current.yaml", std::string(current_policy_text));
    auto api = at("api.example.com");
    auto paste = at("pastebin.com");                 // recorded before the deny rule was added
    auto paste_sub = at("raw.pastebin.com");
    auto telnet = at("93.184.216.34", 23);           // refused by a deny CIDR on port 23
    auto doc = at("192.0.2.10", 443);                // documentation is not guarded in the current policy
    auto loopback_name = at("intranet.example.com");
    loopback_name.address = "127.0.0.1";             // loopback is not guarded either
    auto unknown = at("new.example.com");
    unknown.client = "newcomer";
    unknown.source = "10.99.0.7";
    std::string text;
    auto p = learn({api, paste, paste_sub, telnet, doc, loopback_name, unknown}, {"--policy", current}, &text);
    ASSERT_TRUE(p);
    expect_allowed(*p, api);
    expect_allowed(*p, doc);
    expect_allowed(*p, loopback_name);
    expect_allowed(*p, unknown);
    EXPECT_FALSE(lists_destination(text, "pastebin.com")) << text;
    EXPECT_FALSE(lists_destination(text, "raw.pastebin.com")) << text;
    EXPECT_FALSE(lists_destination(text, "93.184.216.34/32")) << text;
    EXPECT_NE(text.find("#     pastebin.com:443 (explicit_deny in the current policy)"), std::string::npos) << text;
    EXPECT_NE(text.find("#     93.184.216.34:23 (explicit_deny in the current policy)"), std::string::npos) << text;
    // The deny list came along: the candidate refuses what the current policy refuses.
    EXPECT_EQ(reason_for(*p, paste), pol::reason::explicit_deny);
    EXPECT_EQ(reason_for(*p, telnet), pol::reason::explicit_deny);
    EXPECT_NE(text.find("  - description: \"Paste site, exfiltration risk\"\n    destinations: [pastebin.com, "
                        ".pastebin.com]\n"),
              std::string::npos)
        << text;
    // Sources copied as the current policy writes them: any address of the client's ranges matches.
    EXPECT_NE(text.find("    sources: [10.30.0.0/16, \"2001:db8:30::/48\"]\n    groups: [learned-web]\n"),
              std::string::npos)
        << text;
    auto elsewhere = api;
    elsewhere.source = "2001:db8:30::9";
    expect_allowed(*p, elsewhere);
    // A client the current policy does not know: identified by what was seen.
    EXPECT_NE(text.find("  newcomer:\n    # identification: as seen in the events (no client of this name in"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("    sources: [\"10.99.0.7/32\"]\n"), std::string::npos) << text;
    EXPECT_NE(text.find("tls: require\non_revoke: close\naddress_guard:\n  except: [loopback, documentation]\n"),
              std::string::npos)
        << text;
    // The learned client runs in enforce mode: only what was seen is allowed.
    auto d = decide(*p, at("other.example.com"));
    EXPECT_EQ(d.outcome, pol::verdict::deny);
}

// The learned group takes the place of the client's groups, so their deny lists, and the client's own, come along
// as the client's: five siblings collapse to *.cdn.example.net, which would otherwise open the denied one.
TEST_F(suggest_test, the_clients_own_and_group_deny_lists_stay_with_it)
{
    auto current = write_file("scoped.yaml", R"(version: 1
groups:
  base:
    rules:
      - ports: [443]
        destinations: [base.example.com]
    deny:
      - description: the group's refusal
        destinations: [leak.cdn.example.net]
clients:
  web:
    sources: [10.30.0.0/16]
    groups: [base]
    deny:
      - description: the client's refusal
        destinations: [secret.cdn.example.net]
  other:
    sources: [10.40.0.0/16]
    groups: []
  single:
    sources: [10.50.0.0/16]
    groups: base
)");
    std::vector<event> seen;
    for (std::string label : {"a", "b", "c", "d", "e"}) {
        seen.push_back(at(label + ".cdn.example.net"));
        seen.back().client = "web";
        seen.back().source = "10.30.0.5";
    }
    seen.push_back(at("a.cdn.example.net"));
    seen.back().client = "other";
    seen.back().source = "10.40.0.5";
    for (std::string label : {"a", "b", "c", "d", "e"}) {
        seen.push_back(at(label + ".cdn.example.net"));
        seen.back().client = "single";
        seen.back().source = "10.50.0.5";
    }
    std::string text;
    auto p = learn(seen, {"--policy", current}, &text);
    ASSERT_TRUE(p);
    ASSERT_TRUE(lists_destination(text, "*.cdn.example.net")) << text;
    auto web = [](std::string host, std::string client = "web", std::string source = "10.30.0.5") {
        auto e = at(std::move(host));
        e.client = std::move(client);
        e.source = std::move(source);
        return e;
    };
    expect_allowed(*p, web("f.cdn.example.net"));
    EXPECT_EQ(reason_for(*p, web("secret.cdn.example.net")), pol::reason::explicit_deny);
    EXPECT_EQ(reason_for(*p, web("leak.cdn.example.net")), pol::reason::explicit_deny);
    // A client naming its one group without a list.
    expect_allowed(*p, web("f.cdn.example.net", "single", "10.50.0.5"));
    EXPECT_EQ(reason_for(*p, web("leak.cdn.example.net", "single", "10.50.0.5")), pol::reason::explicit_deny);
    EXPECT_NE(text.find("    deny:\n      # its own deny list, copied from " + current + "\n"
                        "      - description: \"the client's refusal\"\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("      # the deny list of its group base, copied from " + current + "\n"), std::string::npos)
        << text;
    // A client without deny lists gets none.
    auto other_entry = text.find("  other:\n");
    auto next_entry = text.find("  single:\n");
    ASSERT_LT(other_entry, next_entry) << text;
    EXPECT_GT(text.find("    deny:", other_entry), next_entry) << text;
}

TEST_F(suggest_test, without_a_current_policy_sources_and_identities_are_those_seen)
{
    auto a = at("api.example.com");
    a.client = "alice";
    a.identity = "alice";
    a.source = "10.1.0.5";
    auto b = a;
    b.source = "2001:db8::5";
    auto batch = at("deb.debian.org", 80);
    batch.client = "batch";
    batch.source = "10.20.1.7";
    auto mixed = at("pypi.org");
    mixed.client = "mixed";
    mixed.source = "10.40.0.1";
    mixed.identity = "carol";
    auto mixed_anonymous = mixed;
    mixed_anonymous.identity.clear();
    std::string text;
    auto p = learn({a, b, batch, mixed, mixed_anonymous}, {}, &text);
    ASSERT_TRUE(p);
    for (const auto& e : {a, b, batch, mixed, mixed_anonymous}) {
        expect_allowed(*p, e);
    }
    EXPECT_NE(text.find("  alice:\n    # identification: as seen in the events\n    sources: [\"10.1.0.5/32\", "
                        "\"2001:db8::5/128\"]\n    identities: [\"alice\"]\n    groups: [learned-alice]\n"),
              std::string::npos)
        << text;
    // Identity and source must both match: alice from elsewhere is nobody.
    auto stranger = a;
    stranger.source = "10.1.0.6";
    EXPECT_EQ(reason_for(*p, stranger), pol::reason::unknown_client);
    // Some requests of "mixed" carried no identity: matched by source only.
    EXPECT_NE(text.find("# identities seen, but not on every request (so matched by source): carol"),
              std::string::npos)
        << text;
}

TEST_F(suggest_test, client_and_since_filters)
{
    auto web = at("api.example.com");
    auto batch = at("deb.debian.org", 80);
    batch.client = "batch";
    batch.source = "10.20.1.7";
    auto recent = at("recent.example.com");
    recent.time = config::format_rfc3339(std::chrono::floor<std::chrono::milliseconds>(
        std::chrono::system_clock::now() - std::chrono::minutes(10)));
    std::string text;
    auto p = learn({web, batch, recent}, {"--client", "batch"}, &text);
    ASSERT_TRUE(p);
    EXPECT_EQ(text.find("learned-web"), std::string::npos) << text;
    expect_allowed(*p, batch);
    EXPECT_NE(text.find("#   client:   batch\n"), std::string::npos) << text;

    p = learn({web, batch, recent}, {"--since", "1h"}, &text);
    ASSERT_TRUE(p);
    EXPECT_TRUE(lists_destination(text, "recent.example.com")) << text;
    EXPECT_FALSE(lists_destination(text, "api.example.com")) << text;
    EXPECT_EQ(text.find("learned-batch"), std::string::npos) << text;

    p = learn({web, batch, recent}, {"--since", "2026-11-20T09:00:00Z", "--client", "web"}, &text);
    ASSERT_TRUE(p);
    EXPECT_TRUE(lists_destination(text, "api.example.com")) << text;
    EXPECT_TRUE(lists_destination(text, "recent.example.com")) << text;
}

TEST_F(suggest_test, several_files_give_one_sorted_deterministic_policy)
{
    std::vector<event> events{at("b.example.com"), at("a.example.com", 80), at("93.184.216.34"), at("c.example.com")};
    auto first = write_events({events[0], events[1]}, "one.log");
    auto second = write_events({events[2], events[3]}, "two.log");
    auto reversed = write_events({events[3], events[2], events[1], events[0]}, "all.log");
    auto together = suggest({"--events", first, second});
    auto repeated = suggest({"--events", first, "--events", second});
    auto shuffled = suggest({"--events", reversed});
    ASSERT_EQ(together.code, 0) << together.err;
    EXPECT_EQ(together.out, repeated.out);
    auto body = [](const std::string& text) { return text.substr(text.find("version: 1")); };
    EXPECT_EQ(body(together.out), body(shuffled.out));
    auto b = together.out.find("\"b.example.com\"");
    auto c = together.out.find("\"c.example.com\"");
    auto cidr = together.out.find("\"93.184.216.34/32\"");
    EXPECT_LT(b, c);
    EXPECT_LT(c, cidr);
}

TEST_F(suggest_test, no_learnable_traffic_is_still_a_valid_policy)
{
    auto denied = at("pastebin.com");
    denied.reason = "explicit_deny";
    std::string text;
    auto p = learn({denied}, {}, &text);
    ASSERT_TRUE(p);
    EXPECT_NE(text.find("groups: {}\nclients: {}\n"), std::string::npos) << text;
}

TEST_F(suggest_test, usage_errors_and_an_invalid_current_policy)
{
    auto events = write_events({at("api.example.com")});
    EXPECT_EQ(suggest({}).code, 2);
    EXPECT_EQ(suggest({"--events"}).code, 2);
    EXPECT_EQ(suggest({events}).code, 2);
    EXPECT_EQ(suggest({"--events", events, "--collapse", "1"}).code, 2);
    EXPECT_EQ(suggest({"--events", events, "--collapse", "many"}).code, 2);
    EXPECT_EQ(suggest({"--events", events, "--since", "yesterday"}).code, 2);
    EXPECT_EQ(suggest({"--events", events, "--policy"}).code, 2);
    EXPECT_EQ(suggest({"--events", events, "--json"}).code, 2);
    auto missing = suggest({"--events", (dir_.path() / "nope.log").string()});
    EXPECT_EQ(missing.code, 1);
    EXPECT_NE(missing.err.find("nope.log"), std::string::npos) << missing.err;
    auto bad = write_file("bad.yaml", "version: 1\ngroups:\n  g:\n    rules: [{ports: [0], destinations: [x.com]}]\n");
    auto invalid = suggest({"--events", events, "--policy", bad});
    EXPECT_EQ(invalid.code, 1);
    EXPECT_NE(invalid.err.find("bad.yaml:4"), std::string::npos) << invalid.err;
    EXPECT_TRUE(invalid.out.empty());
}

}  // namespace
}  // namespace egressd::proxy::tools
