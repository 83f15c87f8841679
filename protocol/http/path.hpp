#pragma once

// Request paths as rules that name paths see them. Two spellings of one resource must not decide differently:
// "/simple/../admin" and "/%61dmin" are "/admin" to every server (RFC 3986 6.2.2), so rules match on the normal
// form, and egressd forwards that form, so that the upstream gets exactly the path that was decided.

#include <string>
#include <string_view>

namespace egressd::protocol::http {

// RFC 3986 syntax-based normalisation of an origin-form path (starting with '/', without the query): percent-
// encoded unreserved characters decoded, the hex digits of the other percent-encodings in upper case, dot segments
// removed. A percent sign that starts no escape is written %25.
std::string normalise_path(std::string_view path);

// What a lenient server may make of a normal path: encoded and raw backslashes and encoded slashes read as '/',
// runs of '/' merged, ";parameters" dropped from segments ("/..;/" is "/../" to Tomcat), dot segments removed
// again. Rules that allow by path must match both forms, rules that deny by path either one.
std::string loose_path(std::string_view normal_path);

// Whether a path prefix written in a policy is already in normal form (so that it can match normal paths).
bool is_normal_path(std::string_view path);

}  // namespace egressd::protocol::http
