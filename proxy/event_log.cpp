#include "proxy/event_log.hpp"

#include "config/rfc3339.hpp"
#include "policy/address.hpp"
#include "proxy/json.hpp"

#include <spdlog/async.h>
#include <spdlog/async_logger.h>
#include <spdlog/details/file_helper.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/base_sink.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <initializer_list>
#include <mutex>
#include <stdexcept>
#include <syslog.h>
#include <type_traits>

namespace egressd::proxy {
namespace {

// spdlog's stdout sink flushes after every line: a write(2) per event. This one lets stdio's buffer fill;
// the server flushes every 200 ms and on warnings, so events still appear promptly.
class buffered_stdout_sink final : public spdlog::sinks::base_sink<std::mutex> {
protected:
    void sink_it_(const spdlog::details::log_msg& msg) override
    {
        spdlog::memory_buf_t formatted;
        formatter_->format(msg, formatted);
        std::fwrite(formatted.data(), 1, formatted.size(), stdout);
    }
    void flush_() override { std::fflush(stdout); }
};

// Workers hand over batches of lines as one message; syslog must still get one message per event.
class line_syslog_sink final : public spdlog::sinks::base_sink<std::mutex> {
public:
    explicit line_syslog_sink(std::string ident) : ident_(std::move(ident)) { ::openlog(ident_.c_str(), LOG_PID, LOG_DAEMON); }
    ~line_syslog_sink() override { ::closelog(); }

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override
    {
        int priority = msg.level >= spdlog::level::warn ? LOG_WARNING : LOG_INFO;
        std::string_view rest(msg.payload.data(), msg.payload.size());
        while (!rest.empty()) {
            auto end = rest.find('\n');
            auto line = rest.substr(0, end);
            ::syslog(priority, "%.*s", static_cast<int>(line.size()), line.data());
            rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
        }
    }
    void flush_() override {}

private:
    std::string ident_;  // openlog keeps the pointer
};

void append_utc_millis(std::string& out, std::chrono::system_clock::time_point t)
{
    using namespace std::chrono;
    auto millis = floor<milliseconds>(t);
    auto second = floor<seconds>(millis);
    // Every event formats the time: the date and time of day are formatted once per second and thread, the
    // milliseconds written into that.
    thread_local sys_seconds cached_second = sys_seconds::min();
    thread_local std::string cached;  // "2026-11-21T06:50:00.123Z"
    if (second != cached_second || cached.size() < 5) {
        cached = config::format_rfc3339(millis);
        cached_second = second;
    } else {
        auto ms = static_cast<unsigned>((millis - second).count());
        char* digits = cached.data() + cached.size() - 4;  // after the '.'
        digits[0] = static_cast<char>('0' + ms / 100);
        digits[1] = static_cast<char>('0' + ms / 10 % 10);
        digits[2] = static_cast<char>('0' + ms % 10);
    }
    out += cached;
}

// Appends ,"name":"value" (or a number) to a JSON object under construction: egressd's own format.
class json_line {
public:
    // instance: ,"instance":"..." already rendered.
    json_line(std::string_view event, std::string_view instance)
    {
        out_.reserve(512);
        out_ = "{\"time\":\"";
        append_utc_millis(out_, std::chrono::system_clock::now());
        out_ += '"';
        field("event", event);
        out_ += instance;
    }
    json_line& field(std::string_view name, std::string_view value)
    {
        out_ += ',';
        append_json_string(out_, name);
        out_ += ':';
        append_json_string(out_, value);
        return *this;
    }
    json_line& optional_field(std::string_view name, std::string_view value)
    {
        return value.empty() ? *this : field(name, value);
    }
    json_line& number(std::string_view name, std::uint64_t value)
    {
        out_ += ',';
        append_json_string(out_, name);
        out_ += ':';
        out_ += std::to_string(value);
        return *this;
    }
    json_line& null_or(std::string_view name, std::string_view value)
    {
        if (!value.empty()) {
            return field(name, value);
        }
        out_ += ',';
        append_json_string(out_, name);
        out_ += ":null";
        return *this;
    }
    json_line& raw(std::string_view name, std::string_view json)
    {
        out_ += ',';
        append_json_string(out_, name);
        out_ += ':';
        out_ += json;
        return *this;
    }
    // The line without its closing brace.
    std::string open() { return std::move(out_); }
    std::string done() { return std::move(out_) + "}"; }

private:
    std::string out_;
};

// A JSON object with nested objects, written front to back: ECS and OCSF lines.
class json_writer {
public:
    json_writer()
    {
        out_.reserve(1024);
        out_ += '{';
    }
    json_writer& open(std::string_view name)
    {
        key(name);
        out_ += '{';
        ++depth_;
        has_member_ &= ~(std::uint64_t{1} << depth_);
        return *this;
    }
    json_writer& close()
    {
        out_ += '}';
        --depth_;
        return *this;
    }
    json_writer& str(std::string_view name, std::string_view value)
    {
        key(name);
        append_json_string(out_, value);
        return *this;
    }
    json_writer& optional(std::string_view name, std::string_view value)
    {
        return value.empty() ? *this : str(name, value);
    }
    json_writer& null_or(std::string_view name, std::string_view value)
    {
        if (!value.empty()) {
            return str(name, value);
        }
        return raw(name, "null");
    }
    json_writer& num(std::string_view name, std::uint64_t value) { return raw(name, std::to_string(value)); }
    json_writer& raw(std::string_view name, std::string_view json)
    {
        key(name);
        out_ += json;
        return *this;
    }
    json_writer& list(std::string_view name, std::initializer_list<std::string_view> items)
    {
        key(name);
        out_ += '[';
        bool first = true;
        for (auto item : items) {
            if (!first) {
                out_ += ',';
            }
            first = false;
            append_json_string(out_, item);
        }
        out_ += ']';
        return *this;
    }
    // The text so far, objects still open.
    std::string take() { return std::move(out_); }

private:
    void key(std::string_view name)
    {
        auto bit = std::uint64_t{1} << depth_;
        if ((has_member_ & bit) != 0) {
            out_ += ',';
        }
        has_member_ |= bit;
        append_json_string(out_, name);
        out_ += ':';
    }

