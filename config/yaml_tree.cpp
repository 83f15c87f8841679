#include "config/yaml_tree.hpp"

#include "protocol/utf8.hpp"

#include <libfyaml.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <map>
#include <memory>
#include <streambuf>
#include <unordered_map>

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

// 0 means no anchor, as in yaml-cpp.
using anchor_id = std::size_t;

// Builds the tree from either parser's events: a stack of open collections; a map collects alternating key
// and value nodes.
class tree_builder {
public:
    explicit tree_builder(std::size_t max_nodes) : max_nodes_(max_nodes) {}

    std::optional<yaml_node> root;
    int documents = 0;
    mark second_document;

    void document(mark m)
    {
        if (++documents == 2) {
            second_document = m;
        }
    }

    void null(mark m, anchor_id anchor)
    {
        yaml_node n;
        n.where = m;
        add(std::move(n), anchor);
    }

    // False when the anchor is unknown (the caller decides whether that is an error).
    bool alias(mark m, anchor_id anchor)
    {
        auto it = anchors_.find(anchor);
        std::size_t size = it == anchors_.end() ? 1 : it->second.size;
        // Charged before the copy is made, so that an expansion over budget never allocates.
        count_ += size;
        aliased_ += size;
        check_budget(m);
        yaml_node n = it == anchors_.end() ? yaml_node{} : it->second.node;
        n.where = m;
        add(std::move(n), 0, false);
        return it != anchors_.end();
    }

    void scalar(mark m, bool plain, std::string value, anchor_id anchor)
    {
        yaml_node n;
        n.type = yaml_node::kind::scalar;
        n.plain = plain;
        n.where = m;
        n.value = std::move(value);
        add(std::move(n), anchor);
    }

    // Whether the next node is a map's key.
    bool in_map_key() const
    {
        return !stack_.empty() && stack_.back().node.type == yaml_node::kind::map && !stack_.back().pending_key;
    }
    // Whether the next node completes a map entry (it is a value, not a key or a sequence item).
    bool in_map_value() const
    {
        return !stack_.empty() && stack_.back().node.type == yaml_node::kind::map && stack_.back().pending_key;
    }
    // The key the next node is the value of, if it is one.
    std::optional<mark> pending_key_at() const
    {
        return in_map_value() ? std::optional<mark>(stack_.back().pending_key->where) : std::nullopt;
    }

    void open(yaml_node::kind type, mark m, anchor_id anchor)
    {
        ++count_;
        check_budget(m);
        yaml_node n;
        n.type = type;
        n.where = m;
        if (type == yaml_node::kind::map) {
            // Rules and clients mostly hold two keys: room for both at once saves a reallocation.
            n.entries.reserve(2);
        }
        stack_.push_back(open_node{std::move(n), anchor, count_, std::nullopt});
    }

    // Moves the innermost open collection's position (an implicit map in a flow sequence, placed at its key).
    void place_open(mark m) { stack_.back().node.where = m; }

    void close()
    {
        auto& top = stack_.back();
        std::size_t size = count_ - top.count_at_start + 1;
        if (top.anchor != 0) {
            anchors_[top.anchor] = anchored{top.node, size};
        }
        yaml_node node = std::move(top.node);
        stack_.pop_back();
        add(std::move(node), 0, false);
    }

private:
    struct open_node {
        yaml_node node;
        anchor_id anchor;
        std::size_t count_at_start;
        std::optional<yaml_node> pending_key;
    };
    struct anchored {
        yaml_node node;
        std::size_t size;
    };

    void check_budget(mark m) const
    {
        if (count_ > max_nodes_) {
            throw too_many_nodes{m, "aliases expand to more than " + std::to_string(max_nodes_) + " nodes"};
        }
        std::size_t alias_budget = std::max(alias_allowance, count_ - aliased_);
        if (aliased_ > alias_budget) {
            throw too_many_nodes{m, "aliases expand to more than " + std::to_string(alias_budget) +
                                        " nodes: at most " + std::to_string(alias_allowance) +
                                        ", or as many as the document writes out"};
        }
    }

