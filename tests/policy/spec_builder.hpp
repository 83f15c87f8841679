#pragma once

// Builds policy_spec objects in C++ for the policy tests, so that no test depends on config/ or YAML.

#include "policy/policy.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace egressd::policy::fixtures {

// Fixed instants: tests never read the clock.
inline constexpr time_point t0{std::chrono::seconds{1'700'000'000}};

inline time_point at(std::int64_t offset_seconds) { return t0 + std::chrono::seconds{offset_seconds}; }

// Parse helpers that fail loudly: a typo in a fixture must not silently become an empty rule.
inline domain_pattern pattern(std::string_view text)
{
    auto p = parse_domain_pattern(text);
    if (!p.value) {
        throw std::invalid_argument("bad pattern in fixture: " + std::string(text) + ": " + p.error);
    }
    return *p.value;
}

inline cidr net(std::string_view text)
{
    std::string error;
    auto c = cidr::parse(text, &error);
    if (!c) {
        throw std::invalid_argument("bad cidr in fixture: " + error);
    }
    return *c;
}

inline address addr(std::string_view text)
{
    auto a = address::parse(text);
    if (!a) {
        throw std::invalid_argument("bad address in fixture: " + std::string(text));
    }
    return *a;
}

inline host target(std::string_view text)
{
    auto h = host::parse(text);
    if (!h.value) {
        throw std::invalid_argument("bad host in fixture: " + std::string(text) + ": " + h.error);
    }
    return *h.value;
}

inline source_location line(std::uint32_t n) { return source_location{0, n, 1}; }

// One allow or deny rule. Ports are explicit: an allow rule without ports is not a valid spec.
class rule {
public:
    rule& domain(std::string_view text)
    {
        spec_.domains.push_back(pattern(text));
        return *this;
    }
    rule& cidr(std::string_view text)
    {
        spec_.cidrs.push_back(net(text));
        return *this;
    }
    rule& port(std::uint16_t p)
    {
        spec_.ports.push_back(port_range{p, p});
        return *this;
    }
    rule& ports(std::uint16_t first, std::uint16_t last)
    {
        spec_.ports.push_back(port_range{first, last});
        return *this;
    }
    rule& expires(time_point t)
    {
        spec_.expires = t;
        return *this;
    }
    rule& at_line(std::uint32_t n)
    {
        spec_.where = line(n);
        return *this;
    }
    rule& described(std::string text)
    {
        spec_.description = std::move(text);
        return *this;
    }
    rule& tls(tls_mode m)
    {
        spec_.tls = m;
        return *this;
    }
    // Plain-HTTP conditions, as the loader stores them (methods upper case, paths in normal form).
    rule& method(std::string m)
    {
        spec_.methods.push_back(std::move(m));
        return *this;
    }
    rule& path(std::string prefix)
    {
        spec_.paths.push_back(std::move(prefix));
        return *this;
    }
    operator rule_spec() const { return spec_; }  // NOLINT: implicit so rule lists read as lists

private:
    rule_spec spec_;
};

struct client_options {
    std::optional<mode> mode_override{};  // initialized so designated initializers may omit it
    std::uint32_t line = 0;
};

class spec_builder {
public:
    spec_builder& group(std::string name, std::vector<rule_spec> rules, std::uint32_t at_line = 0)
    {
        spec_.groups.push_back(group_spec{std::move(name), {}, std::move(rules), line(at_line)});
        return *this;
    }

    // Each group reference is placed on its own line after the client's, so diagnostics can be located.
    spec_builder& client(std::string name, std::initializer_list<std::string_view> sources,
                         std::initializer_list<std::string_view> groups, client_options options = {})
    {
        client_spec c;
        c.name = std::move(name);
        c.where = line(options.line);
        c.mode_override = options.mode_override;
        std::uint32_t n = options.line;
        for (auto s : sources) {
            c.sources.push_back(located_cidr{net(s), line(++n)});
        }
        for (auto g : groups) {
            c.groups.push_back(named_ref{std::string(g), line(++n)});
        }
        spec_.clients.push_back(std::move(c));
        return *this;
    }

    // Identities for the client added last: exact strings, or prefix patterns ending in "*".
    spec_builder& identities(std::initializer_list<std::string_view> patterns)
    {
        for (auto p : patterns) {
            identity_pattern id;
            id.prefix = p.ends_with('*');
            id.text = std::string(id.prefix ? p.substr(0, p.size() - 1) : p);
            spec_.clients.back().identities.push_back(std::move(id));
        }
        return *this;
    }

    spec_builder& deny(rule_spec r)
    {
        spec_.deny.push_back(std::move(r));
        return *this;
    }

    // Deny lists of the group, or of the client, added last.
    spec_builder& group_deny(std::vector<rule_spec> rules)
    {
        spec_.groups.back().deny = std::move(rules);
        return *this;
    }
    spec_builder& client_deny(std::vector<rule_spec> rules)
    {
        spec_.clients.back().deny = std::move(rules);
        return *this;
    }

    spec_builder& default_mode(mode m)
    {
        spec_.default_mode = m;
        return *this;
    }

    spec_builder& default_tls(tls_mode m)
    {
        spec_.default_tls = m;
        return *this;
    }

    spec_builder& unguard(guard_category c)
    {
        spec_.guarded.remove(c);
        return *this;
    }

    policy_spec& spec() { return spec_; }
    compile_result compile() const { return policy::compile(spec_); }

    // For fixtures that must compile: reports every error and returns null on failure.
    std::shared_ptr<const policy> compile_ok() const
    {
        auto result = compile();
        for (const auto& e : result.errors) {
            ADD_FAILURE() << "unexpected compile error at line " << e.where.line << ": " << e.message;
        }
        return result.snapshot;
    }

private:
    policy_spec spec_ = [] {
        policy_spec s;
        s.files = {"test.yaml"};
        return s;
    }();
};

}  // namespace egressd::policy::fixtures
