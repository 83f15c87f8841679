#pragma once

#include <concepts>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::proxy {

// Appends s as a JSON string literal (quoted, escaped) to out.
void append_json_string(std::string& out, std::string_view s);
std::string json_string(std::string_view s);

// One typed field value of an operational event, rendered to JSON once: numbers stay numbers
// ("workers": 2), lists stay lists.
class json_value {
public:
    json_value(std::string_view text) : json_(json_string(text)) {}
    json_value(const char* text) : json_(json_string(text)) {}
    json_value(const std::string& text) : json_(json_string(text)) {}
    template <std::integral T>
        requires(!std::same_as<T, bool>)
    json_value(T number) : json_(std::to_string(number))
    {
    }
    json_value(bool b) : json_(b ? "true" : "false") {}
    json_value(const std::vector<std::string>& list);
    // Already JSON (an object or array built elsewhere).
    static json_value raw(std::string json);
    static json_value null() { return raw("null"); }

    const std::string& text() const { return json_; }

private:
    struct raw_tag {};
    json_value(raw_tag, std::string json) : json_(std::move(json)) {}
    std::string json_;
};

}  // namespace egressd::proxy
