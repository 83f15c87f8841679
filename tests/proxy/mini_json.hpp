#pragma once

// A small, strict JSON reader for checking what the CLI prints: enough of RFC 8259 to reject malformed
// output (unbalanced brackets, bad escapes, trailing text, raw control characters) and to look up fields.

#include "protocol/hex.hpp"

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::test_support {

struct json_value {
    enum class kind { null, boolean, number, string, array, object };
    kind type = kind::null;
    bool boolean = false;
    std::string text;  // string value (decoded), or the number as written
    std::vector<json_value> items;
    std::map<std::string, json_value> members;

    // Member lookup; nullptr when this is not an object or has no such member.
    const json_value* get(const std::string& key) const
    {
        if (type != kind::object) {
            return nullptr;
        }
        auto it = members.find(key);
        return it == members.end() ? nullptr : &it->second;
    }
    // Member lookup that chains: a missing member reads as null, so a wrong shape fails an expectation
    // instead of crashing the test.
    const json_value& at(const std::string& key) const
    {
        static const json_value missing;
        const json_value* v = get(key);
        return v == nullptr ? missing : *v;
    }
    bool is_string(std::string_view want) const { return type == kind::string && text == want; }
};

class json_reader {
public:
    // The value, or nullopt with error() saying where the text stopped being JSON.
    static std::optional<json_value> parse(std::string_view text, std::string* error = nullptr)
    {
        json_reader r(text);
        auto v = r.value(0);
        r.skip_space();
        if (v && r.pos_ != text.size()) {
            r.fail("trailing text");
            v.reset();
        }
        if (!v && error != nullptr) {
            *error = r.error_ + " at offset " + std::to_string(r.pos_);
        }
        return v;
    }

private:
    explicit json_reader(std::string_view text) : s_(text) {}

    std::optional<json_value> fail(std::string message)
    {
        if (error_.empty()) {
            error_ = std::move(message);
        }
        return std::nullopt;
    }

    void skip_space()
    {
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
            ++pos_;
        }
    }

    bool take(std::string_view word)
    {
        if (s_.substr(pos_, word.size()) == word) {
            pos_ += word.size();
            return true;
        }
        return false;
    }

    std::optional<json_value> value(int depth)
    {
        if (depth > 64) {
            return fail("nested too deeply");
        }
        skip_space();
        if (pos_ >= s_.size()) {
            return fail("unexpected end");
        }
        json_value v;
        char c = s_[pos_];
        if (c == '{') {
            ++pos_;
            v.type = json_value::kind::object;
            skip_space();
            if (take("}")) {
                return v;
            }
            for (;;) {
                skip_space();
                auto key = string_literal();
                if (!key) {
                    return std::nullopt;
                }
                skip_space();
                if (!take(":")) {
                    return fail("expected ':'");
                }
                auto member = value(depth + 1);
                if (!member) {
                    return std::nullopt;
                }
                if (!v.members.emplace(*key, std::move(*member)).second) {
                    return fail("duplicate key " + *key);
                }
                skip_space();
                if (take("}")) {
                    return v;
                }
                if (!take(",")) {
                    return fail("expected ',' or '}'");
                }
            }
        }
        if (c == '[') {
            ++pos_;
            v.type = json_value::kind::array;
            skip_space();
            if (take("]")) {
                return v;
            }
            for (;;) {
                auto item = value(depth + 1);
                if (!item) {
                    return std::nullopt;
                }
                v.items.push_back(std::move(*item));
                skip_space();
                if (take("]")) {
                    return v;
                }
                if (!take(",")) {
                    return fail("expected ',' or ']'");
                }
            }
        }
        if (c == '"') {
            auto text = string_literal();
            if (!text) {
                return std::nullopt;
            }
            v.type = json_value::kind::string;
            v.text = std::move(*text);
            return v;
        }
        if (take("true")) {
            v.type = json_value::kind::boolean;
            v.boolean = true;
            return v;
        }
        if (take("false")) {
            v.type = json_value::kind::boolean;
            return v;
        }
        if (take("null")) {
            return v;
        }
        std::size_t start = pos_;
        take("-");
        std::size_t digits = pos_;
        while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
            ++pos_;
        }
        if (pos_ == digits || (s_[digits] == '0' && pos_ - digits > 1)) {
            return fail("expected a value");
        }
        v.type = json_value::kind::number;
        v.text = std::string(s_.substr(start, pos_ - start));
        return v;
    }

    static void append_utf8(std::string& out, unsigned code)
    {
        if (code < 0x80) {
            out += static_cast<char>(code);
        } else if (code < 0x800) {
            out += static_cast<char>(0xc0 | (code >> 6));
            out += static_cast<char>(0x80 | (code & 0x3f));
        } else {
            out += static_cast<char>(0xe0 | (code >> 12));
            out += static_cast<char>(0x80 | ((code >> 6) & 0x3f));
            out += static_cast<char>(0x80 | (code & 0x3f));
        }
    }

    std::optional<std::string> string_literal()
    {
        if (!take("\"")) {
            fail("expected a string");
            return std::nullopt;
        }
        std::string out;
        while (pos_ < s_.size()) {
            char c = s_[pos_++];
            if (c == '"') {
                return out;
            }
            if (static_cast<unsigned char>(c) < 0x20) {
                fail("raw control character in a string");
                return std::nullopt;
            }
            if (c != '\\') {
                out += c;
                continue;
            }
            if (pos_ >= s_.size()) {
                break;
            }
            char e = s_[pos_++];
            switch (e) {
            case '"':
            case '\\':
            case '/':
                out += e;
                break;
            case 'b':
                out += '\b';
                break;
            case 'f':
                out += '\f';
                break;
            case 'n':
                out += '\n';
                break;
            case 'r':
                out += '\r';
                break;
            case 't':
                out += '\t';
                break;
            case 'u': {
                unsigned code = 0;
                for (int i = 0; i < 4; ++i) {
                    int h = pos_ < s_.size() ? protocol::hex_value(s_[pos_++]) : -1;
                    if (h < 0) {
                        fail("bad \\u escape");
                        return std::nullopt;
                    }
                    code = code * 16 + static_cast<unsigned>(h);
                }
                append_utf8(out, code);
                break;
            }
            default:
                fail("bad escape");
                return std::nullopt;
            }
        }
        fail("unterminated string");
        return std::nullopt;
    }

    std::string_view s_;
    std::size_t pos_ = 0;
    std::string error_;
};

}  // namespace egressd::test_support