    void add(yaml_node&& n, anchor_id anchor, bool counted = true)
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
            top.node.entries.push_back(yaml_entry{std::move(*top.pending_key), std::move(n)});
            top.pending_key.reset();
        }
    }

    std::size_t max_nodes_;
    std::size_t count_ = 0;
    std::size_t aliased_ = 0;  // the part of count_ that aliases added
    std::vector<open_node> stack_;
    std::map<anchor_id, anchored> anchors_;
};

// --- yaml-cpp: the reference, and the source of every syntax error message ------------------------------------

class yaml_cpp_events : public YAML::EventHandler {
public:
    explicit yaml_cpp_events(tree_builder& tree) : tree_(tree) {}

    void OnDocumentStart(const YAML::Mark& m) override { tree_.document(to_mark(m)); }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark& m, YAML::anchor_t anchor) override { tree_.null(to_mark(m), anchor); }
    void OnAlias(const YAML::Mark& m, YAML::anchor_t anchor) override { tree_.alias(to_mark(m), anchor); }
    void OnScalar(const YAML::Mark& m, const std::string& tag, YAML::anchor_t anchor, const std::string& value) override
    {
        tree_.scalar(to_mark(m), tag == "?", value, anchor);
    }
    void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t anchor,
                         YAML::EmitterStyle::value) override
    {
        tree_.open(yaml_node::kind::sequence, to_mark(m), anchor);
    }
    void OnSequenceEnd() override { tree_.close(); }
    void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t anchor, YAML::EmitterStyle::value) override
    {
        tree_.open(yaml_node::kind::map, to_mark(m), anchor);
    }
    void OnMapEnd() override { tree_.close(); }

private:
    tree_builder& tree_;
};

// An istream over text already in memory, without a copy.
class view_buffer : public std::streambuf {
public:
    explicit view_buffer(std::string_view text)
    {
        // The get area is never written through: std::streambuf only takes non-const pointers.
        char* begin = const_cast<char*>(text.data());
        setg(begin, begin, begin + text.size());
    }
};

// The position in text nearest to m: yaml-cpp reports an escape cut off by the end of the input one column past
// the last byte, and an error there must still name a place in the file.
mark within_text(std::string_view text, mark m)
{
    std::uint32_t line = 1;
    std::size_t start = 0;
    for (std::size_t i = 0; i < text.size() && line < m.line; ++i) {
        if (text[i] == '\n') {
            ++line;
            start = i + 1;
        }
    }
    auto end = text.find('\n', start);
    auto length = (end == std::string_view::npos ? text.size() : end) - start;
    return mark{line, std::min<std::uint32_t>(std::max<std::uint32_t>(m.column, 1),
                                              static_cast<std::uint32_t>(length + 1))};
}

// yaml-cpp's messages quote the offending byte as it is: its end-of-input sentinel (0x04), a control character,
// or the first byte of a UTF-8 sequence, none of which belongs in a log line or a reload answer.
std::string printable_message(std::string_view msg)
{
    std::string named;
    for (char c : msg) {
        named += c == '\x04' ? std::string("the end of the input") : std::string(1, c);
    }
    return protocol::escape_controls(named);
}

std::optional<yaml_node> parse_with_yaml_cpp(std::string_view text, yaml_error& error, std::size_t max_nodes)
{
    tree_builder tree(max_nodes);
    yaml_cpp_events events(tree);
    try {
        view_buffer buffer(text);
        std::istream in(&buffer);
        YAML::Parser parser(in);
        while (parser.HandleNextDocument(events)) {
            if (tree.documents > 1) {
                error = {tree.second_document, "more than one YAML document: expected exactly one"};
                return std::nullopt;
            }
        }
    } catch (const YAML::Exception& e) {
        std::string hint;
        // In YAML an unquoted *name is an alias; wildcard domains are the usual way to trip over it.
        if (e.msg.find("anchor") != std::string::npos) {
            hint = " (a wildcard domain must be quoted: \"*.example.com\")";
        }
        error = {within_text(text, to_mark(e.mark)), "YAML syntax error: " + printable_message(e.msg) + hint};
        return std::nullopt;
    } catch (const too_many_nodes& e) {
        error = {e.where, e.message};
        return std::nullopt;
    }
    if (!tree.root) {
        error = {mark{1, 1}, "empty document: expected a mapping"};
        return std::nullopt;
    }
    return std::move(tree.root);
}

// --- libfyaml: the fast path ------------------------------------------------------------------------------------