    std::string out_;
    unsigned depth_ = 0;
    std::uint64_t has_member_ = 0;  // bit d: the object open at depth d has a member already
};

}  // namespace

// spdlog's rotating_file_sink rotates by size (events.log -> events.1.log ...) but cannot reopen its file, which
// logrotate needs: after logrotate renames the file, egressd must start a new one at the configured path
// instead of writing on into the renamed one. Same rotation as spdlog's, plus a reopen that runs on the log
// writer thread at the next flush, so every line queued before the request reaches the old file first.
class reopenable_file_sink final : public spdlog::sinks::base_sink<std::mutex> {
public:
    reopenable_file_sink(std::string path, std::size_t max_bytes, std::size_t max_files)
        : path_(std::move(path)), max_bytes_(max_bytes), max_files_(max_files)
    {
        file_.open(path_);
        size_ = file_.size();
    }

    void request_reopen() { reopen_requested_ = true; }

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override
    {
        spdlog::memory_buf_t formatted;
        formatter_->format(msg, formatted);
        if (!open_) {
            // The last reopen failed (the directory was gone, say): try again rather than write nowhere.
            file_.open(path_);
            open_ = true;
            size_ = file_.size();
        }
        if (size_ + formatted.size() > max_bytes_) {
            file_.flush();
            if (file_.size() > 0) {
                rotate();
            }
        }
        file_.write(formatted);
        size_ += formatted.size();
    }

    void flush_() override
    {
        if (!open_) {
            return;
        }
        file_.flush();
        if (reopen_requested_.exchange(false)) {
            open_ = false;
            file_.reopen(false);
            open_ = true;
            size_ = file_.size();
        }
    }

private:
    void rotate()
    {
        using rotating = spdlog::sinks::rotating_file_sink<std::mutex>;
        file_.close();
        open_ = false;
        for (auto i = max_files_; i > 0; --i) {
            auto from = rotating::calc_filename(path_, i - 1);
            std::error_code ec;
            if (std::filesystem::exists(from, ec)) {
                std::filesystem::rename(from, rotating::calc_filename(path_, i), ec);
            }
        }
        // Truncated even when a rename failed, so that the file never grows beyond its limit.
        file_.open(path_, true);
        open_ = true;
        size_ = 0;
    }

