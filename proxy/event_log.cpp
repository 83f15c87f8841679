#include "proxy/event_log.hpp"

#include "config/rfc3339.hpp"
#include "proxy/json.hpp"

#include <spdlog/async.h>
#include <spdlog/async_logger.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/base_sink.h>

#include <cstdio>
#include <syslog.h>
#include <mutex>
#include <stdexcept>

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

// Appends ,"name":"value" (or a number) to a JSON object under construction.
class json_line {
public:
    explicit json_line(std::string_view event)
    {
        out_.reserve(512);
        out_ = "{\"time\":\"";
        append_utc_millis(out_, std::chrono::system_clock::now());
        out_ += '"';
        field("event", event);
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
    std::string done() { return std::move(out_) + "}"; }

private:
    std::string out_;
};

}  // namespace

std::string format_utc_millis(std::chrono::system_clock::time_point t)
{
    std::string out;
    append_utc_millis(out, t);
    return out;
}

event_log::event_log(const config::logging_config& config)
{
    pool_ = std::make_shared<spdlog::details::thread_pool>(config.queue_size, 1);
    std::vector<spdlog::sink_ptr> sinks;
    try {
        if (config.to_stdout) {
            sinks.push_back(std::make_shared<buffered_stdout_sink>());
        }
        if (config.file) {
            sinks.push_back(std::make_shared<spdlog::sinks::rotating_file_sink_mt>(config.file->path, config.file->max_bytes,
                                                                                   config.file->max_files));
        }
        if (config.syslog_ident) {
            sinks.push_back(std::make_shared<line_syslog_sink>(*config.syslog_ident));
        }
        main_ = std::make_shared<spdlog::async_logger>("egressd", sinks.begin(), sinks.end(), pool_,
                                                       spdlog::async_overflow_policy::overrun_oldest);
        if (config.deny_file) {
            auto deny_sink = std::make_shared<spdlog::sinks::rotating_file_sink_mt>(
                config.deny_file->path, config.deny_file->max_bytes, config.deny_file->max_files);
            deny_ = std::make_shared<spdlog::async_logger>("egressd-deny", deny_sink, pool_,
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

void event_log::write(const std::string& line, bool deny)
{
    main_->info(line);
    if (deny && deny_) {
        deny_->info(line);
    }
}

namespace {

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
        .optional_field("identity_source", e.identity_source == observe::identity_source::none
                                               ? std::string_view()
                                               : observe::to_string(e.identity_source));
}

}  // namespace

std::string event_log::format(const decision_event& e)
{
    json_line j(observe::to_string(e.event));
    request_fields(j, e)
        .field("reason", observe::to_string(e.reason))
        .field("mode", e.mode);
    rule_and_identity_fields(j, e)
        .optional_field("guard", e.guard)
        .optional_field("sni", e.sni)
        .optional_field("detail", e.detail);
    if (e.grant_id != 0) {
        j.number("grant_id", e.grant_id);
    }
    if (e.access_request != 0) {
        j.number("access_request", static_cast<std::uint64_t>(e.access_request));
    }
    return j.done();
}

std::string event_log::format(const close_event& e)
{
    json_line j(observe::to_string(observe::event_kind::close));
    request_fields(j, e)
        .number("bytes_from_client", e.bytes_from_client)
        .number("bytes_to_client", e.bytes_to_client)
        .number("duration_ms", static_cast<std::uint64_t>(e.duration.count()))
        .number("requests", e.requests)
        .field("cause", observe::to_string(e.cause));
    return j.done();
}

std::string event_log::format(const revoke_event& e)
{
    json_line j(observe::to_string(e.kind));
    request_fields(j, e)
        .field("cause", observe::to_string(e.cause))
        .field("reason", e.reason)
        .field("action", observe::to_string(e.action))
        .number("policy_version", e.policy_version)
        .number("previous_version", e.previous_version);
    rule_and_identity_fields(j, e)
        .optional_field("sni", e.sni)
        .optional_field("detail", e.detail);
    if (e.grant_id != 0) {
        j.number("grant_id", e.grant_id);
    }
    return j.done();
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

void event_batch::add(std::string line, bool deny)
{
    if (lines_.empty()) {
        schedule_flush_();
    } else {
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

void event_log::notice(std::string_view event, const std::vector<std::pair<std::string_view, json_value>>& fields,
                       bool warning)
{
    json_line j(event);
    for (const auto& [name, value] : fields) {
        j.raw(name, value.text());
    }
    if (warning) {
        main_->warn(j.done());
    } else {
        main_->info(j.done());
    }
}

std::uint64_t event_log::dropped() const { return pool_->overrun_counter(); }

}  // namespace egressd::proxy