// yaml-cpp reads these plain, untagged scalars as null (its IsNullString).
bool is_null_text(std::string_view s) { return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL"; }

struct parser_deleter {
    void operator()(fy_parser* p) const { fy_parser_destroy(p); }
};
struct diag_deleter {
    void operator()(fy_diag* d) const { fy_diag_destroy(d); }
};
struct event_deleter {
    fy_parser* parser;
    void operator()(fy_event* e) const { fy_parser_event_free(parser, e); }
};

// Why the fast path gave up: the reference parser then decides, and words any error as it always has.
struct not_handled {};

// Marks as yaml-cpp counts them: 1-based lines, and columns in bytes from the line's start (libfyaml counts
// characters). Events arrive in file order, so each line's start is found once.
class mark_reader {
public:
    explicit mark_reader(std::string_view text) : text_(text) {}

    mark at(const fy_mark& m)
    {
        if (m.line != line_ || m.input_pos < line_start_) {
            std::size_t pos = std::min(m.input_pos, text_.size());
            const void* nl = pos == 0 ? nullptr : ::memrchr(text_.data(), '\n', pos);
            line_start_ = nl == nullptr ? 0 : static_cast<std::size_t>(static_cast<const char*>(nl) - text_.data()) + 1;
            line_ = m.line;
        }
        return mark{static_cast<std::uint32_t>(m.line + 1), static_cast<std::uint32_t>(m.input_pos - line_start_ + 1)};
    }

private:
    std::string_view text_;
    int line_ = -1;
    std::size_t line_start_ = 0;
};

void discard_diagnostic(fy_diag*, void*, const char*, std::size_t) {}

std::string_view token_text(fy_token* t)
{
    std::size_t len = 0;
    const char* s = fy_token_get_text(t, &len);
    return s == nullptr ? std::string_view() : std::string_view(s, len);
}

// A scalar's value with escapes and folded lines resolved. Not fy_token_get_text: libfyaml 0.8 leaks the
// iterator's chunk buffer when it formats a scalar of many chunks (found by fuzzing); the token iterator frees it.
std::string formatted_text(fy_token* t)
{
    std::string out;
    fy_token_iter* iter = fy_token_iter_create(t);
    if (iter == nullptr) {
        return out;
    }
    int error = 0;
    for (const fy_iter_chunk* chunk = fy_token_iter_chunk_next(iter, nullptr, &error); chunk != nullptr;
         chunk = fy_token_iter_chunk_next(iter, chunk, &error)) {
        out.append(chunk->str, chunk->len);
    }
    fy_token_iter_destroy(iter);
    if (error != 0) {
        throw not_handled{};
    }
    return out;
}

// How many CR and LF bytes the blank end of a scalar's text holds.
std::size_t trailing_break_bytes(std::string_view written)
{
    std::size_t breaks = 0;
    for (auto i = written.size(); i > 0 && std::string_view(" \t\r\n").find(written[i - 1]) != std::string_view::npos;
         --i) {
        breaks += written[i - 1] == ' ' || written[i - 1] == '\t' ? 0 : 1;
    }
    return breaks;
}

// A scalar's value. Formatting a copy of every scalar costs a fifth of the parse; a scalar on one line without
// escapes is its bytes in the input, and is read from there.
std::string scalar_text(fy_token* t, std::string_view input)
{
    const fy_mark* start = fy_token_start_mark(t);
    const fy_mark* end = fy_token_end_mark(t);
    if (start != nullptr && end != nullptr && start->line == end->line && start->input_pos < end->input_pos &&
        end->input_pos <= input.size()) {
        std::string_view raw = input.substr(start->input_pos, end->input_pos - start->input_pos);
        auto blank = [](char c) { return c == ' ' || c == '\t'; };
        switch (fy_token_scalar_style(t)) {
        case FYSS_PLAIN:
            if (!blank(raw.front()) && !blank(raw.back())) {
                return std::string(raw);
            }
            break;
        case FYSS_SINGLE_QUOTED: {
            // The token spans the text between the quotes, where each quote is the first of a '' that stands for
            // one. Read here, not by libfyaml: 0.7 reads "''''" inside quotes as three quotes (found by fuzzing).
            std::string out;
            out.reserve(raw.size());
            for (std::size_t i = 0; i < raw.size(); ++i) {
                out += raw[i];
                if (raw[i] == '\'') {
                    ++i;
                }
            }
            return out;
        }
        case FYSS_DOUBLE_QUOTED:
            if (raw.find_first_of("\\\"") == std::string_view::npos) {
                return std::string(raw);
            }
            break;
        default:
            break;
        }
    }
    if (fy_token_scalar_style(t) == FYSS_SINGLE_QUOTED && start != nullptr && end != nullptr) {
        auto first = std::min(start->input_pos, input.size());
        if (input.substr(first, std::min(end->input_pos, input.size()) - first).find("''") != std::string_view::npos) {
            // The same quotes over several lines: the reference reads them.
            throw not_handled{};
        }
    }
    return formatted_text(t);
}

// Turns libfyaml's events into the tree; throws not_handled for anything the reference must judge.
class fy_events {
public:
    fy_events(std::string_view text, tree_builder& tree) : text_(text), marks_(text), tree_(tree) {}

    void run(fy_parser* parser)
    {
        for (;;) {
            std::unique_ptr<fy_event, event_deleter> e(fy_parser_parse(parser), event_deleter{parser});
            if (!e) {
                break;
            }
            handle(*e);
            if (tree_.documents > 1) {
                return;
            }
        }
        if (fy_parser_get_stream_error(parser)) {
            throw not_handled{};
        }
    }

private:
    // A node's position is its first token's, as in yaml-cpp: an anchor or tag written before it counts.
    // libfyaml starts anchor, alias and quoted scalar tokens after their indicator ('&', '*', the quote);
    // yaml-cpp at it, one byte before on the same line.
    mark node_mark(fy_event& e, fy_token* anchor, fy_token* tag, fy_token* value = nullptr)
    {
        std::optional<fy_mark> first;
        auto consider = [&](fy_token* t, std::size_t indicator) {
            const fy_mark* m = t == nullptr ? nullptr : fy_token_start_mark(t);
            if (m == nullptr || m->input_pos < indicator) {
                return;
            }
            fy_mark at = *m;
            at.input_pos -= indicator;
            if (!first || at.input_pos < first->input_pos) {
                first = at;
            }
        };
        if (e.type == FYET_ALIAS) {
            consider(e.alias.anchor, 1);
        } else if (value != nullptr) {
            auto style = fy_token_scalar_style(value);
            consider(value, style == FYSS_SINGLE_QUOTED || style == FYSS_DOUBLE_QUOTED ? 1 : 0);
        } else if (const fy_mark* m = fy_event_start_mark(&e)) {
            first = *m;
        }
        consider(anchor, 1);
        consider(tag, 0);
        if (!first) {
            // An empty value: inside a map the tree places it at its key; a sequence's empty item is left to
            // the reference, which places it at the token after it.
            return last_;
        }
        last_ = marks_.at(*first);
        if (map_at_next_node_) {
            tree_.place_open(last_);
            map_at_next_node_ = false;
        }
        return last_;
    }

    // yaml-cpp writes "\N" and "\_" as single bytes, not UTF-8 as YAML and libfyaml do, and refuses a UTF-16
    // surrogate ("\ud83d\ude00"), which libfyaml pairs as JSON does (found by fuzzing): a double-quoted scalar with
    // an escape outside those both read alike goes to the reference.
    static void refuse_unshared_escapes(std::string_view written)
    {
        for (auto at = written.find('\\'); at != std::string_view::npos && at + 1 < written.size();
             at = written.find('\\', at + 2)) {
            char escape = written[at + 1];
            bool surrogate = escape == 'u' && at + 3 < written.size() &&
                             (written[at + 2] == 'd' || written[at + 2] == 'D') &&
                             std::string_view("89abcdefABCDEF").find(written[at + 3]) != std::string_view::npos;
            if (surrogate || std::string_view("0abtnvfre \"/\\xuU\t\r\n").find(escape) == std::string_view::npos) {
                throw not_handled{};
            }
        }
    }

    // Where a collection that is a map's key starts, npos for any other.
    std::size_t key_start(fy_event& e) const
    {
        const fy_mark* start = fy_event_start_mark(&e);
        return tree_.in_map_key() && start != nullptr ? start->input_pos : std::string_view::npos;
    }

    // YAML 1.2 allows an implicit key 1024 characters: yaml-cpp refuses a longer one, libfyaml reads it (found by
    // fuzzing). A key near that long goes to the reference, which judges it.
    static void refuse_long_key(std::size_t start, const fy_mark* end)
    {
        constexpr std::size_t longest_key = 1000;
        if (start != std::string_view::npos && end != nullptr && end->input_pos > start &&
            end->input_pos - start > longest_key) {
            throw not_handled{};
        }
    }

    // The column of a block sequence's '-', 0 for any other collection.
    std::uint32_t block_sequence_column(fy_event& e)
    {
        fy_token* t = e.sequence_start.sequence_start;
        const fy_mark* start = t == nullptr ? nullptr : fy_token_start_mark(t);
        if (start == nullptr || fy_token_get_type(t) != FYTT_BLOCK_SEQUENCE_START) {
            return 0;
        }
        return marks_.at(*start).column;
    }

    // An item of a block sequence starts right of its '-': libfyaml takes the "[x]" of "-\n[x]" and the "b" of
    // "- a\n-\nb" as items, yaml-cpp ends the sequence there (found by fuzzing). The reference judges such text.
    // indicator: the bytes of '*' or a quote before where libfyaml starts the token.
    void refuse_outdented_item(const fy_mark* written, std::size_t indicator)
    {
        if (written == nullptr || block_sequence_columns_.empty() || block_sequence_columns_.back() == 0) {
            return;
        }
        fy_mark at = *written;
        at.input_pos -= std::min(indicator, at.input_pos);
        if (marks_.at(at).column <= block_sequence_columns_.back()) {
            throw not_handled{};
        }
    }

    // A plain key glued to its ':' and a flow collection ("{a:[b]}"): libfyaml reads a pair, yaml-cpp refuses it
    // (found by fuzzing). The reference judges such text.
    void refuse_glued_value(const fy_mark* end) const
    {
        if (end == nullptr) {
            return;
        }
        std::size_t at = std::min(end->input_pos, text_.size());
        while (at < text_.size() && (text_[at] == ' ' || text_[at] == '\t')) {
            ++at;
        }
        if (at + 1 < text_.size() && text_[at] == ':' &&
            std::string_view(" \t\r\n").find(text_[at + 1]) == std::string_view::npos) {
            throw not_handled{};
        }
    }

    // A single pair in a flow sequence ("[a: b]") is a map without a '{': libfyaml places it at its ':', yaml-cpp
    // at its key (found by fuzzing), so it takes the position of the node that comes next, its key.
    static bool is_implicit_pair(fy_event& e)
    {
        fy_token* t = e.mapping_start.mapping_start;
        const fy_mark* start = t == nullptr ? nullptr : fy_token_start_mark(t);
        const fy_mark* end = t == nullptr ? nullptr : fy_token_end_mark(t);
        return start != nullptr && end != nullptr && start->input_pos == end->input_pos &&
               fy_token_get_type(t) == FYTT_FLOW_MAPPING_START;
    }

    // Policies need no tags, and the two parsers disagree on their corners ("!x,y", "!a/b!x", a bare "!"; all
    // found by fuzzing): text with a tag goes to the reference.
    static void refuse_tag(const fy_token* tag)
    {
        if (tag != nullptr) {
            throw not_handled{};
        }
    }

    // An anchor or alias name ends at a flow indicator: libfyaml reads "&a[1]" as an anchored sequence, yaml-cpp
    // refuses a '[' or '{' there (found by fuzzing; YAML wants a space). The reference judges such text.
    void refuse_glued_name(fy_token* name) const
    {
        const fy_mark* end = fy_token_end_mark(name);
        if (end == nullptr || end->input_pos >= text_.size()) {
            return;
        }
        if (std::string_view(" \t\r\n,]}").find(text_[end->input_pos]) == std::string_view::npos) {
            throw not_handled{};
        }
    }

    anchor_id define(fy_token* anchor)
    {
        if (anchor == nullptr) {
            return 0;
        }
        refuse_glued_name(anchor);
        anchor_id id = ++defined_;
        anchors_[std::string(token_text(anchor))] = id;
        return id;
    }

    void handle(fy_event& e)
    {
        switch (e.type) {
        case FYET_DOCUMENT_START: {
            const fy_mark* m = fy_event_start_mark(&e);
            tree_.document(m == nullptr ? mark{1, 1} : marks_.at(*m));
            break;
        }
        case FYET_MAPPING_START:
            refuse_tag(e.mapping_start.tag);
            refuse_outdented_item(fy_event_start_mark(&e), 0);
            key_starts_.push_back(key_start(e));
            tree_.open(yaml_node::kind::map, node_mark(e, e.mapping_start.anchor, e.mapping_start.tag),
                       define(e.mapping_start.anchor));
            map_at_next_node_ = is_implicit_pair(e);
            block_sequence_columns_.push_back(0);
            break;
        case FYET_SEQUENCE_START:
            refuse_tag(e.sequence_start.tag);
            refuse_outdented_item(fy_event_start_mark(&e), 0);
            key_starts_.push_back(key_start(e));
            tree_.open(yaml_node::kind::sequence, node_mark(e, e.sequence_start.anchor, e.sequence_start.tag),
                       define(e.sequence_start.anchor));
            block_sequence_columns_.push_back(block_sequence_column(e));
            break;
        case FYET_MAPPING_END:
        case FYET_SEQUENCE_END:
            refuse_long_key(key_starts_.back(), fy_event_end_mark(&e));
            tree_.close();
            block_sequence_columns_.pop_back();
            key_starts_.pop_back();
            break;
        case FYET_SCALAR:
            scalar(e);
            break;
        case FYET_ALIAS: {
            refuse_glued_name(e.alias.anchor);
            refuse_outdented_item(fy_token_start_mark(e.alias.anchor), 1);
            auto it = anchors_.find(std::string(token_text(e.alias.anchor)));
            // An unknown anchor is a syntax error (often an unquoted wildcard): the reference words it.
            if (it == anchors_.end() || !tree_.alias(node_mark(e, nullptr, nullptr), it->second)) {
                throw not_handled{};
            }
            break;
        }
        default:
            break;
        }
    }

    void scalar(fy_event& e)
    {
        fy_token* value = e.scalar.value;
        fy_token* tag = e.scalar.tag;
        refuse_tag(tag);
        auto style = fy_token_scalar_style(value);
        if (style == FYSS_LITERAL || style == FYSS_FOLDED) {
            // libfyaml places a block scalar at its first line, yaml-cpp at its '|' or '>': rare in policies,
            // so the reference reads such a file.
            throw not_handled{};
        }
        const fy_mark* start = fy_token_start_mark(value);
        const fy_mark* end = fy_token_end_mark(value);
        if (start != nullptr && end != nullptr && start->line != end->line) {
            // An implicit key is one line (YAML 1.2, 7.4.2): yaml-cpp refuses "[{a: 1, p\norts: 2}]", which
            // libfyaml reads as the key "p orts". And yaml-cpp refuses a tab that starts a continuation line
            // ("a: 1\n\t b"), which libfyaml folds into "1 b". yaml-cpp also refuses most anchored plain scalars
            // that go on to another line ("- &a 1\n  b", found by fuzzing), which YAML allows. And yaml-cpp keeps
            // one line break of the empty lines before a closing quote ("'a\n\n\n'"), libfyaml all as YAML says,
            // and libfyaml keeps a CRLF there ("'a\r\n'") where yaml-cpp folds it into a space (found by fuzzing).
            auto first = std::min(start->input_pos, text_.size());
            auto written = text_.substr(first, std::min(end->input_pos, text_.size()) - first);
            bool quoted = style == FYSS_SINGLE_QUOTED || style == FYSS_DOUBLE_QUOTED;
            if (tree_.in_map_key() || written.find("\n\t") != std::string_view::npos ||
                (e.scalar.anchor != nullptr && style == FYSS_PLAIN) || (quoted && trailing_break_bytes(written) > 1)) {
                throw not_handled{};
            }
        }
        if (const fy_mark* anchored = e.scalar.anchor == nullptr ? nullptr : fy_token_start_mark(e.scalar.anchor);
            anchored != nullptr && start != nullptr && anchored->line < start->line) {
            // An anchor on an earlier line than its scalar: libfyaml takes "a: &x\nb" as a: b and "- &x\nb" as the
            // item b, yaml-cpp refuses them or reads b as a key (found by fuzzing). Rare in a policy.
            throw not_handled{};
        }
        if (start != nullptr) {
            refuse_outdented_item(start, style == FYSS_SINGLE_QUOTED || style == FYSS_DOUBLE_QUOTED ? 1 : 0);
        }
        if (style == FYSS_PLAIN && tree_.in_map_key()) {
            refuse_glued_value(end);
        }
        if (start != nullptr && tree_.in_map_key()) {
            refuse_long_key(start->input_pos, end);
        }
        bool has_mark = fy_event_start_mark(&e) != nullptr;
        if (!has_mark && e.scalar.anchor != nullptr) {
            // An anchor on nothing: libfyaml gives "a:\n&x" to a's empty value, yaml-cpp reads an anchored empty
            // key on the second line (found by fuzzing). The reference judges such text.
            throw not_handled{};
        }
        mark where = node_mark(e, e.scalar.anchor, tag, value);
        if (auto key = tree_.pending_key_at();
            has_mark && key && where.line > key->line && where.column <= key->column) {
            // A scalar value on a later line must be indented past its key: libfyaml takes "a:\nb" as a: b,
            // yaml-cpp as two keys. The reference judges such text.
            throw not_handled{};
        }
        if (style == FYSS_DOUBLE_QUOTED && start != nullptr && end != nullptr) {
            refuse_unshared_escapes(text_.substr(std::min(start->input_pos, text_.size()),
                                                 end->input_pos - std::min(start->input_pos, end->input_pos)));
        }
        anchor_id anchor = define(e.scalar.anchor);
        std::string text = scalar_text(value, text_);
        if (style == FYSS_PLAIN && text.find('?') != std::string::npos) {
            // libfyaml reads "[192?.0.2.0/24]" as one plain scalar, yaml-cpp refuses the '?' there (found by
            // fuzzing). Never in a sane policy, so the reference judges such text.
            throw not_handled{};
        }
        bool plain = style == FYSS_PLAIN;
        if (plain && is_null_text(text)) {
            if (!has_mark && !tree_.in_map_value()) {
                throw not_handled{};
            }
            tree_.null(where, anchor);
            return;
        }
        tree_.scalar(where, plain, std::move(text), anchor);
    }

    std::string_view text_;
    mark_reader marks_;
    tree_builder& tree_;
    mark last_{1, 1};
    bool map_at_next_node_ = false;
    std::vector<std::uint32_t> block_sequence_columns_;  // per open collection, see block_sequence_column
    std::vector<std::size_t> key_starts_;                // per open collection, see key_start
    anchor_id defined_ = 0;
    std::unordered_map<std::string, anchor_id> anchors_;
};

// YAML text is printable UTF-8 (YAML 1.2, c-printable): the two parsers read a control character, a NUL byte
// or a malformed sequence differently (libfyaml ends the scalar or the key, yaml-cpp keeps or rewrites the
// bytes), so neither may see one. The first one is an error at its position.
bool refuse_unreadable_text(std::string_view text, yaml_error& error)
{
    std::uint32_t line = 1;
    std::size_t line_start = 0;
    for (std::size_t i = 0; i < text.size();) {
        auto c = static_cast<unsigned char>(text[i]);
        auto where = mark{line, static_cast<std::uint32_t>(i - line_start + 1)};
        if (c == '\n') {
            ++line;
            line_start = i + 1;
        } else if (c == '\r' && (i + 1 == text.size() || text[i + 1] != '\n')) {
            // YAML breaks the line at a lone CR where most editors and this count do not: "# note\r0: x" would
            // hide the key 0 inside a comment, and positions after it would point at the wrong line.
            error = {where, "carriage return without a line feed: expected LF or CRLF line ends"};
            return true;
        } else if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f) {
            char code[8];
            std::snprintf(code, sizeof code, "0x%02x", c);
            error = {where, std::string("control character ") + code + ": expected printable text"};
            return true;
        }
        auto length = protocol::utf8_sequence(text, i);
        if (length == 0) {
            error = {where, "invalid UTF-8: expected text in UTF-8"};
            return true;
        }
        i += length;
    }
    return false;
}

