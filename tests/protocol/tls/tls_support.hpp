#pragma once

#include "protocol/tls/client_hello.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace egressd::protocol::tls::fixtures {

template <typename Case>
std::string case_name(const ::testing::TestParamInfo<Case>& info)
{
    return info.param.name;
}

inline std::string from_hex(std::string_view hex)
{
    const auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') {
            return c - '0';
        }
        if (c >= 'a' && c <= 'f') {
            return c - 'a' + 10;
        }
        throw std::invalid_argument("bad hex digit");
    };
    if (hex.size() % 2 != 0) {
        throw std::invalid_argument("odd hex length");
    }
    std::string out;
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        out.push_back(static_cast<char>(nibble(hex[i]) * 16 + nibble(hex[i + 1])));
    }
    return out;
}

// Big-endian integers as TLS writes them.
inline std::string u8(std::size_t v) { return std::string(1, static_cast<char>(v & 0xff)); }
inline std::string u16(std::size_t v) { return u8(v >> 8) + u8(v); }
inline std::string u24(std::size_t v) { return u8(v >> 16) + u16(v); }
inline std::string prefixed8(std::string_view s) { return u8(s.size()) + std::string(s); }
inline std::string prefixed16(std::string_view s) { return u16(s.size()) + std::string(s); }

inline constexpr std::uint16_t ext_server_name = 0;
inline constexpr std::uint16_t ext_alpn = 16;
inline constexpr std::uint16_t ext_padding = 21;
inline constexpr std::uint16_t ext_supported_versions = 43;
inline constexpr std::uint16_t ext_ech = 0xfe0d;

// server_name extension data: a ServerNameList of (name_type, name) entries.
inline std::string server_name_list(const std::vector<std::pair<std::uint8_t, std::string>>& entries)
{
    std::string list;
    for (const auto& [type, name] : entries) {
        list += u8(type) + prefixed16(name);
    }
    return prefixed16(list);
}

inline std::string alpn_list(const std::vector<std::string>& names)
{
    std::string list;
    for (const auto& n : names) {
        list += prefixed8(n);
    }
    return prefixed16(list);
}

// Builds ClientHellos field by field, so that each malformed case breaks exactly one thing.
struct hello_builder {
    std::uint8_t handshake_type = 1;
    std::uint16_t legacy_version = 0x0303;
    std::string random = std::string(32, '\x5a');
    std::string session_id = std::string(32, '\x33');
    std::string cipher_suites = std::string("\x13\x01\x13\x02\xc0\x2f", 6);
    std::string compression = std::string(1, '\0');
    std::vector<std::pair<std::uint16_t, std::string>> extensions;
    bool no_extensions_block = false;          // a TLS 1.2 hello may end after compression methods
    std::optional<std::string> raw_extensions; // replaces the whole block, length prefix included
    std::string trailing;                      // bytes after the extensions block, inside the message

    hello_builder& ext(std::uint16_t type, std::string data)
    {
        extensions.emplace_back(type, std::move(data));
        return *this;
    }
    hello_builder& sni(const std::string& name) { return ext(ext_server_name, server_name_list({{0, name}})); }

    std::string body() const
    {
        std::string b = u16(legacy_version) + random + prefixed8(session_id) + prefixed16(cipher_suites)
                        + prefixed8(compression);
        if (raw_extensions) {
            b += *raw_extensions;
        } else if (!no_extensions_block) {
            std::string block;
            for (const auto& [type, data] : extensions) {
                block += u16(type) + prefixed16(data);
            }
            b += prefixed16(block);
        }
        return b + trailing;
    }
    // The handshake message: type, 24-bit length, body.
    std::string message() const
    {
        const auto b = body();
        return u8(handshake_type) + u24(b.size()) + b;
    }
    std::string record() const { return records(message()); }

    // The usual shape: the message behind one record header per 2^14 bytes.
    static std::string records(std::string_view message, std::size_t max_payload = 16384)
    {
        std::vector<std::size_t> sizes;
        for (std::size_t left = message.size(); left > 0; left -= std::min(left, max_payload)) {
            sizes.push_back(std::min(left, max_payload));
        }
        return reframe(message, sizes);
    }

    // The message cut into handshake records of the given payload sizes (the last one takes the rest).
    static std::string reframe(std::string_view message, const std::vector<std::size_t>& sizes)
    {
        std::string out;
        std::size_t pos = 0;
        for (std::size_t i = 0; i < sizes.size() && pos < message.size(); ++i) {
            const std::size_t n = i + 1 == sizes.size() ? message.size() - pos : sizes[i];
            out += record_header(22, 0x0301, n) + std::string(message.substr(pos, n));
            pos += n;
        }
        return out;
    }

    static std::string record_header(std::uint8_t type, std::uint16_t version, std::size_t size)
    {
        return u8(type) + u16(version) + u16(size);
    }
};

// The handshake message inside a single-record capture.
inline std::string message_of(std::string_view single_record) { return std::string(single_record.substr(5)); }

}  // namespace egressd::protocol::tls::fixtures

namespace egressd::protocol::tls {

// gtest would print the enum as a number; names make failures readable.
inline void PrintTo(hello_status s, std::ostream* os) { *os << to_string(s); }

}  // namespace egressd::protocol::tls
