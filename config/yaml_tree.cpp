#include "config/yaml_tree.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <map>

namespace egressd::config {
namespace {

mark to_mark(const YAML::Mark& m)
{
    return mark{static_cast<std::uint32_t>(m.line + 1), static_cast<std::uint32_t>(m.column + 1)};
}

struct too_many_nodes {
    mark where;
    std::string message;
};

// Aliases may add this many nodes to any document, and beyond it as many as the document writes out:
// enough for lists reused across a large policy, while an alias bomb fails within a few tens of megabytes
// (max_nodes alone would let a 10-line file build gigabytes before failing).
constexpr std::size_t alias_allowance = 400'000;

// Builds the tree: a stack of open collections; a map collects alternating key and value nodes.
class tree_builder : public YAML::EventHandler {
public:
    explicit tree_builder(std::size_t max_nodes) : max_nodes_(max_nodes) {}

    std::optional<yaml_node> root;
    int documents = 0;

    mark second_document;

    void OnDocumentStart(const YAML::Mark& m) override
    {
        if (++documents == 2) {
            second_document = to_mark(m);
        }
    }
    void OnDocumentEnd() override {}

    void OnNull(const YAML::Mark& m, YAML::anchor_t anchor) override
    {
        yaml_node n;
        n.where = to_mark(m);
        add(std::move(n), anchor);
    }

    void OnAlias(const YAML::Mark& m, YAML::anchor_t anchor) override
    {
        auto it = anchors_.find(anchor);
        std::size_t size = it == anchors_.end() ? 1 : it->second.size;
        // Charged before the copy is made, so that an expansion over budget never allocates.
        count_ += size;
        aliased_ += size;
        check_budget(m);
        yaml_node n = it == anchors_.end() ? yaml_node{} : it->second.node;
        n.where = to_mark(m);
        add(std::move(n), 0, false);
    }

    void OnScalar(const YAML::Mark& m, const std::string& tag, YAML::anchor_t anchor, const std::string& value) override
    {
        yaml_node n;
        n.type = yaml_node::kind::scalar;
        n.plain = tag == "?";
        n.where = to_mark(m);
        n.value = value;
        add(std::move(n), anchor);
    }

    void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t anchor,
                         YAML::EmitterStyle::value) override
    {
        open(yaml_node::kind::sequence, m, anchor);
    }
    void OnSequenceEnd() override { close(); }

    void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t anchor, YAML::EmitterStyle::value) override
    {
        open(yaml_node::kind::map, m, anchor);
    }
    void OnMapEnd() override { close(); }

private:
    struct open_node {
        yaml_node node;
        YAML::anchor_t anchor;
        std::size_t count_at_start;
        std::optional<yaml_node> pending_key;
    };
    struct anchored {
        yaml_node node;
        std::size_t size;
    };

    void check_budget(const YAML::Mark& m) const
    {
        if (count_ > max_nodes_) {
            throw too_many_nodes{to_mark(m), "aliases expand to more than " + std::to_string(max_nodes_) + " nodes"};
        }
        std::size_t alias_budget = std::max(alias_allowance, count_ - aliased_);
        if (aliased_ > alias_budget) {
            throw too_many_nodes{to_mark(m), "aliases expand to more than " + std::to_string(alias_budget) +
                                                 " nodes: at most " + std::to_string(alias_allowance) +
                                                 ", or as many as the document writes out"};
        }
    }

    void open(yaml_node::kind type, const YAML::Mark& m, YAML::anchor_t anchor)
    {
        ++count_;
        check_budget(m);
        yaml_node n;
        n.type = type;
        n.where = to_mark(m);
        stack_.push_back(open_node{std::move(n), anchor, count_, std::nullopt});
    }

    void close()
    {
        open_node top = std::move(stack_.back());
        stack_.pop_back();
        std::size_t size = count_ - top.count_at_start + 1;
        if (top.anchor != 0) {
            anchors_[top.anchor] = anchored{top.node, size};
        }
        add(std::move(top.node), 0, false);
    }

    void add(yaml_node n, YAML::anchor_t anchor, bool counted = true)
    {
        if (counted && n.type != yaml_node::kind::sequence && n.type != yaml_node::kind::map) {
            ++count_;
        }
        if (anchor != 0) {
            anchors_[anchor] = anchored{n, 1};
        }
        if (stack_.empty()) {
            root = std::move(n);
            return;
        }
        auto& top = stack_.back();
        if (top.node.type == yaml_node::kind::sequence) {
            top.node.items.push_back(std::move(n));
        } else if (!top.pending_key) {
            top.pending_key = std::move(n);
        } else {
            // An empty value's mark is the next token, often on a later line: place it at its key instead.
            if (n.is_null()) {
                n.where = top.pending_key->where;
            }
            top.node.entries.emplace_back(std::move(*top.pending_key), std::move(n));
            top.pending_key.reset();
        }
    }

    std::size_t max_nodes_;
    std::size_t count_ = 0;
    std::size_t aliased_ = 0;  // the part of count_ that aliases added
    std::vector<open_node> stack_;
    std::map<YAML::anchor_t, anchored> anchors_;
};

}  // namespace

std::optional<yaml_node> parse_yaml(std::istream& in, yaml_error& error, std::size_t max_nodes)
{
    tree_builder builder(max_nodes);
    try {
        YAML::Parser parser(in);
        while (parser.HandleNextDocument(builder)) {
            if (builder.documents > 1) {
                error = {builder.second_document, "more than one YAML document: expected exactly one"};
                return std::nullopt;
            }
        }
    } catch (const YAML::Exception& e) {
        std::string hint;
        // In YAML an unquoted *name is an alias; wildcard domains are the usual way to trip over it.
        if (e.msg.find("anchor") != std::string::npos) {
            hint = " (a wildcard domain must be quoted: \"*.example.com\")";
        }
        error = {to_mark(e.mark), "YAML syntax error: " + e.msg + hint};
        return std::nullopt;
    } catch (const too_many_nodes& e) {
        error = {e.where, e.message};
        return std::nullopt;
    }
    if (!builder.root) {
        error = {mark{1, 1}, "empty document: expected a mapping"};
        return std::nullopt;
    }
    return std::move(builder.root);
}

}  // namespace egressd::config