// What the two parsers read differently at a line's start (found by fuzzing): a tab in the indentation or after a
// block indicator (":: e\n\t"; "-\tx: 1", a map for libfyaml, an error for yaml-cpp), an explicit key ("?\nk",
// whose key libfyaml takes from the next line at the '?' column), a directive ("%") and a document end marker
// ("..."), an empty document for yaml-cpp where libfyaml sees none. None belongs in a policy.
bool has_unshared_line_start(std::string_view text)
{
    for (std::size_t start = 0; start < text.size();) {
        std::size_t end = text.find('\n', start);
        std::string_view line = text.substr(start, end == std::string_view::npos ? end : end - start);
        if (line.starts_with('%') || line.starts_with("...")) {
            return true;
        }
        for (std::size_t i = 0; i < line.size(); ++i) {
            char c = line[i];
            bool indicator = (c == '-' || c == '?' || c == ':') &&
                             (i + 1 == line.size() || line[i + 1] == ' ' || line[i + 1] == '\t' || line[i + 1] == '\r');
            if (c == '\t' || (c == '?' && indicator)) {
                return true;
            }
            if (c != ' ' && !indicator) {
                break;
            }
        }
        if (end == std::string_view::npos) {
            break;
        }
        start = end + 1;
    }
    return false;
}

