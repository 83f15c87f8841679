#include "protocol/http/path.hpp"

#include "protocol/hex.hpp"

#include <vector>

namespace egressd::protocol::http {
namespace {

bool unreserved(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

char upper_hex(char c) { return c >= 'a' && c <= 'f' ? static_cast<char>(c - 'a' + 'A') : c; }

// RFC 3986 5.2.4 for a path starting with '/'; a final "." or ".." leaves a trailing '/'.
std::string remove_dot_segments(std::string_view in)
{
    std::vector<std::string_view> out;
    std::size_t start = in.empty() || in.front() != '/' ? 0 : 1;
    for (;;) {
        std::size_t slash = in.find('/', start);
        bool last = slash == std::string_view::npos;
        std::string_view segment = in.substr(start, last ? std::string_view::npos : slash - start);
        if (segment == "..") {
            if (!out.empty()) {
                out.pop_back();
            }
            if (last) {
                out.emplace_back();
            }
        } else if (segment == ".") {
            if (last) {
                out.emplace_back();
            }
        } else {
            out.push_back(segment);
        }
        if (last) {
            break;
        }
        start = slash + 1;
    }
    std::string result;
    result.reserve(in.size() + 1);
    for (auto segment : out) {
        result += '/';
        result += segment;
    }
    return result.empty() ? std::string("/") : result;
}

}  // namespace

std::string normalise_path(std::string_view path)
{
    std::string decoded;
    decoded.reserve(path.size());
    for (std::size_t i = 0; i < path.size(); ++i) {
        char c = path[i];
        if (c == '%' && i + 2 < path.size() && hex_value(path[i + 1]) >= 0 && hex_value(path[i + 2]) >= 0) {
            char value = static_cast<char>(hex_value(path[i + 1]) * 16 + hex_value(path[i + 2]));
            if (unreserved(value)) {
                decoded += value;
            } else {
                decoded += '%';
                decoded += upper_hex(path[i + 1]);
                decoded += upper_hex(path[i + 2]);
            }
            i += 2;
            continue;
        }
        // A stray '%' is a literal percent sign: written %25, so that what follows it can never form an escape
        // that a second decoding (the upstream's) would read.
        decoded += c == '%' ? std::string_view("%25") : std::string_view(&c, 1);
    }
    return remove_dot_segments(decoded);
}

std::string loose_path(std::string_view normal_path)
{
    std::string slashed;
    slashed.reserve(normal_path.size());
    for (std::size_t i = 0; i < normal_path.size(); ++i) {
        char c = normal_path[i];
        if (c == '%' && i + 2 < normal_path.size() &&
            (normal_path.substr(i + 1, 2) == "2F" || normal_path.substr(i + 1, 2) == "5C")) {
            c = '/';
            i += 2;
        } else if (c == '\\') {
            c = '/';
        }
        slashed += c;
    }
    // Parameters go before slashes merge: "/;x/admin" is "//admin", which is "/admin".
    std::string merged;
    merged.reserve(slashed.size());
    bool in_parameters = false;
    for (char c : slashed) {
        if (c == '/') {
            in_parameters = false;
        } else if (c == ';') {
            in_parameters = true;
        }
        if (in_parameters || (c == '/' && !merged.empty() && merged.back() == '/')) {
            continue;
        }
        merged += c;
    }
    return remove_dot_segments(merged);
}

bool is_normal_path(std::string_view path)
{
    return !path.empty() && path.front() == '/' && normalise_path(path) == path;
}

}  // namespace egressd::protocol::http
