#pragma once

// egressd-format event lines for the command tests, written after the event format contract.

#include <cstdint>
#include <string>

namespace egressd::proxy::test {

struct event_line {
    std::string time = "2026-12-06T10:00:00.000Z";
    std::string event = "egress.deny";
    std::string client{};  // empty: null
    std::string source = "10.20.1.7:40000";
    std::string method = "CONNECT";
    std::string host{};
    std::uint16_t port = 443;
    std::string address{};  // empty: null
    std::string reason = "no_matching_rule";
    std::string mode = "enforce";
    std::string sni{};

    std::string text() const
    {
        auto quoted_or_null = [](const std::string& s) { return s.empty() ? std::string("null") : "\"" + s + "\""; };
        std::string line = R"({"time":")" + time + R"(","event":")" + event +
                           R"(","instance":"test","request_id":"r","client":)" + quoted_or_null(client) +
                           R"(,"source":")" + source + R"(","method":")" + method + R"(","host":")" + host +
                           R"(","port":)" + std::to_string(port) + R"(,"address":)" + quoted_or_null(address) +
                           R"(,"reason":")" + reason + R"(","mode":")" + mode + "\"";
        if (!sni.empty()) {
            line += R"(,"sni":")" + sni + "\"";
        }
        return line + "}\n";
    }
};

}  // namespace egressd::proxy::test