    std::string path_;
    std::size_t max_bytes_;
    std::size_t max_files_;
    spdlog::details::file_helper file_;
    std::size_t size_ = 0;
    bool open_ = true;
    std::atomic<bool> reopen_requested_{false};
};

std::string format_utc_millis(std::chrono::system_clock::time_point t)
{
    std::string out;
    append_utc_millis(out, t);
    return out;
}

event_log::event_log(const config::logging_config& config, std::string product_version)
    : formatter_(config, std::move(product_version))
{
    pool_ = std::make_shared<spdlog::details::thread_pool>(config.queue_size, 1);
    std::vector<spdlog::sink_ptr> sinks;
    try {
        if (config.to_stdout) {
            sinks.push_back(std::make_shared<buffered_stdout_sink>());
        }
        if (config.file) {
            files_.push_back(std::make_shared<reopenable_file_sink>(config.file->path, config.file->max_bytes,
                                                                    config.file->max_files));
            sinks.push_back(files_.back());
        }
        if (config.syslog_ident) {
            sinks.push_back(std::make_shared<line_syslog_sink>(*config.syslog_ident));
        }
        main_ = std::make_shared<spdlog::async_logger>("egressd", sinks.begin(), sinks.end(), pool_,
                                                       spdlog::async_overflow_policy::overrun_oldest);
        if (config.deny_file) {
            files_.push_back(std::make_shared<reopenable_file_sink>(config.deny_file->path, config.deny_file->max_bytes,
                                                                    config.deny_file->max_files));
            deny_ = std::make_shared<spdlog::async_logger>("egressd-deny", files_.back(), pool_,
                                                           spdlog::async_overflow_policy::overrun_oldest);
        }
    } catch (const spdlog::spdlog_ex& e) {
        throw std::runtime_error(std::string("cannot open a log sink: ") + e.what());
    }
    for (const auto& logger : {main_, deny_}) {
        if (logger) {
            logger->set_pattern("%v");
            logger->set_level(spdlog::level::info);
            logger->flush_on(spdlog::level::warn);
        }
    }
}

event_log::~event_log() { flush(); }

void event_log::flush()
{
    main_->flush();
    if (deny_) {
        deny_->flush();
    }
}

void event_log::reopen_files()
{
    for (const auto& file : files_) {
        file->request_reopen();
    }
    // The flush travels through the writer's queue behind every line already queued, and reopens there.
    flush();
}

void event_log::write(const std::string& line, bool deny)
{
    main_->info(line);
    if (deny && deny_) {
        deny_->info(line);
    }
}

namespace {

constexpr std::string_view ecs_version = "8.11.0";
constexpr std::string_view ocsf_version = "1.1.0";
constexpr std::string_view product = "egressd";
// The longest attacker-chosen text (a user name tried, a certificate subject) an event carries.
constexpr std::size_t max_untrusted = 256;

std::string_view capped(std::string_view s) { return s.substr(0, std::min(s.size(), max_untrusted)); }

// "10.0.0.5:40000" or "[2001:db8::1]:40000": the address (without brackets) and the port; no port: 0.
std::pair<std::string_view, std::uint16_t> split_source(std::string_view source)
{
    auto colon = source.rfind(':');
    if (colon == std::string_view::npos) {
        return {source, 0};
    }
    auto ip = source.substr(0, colon);
    if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']') {
        ip = ip.substr(1, ip.size() - 2);
    }
    unsigned port = 0;
    for (char c : source.substr(colon + 1)) {
        if (c < '0' || c > '9' || port > 65535) {
            return {source, 0};
        }
        port = port * 10 + static_cast<unsigned>(c - '0');
    }
    return {ip, port > 65535 ? std::uint16_t{0} : static_cast<std::uint16_t>(port)};
}

// The host as asked, when it is an IP literal: its text without brackets.
std::optional<std::string_view> literal_of(std::string_view host)
{
    auto bare = host;
    if (bare.size() >= 2 && bare.front() == '[' && bare.back() == ']') {
        bare = bare.substr(1, bare.size() - 2);
    }
    if (policy::address::parse(bare)) {
        return bare;
    }
    return std::nullopt;
}

bool known(std::string_view s) { return !s.empty() && s != "-"; }

std::string_view identity_source_text(observe::identity_source s)
{
    return s == observe::identity_source::none ? std::string_view() : observe::to_string(s);
}

std::uint64_t epoch_millis()
{
    using namespace std::chrono;
    return static_cast<std::uint64_t>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

std::string rfc3339_now()
{
    std::string out;
    append_utc_millis(out, std::chrono::system_clock::now());
    return out;
}

// What every egress.* event says about the request and the destination, whatever its kind.
struct traffic_view {
    std::string_view request_id;
    std::string_view client;
    std::string_view source;
    std::string_view method;
    std::string_view host;
    std::uint16_t port = 0;
    std::string_view address;
    std::string_view identity;
    std::string_view sni;
    std::string_view rule_group;
    std::optional<std::uint32_t> rule_index;
    std::string_view rule_description;
};

template <typename Event>
traffic_view view_of(const Event& e)
{
    traffic_view v{e.request_id, e.client, e.source, e.method, e.host, e.port, e.address, {}, {}, {}, {}, {}};
    if constexpr (!std::is_same_v<Event, close_event>) {
        v.identity = e.identity;
        v.sni = e.sni;
        if (!e.rule_group.empty() && e.rule_index) {
            v.rule_group = e.rule_group;
            v.rule_index = e.rule_index;
            v.rule_description = e.rule_description;
        }
    }
    return v;
}

// --- egressd's own format ---------------------------------------------------------------------------------

// The fields every egress.* event starts with, in this order.
template <typename Event>
json_line& request_fields(json_line& j, const Event& e)
{
    return j.field("request_id", e.request_id)
        .null_or("client", e.client)
        .field("source", e.source)
        .field("method", e.method)
        .field("host", e.host)
        .number("port", e.port)
        .null_or("address", e.address);
}

// The deciding rule and who the client proved to be: decisions and revocations name both the same way.
template <typename Event>
json_line& rule_and_identity_fields(json_line& j, const Event& e)
{
    if (!e.rule_group.empty() && e.rule_index) {
        j.field("rule_group", e.rule_group).number("rule_index", *e.rule_index);
        j.optional_field("rule_description", e.rule_description);
    }
    return j.optional_field("identity", e.identity)
        .optional_field("identity_source", identity_source_text(e.identity_source));
}

// --- Elastic Common Schema ---------------------------------------------------------------------------------

// @timestamp, ecs and the event object up to (not including) its end.
void ecs_head(json_writer& w, std::string_view action, std::initializer_list<std::string_view> categories,
              std::initializer_list<std::string_view> types, std::string_view outcome, std::string_view reason,
              std::string_view id)
{
    w.str("@timestamp", rfc3339_now());
    w.open("ecs").str("version", ecs_version).close();
    w.open("event")
        .str("kind", "event")
        .list("category", categories)
        .list("type", types)
        .str("action", action)
        .optional("outcome", outcome)
        .optional("reason", reason)
        .optional("id", id)
        .str("dataset", "egressd.events")
        .str("provider", product);
}

void ecs_observer(json_writer& w, std::string_view instance)
{
    w.open("host").str("name", instance).close();
    w.open("observer").str("name", instance).str("product", product).str("vendor", product).str("type", "proxy").close();
}

// source, destination, user, tls, rule. bytes: close events' byte counts (source sent, destination sent).
void ecs_traffic(json_writer& w, const traffic_view& v, const std::uint64_t* bytes_from_client = nullptr,
                 const std::uint64_t* bytes_to_client = nullptr)
{
    auto [ip, source_port] = split_source(v.source);
    w.open("source").str("address", ip).str("ip", ip).num("port", source_port);
    if (bytes_from_client != nullptr) {
        w.num("bytes", *bytes_from_client);
    }
    w.close();
    if (known(v.host) || bytes_to_client != nullptr) {
        w.open("destination");
        if (known(v.host)) {
            w.str("address", v.host);
            if (!literal_of(v.host)) {
                w.str("domain", v.host);
            }
        }
        if (!v.address.empty()) {
            w.str("ip", v.address);
        } else if (auto literal = literal_of(v.host)) {
            w.str("ip", *literal);
        }
        if (v.port != 0) {
            w.num("port", v.port);
        }
        if (bytes_to_client != nullptr) {
            w.num("bytes", *bytes_to_client);
        }
        w.close();
    }
    if (!v.identity.empty()) {
        w.open("user").str("name", v.identity).close();
    }
    if (v.rule_index) {
        w.open("rule")
            .str("ruleset", v.rule_group)
            .str("id", std::string(v.rule_group) + "#" + std::to_string(*v.rule_index))
            .optional("description", v.rule_description)
            .close();
    }
}

// The rule_group and rule_index a reader needs whole: ECS's rule.id joins them.
void rule_fields(json_writer& w, const traffic_view& v)
{
    if (v.rule_index) {
        w.str("rule_group", v.rule_group).num("rule_index", *v.rule_index);
    }
}

// --- OCSF 1.1.0 --------------------------------------------------------------------------------------------

constexpr std::uint64_t http_activity = 4002;
constexpr std::uint64_t network_activity = 4001;

// HTTP Activity's activity_id is the method (OCSF 1.1.0 names eight; any other is 99 Other).
std::uint64_t http_activity_of(std::string_view method)
{
    constexpr std::array<std::string_view, 8> methods{"CONNECT", "DELETE", "GET",  "HEAD",
                                                      "OPTIONS", "POST",   "PUT", "TRACE"};
    for (std::size_t i = 0; i < methods.size(); ++i) {
        if (methods[i] == method) {
            return i + 1;
        }
    }
    return 99;
}

void ocsf_head(json_writer& w, std::uint64_t class_uid, std::uint64_t activity_id, std::uint64_t severity_id,
               std::uint64_t status_id, std::string_view request_id, std::string_view version)
{
    w.num("class_uid", class_uid)
        .num("category_uid", class_uid / 1000)
        .num("activity_id", activity_id)
        .num("type_uid", class_uid * 100 + activity_id)
        .num("time", epoch_millis())
        .num("severity_id", severity_id)
        .num("status_id", status_id);
    w.open("metadata").str("version", ocsf_version).optional("uid", request_id);
    w.open("product").str("name", product).str("vendor_name", product).optional("version", version).close();
    w.close();
}

// src_endpoint, dst_endpoint, actor, tls, the proxy's own endpoint, firewall_rule.
void ocsf_traffic(json_writer& w, const traffic_view& v, std::string_view instance)
{
    auto [ip, source_port] = split_source(v.source);
    w.open("src_endpoint").str("ip", ip).num("port", source_port).close();
    auto literal = literal_of(v.host);
    if (known(v.host)) {
        w.open("dst_endpoint");
        if (!literal) {
            w.str("hostname", v.host);
        }
        if (literal) {
            w.str("ip", *literal);
        } else if (!v.address.empty()) {
            w.str("ip", v.address);
        }
        if (v.port != 0) {
            w.num("port", v.port);
        }
        w.close();
    }
    if (!v.identity.empty()) {
        w.open("actor").open("user").str("name", v.identity).close().close();
    }
    w.open("proxy_endpoint").str("hostname", instance).close();
    if (v.rule_index) {
        w.open("firewall_rule")
            .str("name", v.rule_group)
            .str("uid", std::string(v.rule_group) + "#" + std::to_string(*v.rule_index))
            .optional("desc", v.rule_description)
            .close();
    }
}

// unmapped.egressd's start: what OCSF has no home for and a reader needs.
void ocsf_unmapped_start(json_writer& w, std::string_view event, const traffic_view& v)
{
    w.open("unmapped").open("egressd").str("event", event).null_or("client", v.client).str("host", v.host);
    if (!v.address.empty()) {
        w.str("address", v.address);
    }
    rule_fields(w, v);
}

}  // namespace

event_formatter::event_formatter(const config::logging_config& config, std::string product_version)
    : format_(config.format),
      instance_(config.instance),
      http_query_(config.http_query),
      product_version_(std::move(product_version))
{
    instance_field_ = ",\"instance\":" + json_string(instance_);
}

std::string event_formatter::line(const decision_event& e) const { return finish(open_line(e), e.status); }

open_decision event_formatter::open_line(const decision_event& e) const
{
    open_decision d;
    d.deny = for_deny_file(e.event);
    auto event = observe::to_string(e.event);
    auto reason = observe::to_string(e.reason);
    std::string_view query = http_query_ ? e.query : std::string_view();
    auto cert_subject = capped(e.cert_subject);
    auto user = capped(e.user);
    if (format_ == config::event_format::egressd) {
        json_line j(event, instance_field_);
        request_fields(j, e).field("reason", reason).field("mode", e.mode);
        rule_and_identity_fields(j, e)
            .optional_field("guard", e.guard)
            .optional_field("sni", e.sni)
            .optional_field("detail", e.detail)
            .optional_field("upstream", e.upstream);
        if (e.grant_id != 0) {
            j.number("grant_id", e.grant_id);
        }
        if (e.access_request != 0) {
            j.number("access_request", static_cast<std::uint64_t>(e.access_request));
        }
        j.optional_field("user", user)
            .optional_field("cert_subject", cert_subject)
            .optional_field("cert_serial", e.cert_serial)
            .optional_field("path", e.path)
            .optional_field("query", query);
        d.text = j.open();
        return d;
    }
    auto v = view_of(e);
    bool allowed = e.event == observe::event_kind::allow || e.event == observe::event_kind::would_deny;
    bool has_method = known(e.method);
    json_writer w;
    if (format_ == config::event_format::ecs) {
        std::string_view type = e.event == observe::event_kind::error ? "error" : allowed ? "allowed" : "denied";
        std::string_view outcome = allowed ? "success" : "failure";
        if (has_method) {
            ecs_head(w, event, {"network", "web"}, {type}, outcome, reason, e.request_id);
        } else {
            ecs_head(w, event, {"network"}, {type}, outcome, reason, e.request_id);
        }
        w.close();
        ecs_traffic(w, v);
        if (!e.sni.empty() || !cert_subject.empty() || !e.cert_serial.empty()) {
            w.open("tls").open("client").optional("server_name", e.sni).optional("subject", cert_subject);
            if (!e.cert_serial.empty()) {
                w.open("x509").str("serial_number", e.cert_serial).close();
            }
            w.close().close();
        }
        if (e.event == observe::event_kind::error) {
            w.open("error").str("code", reason).optional("message", e.detail).close();
        }
        if (!e.path.empty()) {
            w.open("url").str("scheme", "http").optional("domain", literal_of(e.host) ? std::string_view() : e.host);
            if (e.port != 0) {
                w.num("port", e.port);
            }
            w.str("path", e.path).optional("query", query).close();
        }
        ecs_observer(w, instance_);
        w.open("egressd").str("event", event).null_or("client", e.client).str("reason", reason).str("mode", e.mode);
        rule_fields(w, v);
        w.optional("identity_source", identity_source_text(e.identity_source))
            .optional("guard", e.guard)
            .optional("detail", e.detail)
            .optional("user", user)
            .optional("upstream", e.upstream);
        if (e.grant_id != 0) {
            w.num("grant_id", e.grant_id);
        }
        if (e.access_request != 0) {
            w.num("access_request", static_cast<std::uint64_t>(e.access_request));
        }
        w.close();
        if (has_method) {
            w.open("http").open("request").str("method", e.method).close();
            d.http_open = true;
        }
        d.text = w.take();
        return d;
    }
    std::uint64_t severity = e.event == observe::event_kind::allow ? 1 : e.event == observe::event_kind::deny ? 3 : 2;
    std::uint64_t action_id = allowed || e.event == observe::event_kind::error ? 1 : 2;
    // 1 Allowed, 2 Blocked, 15 Detected (report mode: seen, let through).
    std::uint64_t disposition_id = e.event == observe::event_kind::would_deny ? 15 : action_id == 1 ? 1 : 2;
    std::uint64_t status_id = allowed ? 1 : 2;
    if (has_method) {
        ocsf_head(w, http_activity, http_activity_of(e.method), severity, status_id, e.request_id, product_version_);
        if (http_activity_of(e.method) == 99) {
            w.str("activity_name", e.method);
        }
    } else {
        // Refused before any request (the TLS handshake or the client certificate): 5 Refuse.
        ocsf_head(w, network_activity, 5, severity, status_id, e.request_id, product_version_);
    }
    w.num("action_id", action_id).num("disposition_id", disposition_id).str("status_detail", reason);
    ocsf_traffic(w, v, instance_);
    if (!e.sni.empty() || !cert_subject.empty() || !e.cert_serial.empty()) {
        w.open("tls").optional("sni", e.sni);
        if (!cert_subject.empty() || !e.cert_serial.empty()) {
            w.open("certificate").optional("subject", cert_subject).optional("serial_number", e.cert_serial).close();
        }
        w.close();
    }
    if (has_method) {
        w.open("http_request").str("http_method", e.method);
        w.open("url").str("hostname", e.host);
        if (e.port != 0) {
            w.num("port", e.port);
        }
        if (!e.path.empty()) {
            w.str("scheme", "http").str("path", e.path).optional("query_string", query);
        }
        w.close().close();
    }
    ocsf_unmapped_start(w, event, v);
    if (!has_method) {
        w.str("method", e.method);
    }
    w.str("reason", reason)
        .str("mode", e.mode)
        .optional("identity_source", identity_source_text(e.identity_source))
        .optional("guard", e.guard)
        .optional("detail", e.detail)
        .optional("user", user)
        .optional("upstream", e.upstream);
    if (e.grant_id != 0) {
        w.num("grant_id", e.grant_id);
    }
    if (e.access_request != 0) {
        w.num("access_request", static_cast<std::uint64_t>(e.access_request));
    }
    w.close().close();
    d.text = w.take();
    return d;
}

std::string event_formatter::finish(open_decision&& d, int status) const
{
    std::string out = std::move(d.text);
    bool with_status = status > 0;
    switch (format_) {
    case config::event_format::egressd:
        if (with_status) {
            out += ",\"status\":" + std::to_string(status);
        }
        break;
    case config::event_format::ecs:
        if (d.http_open) {
            if (with_status) {
                out += ",\"response\":{\"status_code\":" + std::to_string(status) + "}";
            }
            out += '}';
        }
        break;
    case config::event_format::ocsf:
        if (with_status) {
            out += ",\"http_response\":{\"code\":" + std::to_string(status) + "}";
        }
        break;
    }
    out += '}';
    return out;
}

std::string event_formatter::line(const close_event& e) const
{
    auto event = observe::to_string(observe::event_kind::close);
    auto cause = observe::to_string(e.cause);
    if (format_ == config::event_format::egressd) {
        json_line j(event, instance_field_);
        request_fields(j, e)
            .number("bytes_from_client", e.bytes_from_client)
            .number("bytes_to_client", e.bytes_to_client)
            .number("duration_ms", static_cast<std::uint64_t>(e.duration.count()))
            .number("requests", e.requests)
            .field("cause", cause);
        return j.done();
    }
    auto v = view_of(e);
    auto millis = static_cast<std::uint64_t>(e.duration.count());
    json_writer w;
    if (format_ == config::event_format::ecs) {
        ecs_head(w, event, {"network"}, {"connection", "end"}, "success", {}, e.request_id);
        w.num("duration", millis * 1'000'000).close();  // ECS: nanoseconds
        ecs_traffic(w, v, &e.bytes_from_client, &e.bytes_to_client);
        w.open("network").num("bytes", e.bytes_from_client + e.bytes_to_client).close();
        ecs_observer(w, instance_);
        w.open("egressd").str("event", event).null_or("client", e.client).str("cause", cause).num("requests", e.requests);
        w.close();
        if (known(e.method)) {
            w.open("http").open("request").str("method", e.method).close().close();
        }
        w.close();
        return w.take();
    }
    ocsf_head(w, network_activity, 2, 1, 1, e.request_id, product_version_);  // 2 Close
    w.num("duration", millis);
    w.open("traffic")
        .num("bytes_out", e.bytes_from_client)
        .num("bytes_in", e.bytes_to_client)
        .num("bytes", e.bytes_from_client + e.bytes_to_client)
        .close();
    ocsf_traffic(w, v, instance_);
    ocsf_unmapped_start(w, event, v);
    w.str("method", e.method).str("cause", cause).num("requests", e.requests).close().close();
    w.close();
    return w.take();
}

std::string event_formatter::line(const revoke_event& e) const
{
    auto event = observe::to_string(e.kind);
    auto cause = observe::to_string(e.cause);
    auto action = observe::to_string(e.action);
    if (format_ == config::event_format::egressd) {
        json_line j(event, instance_field_);
        request_fields(j, e)
            .field("cause", cause)
            .field("reason", e.reason)
            .field("action", action)
            .number("policy_version", e.policy_version)
            .number("previous_version", e.previous_version);
        rule_and_identity_fields(j, e).optional_field("sni", e.sni).optional_field("detail", e.detail);
        if (e.grant_id != 0) {
            j.number("grant_id", e.grant_id);
        }
        return j.done();
    }
    auto v = view_of(e);
    bool closed = e.kind == observe::event_kind::revoke;
    json_writer w;
    auto extras = [&] {
        w.str("cause", cause)
            .str("reason", e.reason)
            .str("action", action)
            .num("policy_version", e.policy_version)
            .num("previous_version", e.previous_version)
            .optional("identity_source", identity_source_text(e.identity_source))
            .optional("detail", e.detail);
        if (e.grant_id != 0) {
            w.num("grant_id", e.grant_id);
        }
    };
    if (format_ == config::event_format::ecs) {
        if (closed) {
            ecs_head(w, event, {"network"}, {"connection", "end", "denied"}, "failure", e.reason, e.request_id);
        } else {
            ecs_head(w, event, {"network"}, {"connection", "info"}, "success", e.reason, e.request_id);
        }
        w.close();
        ecs_traffic(w, v);
        if (!e.sni.empty()) {
            w.open("tls").open("client").str("server_name", e.sni).close().close();
        }
        ecs_observer(w, instance_);
        w.open("egressd").str("event", event).null_or("client", e.client);
        rule_fields(w, v);
        extras();
        w.close();
        if (known(e.method)) {
            w.open("http").open("request").str("method", e.method).close().close();
        }
        w.close();
        return w.take();
    }
    // 3 Reset: closed by a middle device; 6 Traffic: a report on a connection that stays.
    ocsf_head(w, network_activity, closed ? 3 : 6, closed ? 3 : 2, closed ? 2 : 1, e.request_id, product_version_);
    // 2 Denied / 6 Dropped; 1 Allowed / 15 Detected.
    w.num("action_id", closed ? 2 : 1).num("disposition_id", closed ? 6 : 15).str("status_detail", e.reason);
    ocsf_traffic(w, v, instance_);
    if (!e.sni.empty()) {
        w.open("tls").str("sni", e.sni).close();
    }
    ocsf_unmapped_start(w, event, v);
    w.str("method", e.method);
    extras();
    w.close().close().close();
    return w.take();
}

std::string event_formatter::line(std::string_view event, const notice_fields& fields, bool warning) const
{
    if (format_ == config::event_format::egressd) {
        json_line j(event, instance_field_);
        for (const auto& [name, value] : fields) {
            j.raw(name, value.text());
        }
        return j.done();
    }
    json_writer w;
    if (format_ == config::event_format::ecs) {
        std::string_view type = event == "egressd.start"    ? "start"
                                : event == "egressd.stop"   ? "end"
                                : event == "egressd.reload" ? "change"
                                                            : "info";
        ecs_head(w, event, {"process"}, {type}, {}, {}, {});
        w.close();
        w.open("log").str("level", warning ? "warning" : "info").close();
        ecs_observer(w, instance_);
        w.open("egressd").str("event", event);
    } else {
        // Application Lifecycle (6002): 3 Start, 4 Stop; every other notice is 99 Other, named by activity_name.
        std::uint64_t activity = event == "egressd.start" ? 3 : event == "egressd.stop" ? 4 : 99;
        ocsf_head(w, 6002, activity, warning ? 3 : 1, 1, {}, product_version_);
        if (activity == 99) {
            w.str("activity_name", event);
        }
        w.open("app").str("name", product).str("vendor_name", product).optional("version", product_version_).close();
        w.open("unmapped").open("egressd").str("event", event).str("instance", instance_);
    }
    for (const auto& [name, value] : fields) {
        w.raw(name, value.text());
    }
    w.close();
    if (format_ == config::event_format::ocsf) {
        w.close();
    }
    w.close();
    return w.take();
}

void event_log::write_lines(const std::string& lines, const std::string& deny_lines)
{
    if (!lines.empty()) {
        main_->info(lines);
    }
    if (!deny_lines.empty() && deny_) {
        deny_->info(deny_lines);
    }
}

void event_batch::request_flush()
{
    if (!flush_scheduled_) {
        flush_scheduled_ = true;
        schedule_flush_();
    }
}

void event_batch::add(std::string line, bool deny)
{
    request_flush();
    if (!lines_.empty()) {
        lines_ += '\n';
    }
    if (deny) {
        if (!deny_lines_.empty()) {
            deny_lines_ += '\n';
        }
        deny_lines_ += line;
    }
    lines_ += line;
}

void event_batch::flush()
{
    flush_scheduled_ = false;
    if (observer_ != nullptr) {
        observer_->flush();
    }
    if (lines_.empty()) {
        return;
    }
    log_.write_lines(lines_, deny_lines_);
    lines_.clear();
    deny_lines_.clear();
}

void event_log::notice(std::string_view event, const notice_fields& fields, bool warning)
{
    auto line = formatter_.line(event, fields, warning);
    if (warning) {
        main_->warn(line);
    } else {
        main_->info(line);
    }
}

std::uint64_t event_log::dropped() const { return pool_->overrun_counter(); }

}  // namespace egressd::proxy