// The tree, or nullopt when the reference must read the text: libfyaml found an error (the reference words it),
// or met what it cannot place exactly as yaml-cpp would.
std::optional<yaml_node> parse_with_libfyaml(std::string_view text, std::size_t max_nodes)
{
    // yaml-cpp counts the first line's columns after a UTF-8 byte order mark, libfyaml from the file's first byte.
    if (text.starts_with("\xEF\xBB\xBF")) {
        text.remove_prefix(3);
    }
    if (text.find("\xEF\xBB\xBF") != std::string_view::npos) {
        // A byte order mark further on: libfyaml skips it like a space, yaml-cpp keeps it in a scalar (found by
        // fuzzing). Never in a sane policy, so the reference judges such text.
        return std::nullopt;
    }
    if (has_unshared_line_start(text)) {
        return std::nullopt;
    }
    fy_diag_cfg diag_cfg;
    fy_diag_cfg_default(&diag_cfg);
    diag_cfg.fp = nullptr;
    diag_cfg.output_fn = discard_diagnostic;
    std::unique_ptr<fy_diag, diag_deleter> diag(fy_diag_create(&diag_cfg));
    if (diag) {
        // Errors are collected, never displayed: libfyaml 0.7 crashes drawing the source line under some errors
        // (an unterminated quote far along a long flow line, found by fuzzing), and the reference words them anyway.
        fy_diag_set_collect_errors(diag.get(), true);
    }
    fy_parse_cfg cfg{};
    cfg.flags = static_cast<fy_parse_cfg_flags>(FYPCF_QUIET | FYPCF_DEFAULT_VERSION_AUTO);
    cfg.diag = diag.get();
    std::unique_ptr<fy_parser, parser_deleter> parser(fy_parser_create(&cfg));
    if (!diag || !parser || fy_parser_set_string(parser.get(), text.data(), text.size()) != 0) {
        return std::nullopt;
    }
    tree_builder tree(max_nodes);
    try {
        fy_events(text, tree).run(parser.get());
    } catch (const not_handled&) {
        return std::nullopt;
    } catch (const too_many_nodes&) {
        // The two parsers may disagree on the text before the alias that goes over budget, so the reference
        // places the error; its budget stops it as early.
        return std::nullopt;
    }
    // A second document: the fast path stops there; the reference reads on, and a syntax error there comes first
    // in its words. No document: yaml-cpp reads a lone "..." as an empty one, and words the error.
    if (tree.documents > 1 || !tree.root) {
        return std::nullopt;
    }
    return std::move(tree.root);
}

}  // namespace

std::optional<yaml_node> parse_yaml(std::string_view text, yaml_error& error, std::size_t max_nodes,
                                    yaml_engine engine)
{
    if (refuse_unreadable_text(text, error)) {
        return std::nullopt;
    }
    if (engine == yaml_engine::libfyaml) {
        if (auto fast = parse_with_libfyaml(text, max_nodes)) {
            return fast;
        }
    }
    return parse_with_yaml_cpp(text, error, max_nodes);
}

std::optional<yaml_node> parse_yaml(std::istream& in, yaml_error& error, std::size_t max_nodes)
{
    std::string text(std::istreambuf_iterator<char>(in), {});
    return parse_yaml(text, error, max_nodes);
}

}  // namespace egressd::config
