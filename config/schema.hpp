#pragma once

#include "config/yaml_tree.hpp"

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::config {

struct diagnostic {
    std::string file;
    mark where;
    std::string message;

    // "file:line:column: error: message", the form editors and CI annotators understand.
    std::string format(std::string_view severity) const;
};

// Strict reading of one file's tree: each check that fails records an error naming the node's position
// and what was expected, and reading goes on so that one run reports every error.
class schema_reader {
public:
    schema_reader(std::string file, std::vector<diagnostic>& errors) : file_(std::move(file)), errors_(errors) {}

    void error(const yaml_node& at, std::string message);
    void error(mark at, std::string message);

    // True when n is a map; otherwise records "expected <what>".
    bool expect_map(const yaml_node& n, std::string_view what);
    bool expect_scalar(const yaml_node& n, std::string_view what);
    // Every key must be a plain scalar, appear once, and be one of `known`; each other key is an error.
    void check_keys(const yaml_node& map, std::string_view where, std::initializer_list<std::string_view> known);
    // The value under key, or nullptr (recording an error if required).
    const yaml_node* find(const yaml_node& map, std::string_view key) const;
    const yaml_node* require(const yaml_node& map, std::string_view key, std::string_view where);

    std::optional<std::string> string_value(const yaml_node& n, std::string_view what);
    std::optional<std::int64_t> integer_value(const yaml_node& n, std::string_view what, std::int64_t min,
                                              std::int64_t max);
    // A scalar or a sequence of scalars, as a list of nodes.
    std::vector<const yaml_node*> scalar_list(const yaml_node& n, std::string_view what);
    // The same nodes, each passed to f in turn without building the list (every rule's ports and destinations).
    template <class F>
    void for_each_scalar(const yaml_node& n, std::string_view what, F&& f)
    {
        if (n.is_scalar()) {
            f(n);
            return;
        }
        if (!n.is_sequence()) {
            not_a_list(n, what);
            return;
        }
        for (const auto& item : n.items) {
            if (item.is_scalar()) {
                f(item);
            } else {
                not_a_scalar_item(item, what);
            }
        }
    }

    const std::string& file() const { return file_; }
    std::size_t error_count() const { return errors_.size(); }

private:
    void not_a_list(const yaml_node& n, std::string_view what);
    void not_a_scalar_item(const yaml_node& item, std::string_view what);

    std::string file_;
    std::vector<diagnostic>& errors_;
};

std::string join(const std::vector<std::string_view>& words, std::string_view separator);

}  // namespace egressd::config
