// The JSON event log: what each event looks like on disk (fixed names, nulls, numbers, the time format),
// that whatever a client sends cannot break a line, that denials also reach the deny file, and that a full
// queue drops (and counts) instead of blocking the data path. Only files in a temporary directory.

#include "proxy/event_log.hpp"
#include "tests/proxy/mini_json.hpp"
#include "tests/support/temp_dir.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <functional>
#include <map>
#include <future>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace egressd::proxy {
namespace {

using namespace std::chrono_literals;
using test_support::json_reader;
using test_support::json_value;
using test_support::temp_dir;

// stdout off (the test's own output stays readable), everything to files in dir.
config::logging_config file_logging(const temp_dir& dir, bool with_deny_file = true)
{
    config::logging_config c;
    c.to_stdout = false;
    c.instance = "egress-1";
    // Large enough that nothing rotates during a test: every line stays in one file to be counted.
    c.file = config::rotating_file_config{(dir.path() / "events.log").string(), std::size_t{1} << 30, 2};
    if (with_deny_file) {
        c.deny_file = config::rotating_file_config{(dir.path() / "deny.log").string(), std::size_t{1} << 30, 2};
    }
    return c;
}

std::vector<std::string> read_lines(const std::filesystem::path& path)
{
    std::vector<std::string> out;
    std::ifstream in(path, std::ios::binary);
    for (std::string line; std::getline(in, line);) {
        out.push_back(line);
    }
    return out;
}

// RFC 3629 well-formedness: mini_json checks the JSON grammar but passes bytes >= 0x80 through unchecked, and
// a log line with a stray byte is rejected by strict consumers (jq, most JSON libraries) just as surely.
bool valid_utf8(std::string_view s)
{
    std::size_t i = 0;
    auto continuation = [&](std::size_t k) { return k < s.size() && (static_cast<unsigned char>(s[k]) & 0xc0) == 0x80; };
    while (i < s.size()) {
        auto b = static_cast<unsigned char>(s[i]);
        std::size_t n = 0;
        if (b < 0x80) {
            n = 1;
        } else if (b >= 0xc2 && b <= 0xdf) {
            n = 2;
        } else if (b >= 0xe0 && b <= 0xef) {
            auto b1 = i + 1 < s.size() ? static_cast<unsigned char>(s[i + 1]) : 0;
            if ((b == 0xe0 && b1 < 0xa0) || (b == 0xed && b1 > 0x9f)) {
                return false;
            }
            n = 3;
        } else if (b >= 0xf0 && b <= 0xf4) {
            auto b1 = i + 1 < s.size() ? static_cast<unsigned char>(s[i + 1]) : 0;
            if ((b == 0xf0 && b1 < 0x90) || (b == 0xf4 && b1 > 0x8f)) {
                return false;
            }
            n = 4;
        } else {
            return false;
        }
        for (std::size_t k = 1; k < n; ++k) {
            if (!continuation(i + k)) {
                return false;
            }
        }
        i += n;
    }
    return true;
}

// One line as an object, or a test failure saying why it is not one.
json_value parse_line(const std::string& line)
{
    std::string error;
    auto v = json_reader::parse(line, &error);
    EXPECT_TRUE(v) << error << "\nline: " << line;
    EXPECT_TRUE(valid_utf8(line)) << "line: " << line;
    if (!v) {
        return {};
    }
    EXPECT_EQ(v->type, json_value::kind::object) << line;
    return *v;
}

std::set<std::string> keys(const json_value& v)
{
    std::set<std::string> out;
    for (const auto& [k, unused] : v.members) {
        out.insert(k);
    }
    return out;
}

// "YYYY-MM-DDTHH:MM:SS.mmmZ", always UTC and always milliseconds, so lines sort and compare as text.
bool is_utc_millis(std::string_view t)
{
    constexpr std::string_view shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (t.size() != shape.size()) {
        return false;
    }
    for (std::size_t i = 0; i < t.size(); ++i) {
        bool ok = shape[i] == 'd' ? (t[i] >= '0' && t[i] <= '9') : t[i] == shape[i];
        if (!ok) {
            return false;
        }
    }
    return true;
}

void expect_string(const json_value& v, const std::string& key, std::string_view want)
{
    EXPECT_TRUE(v.at(key).is_string(want)) << key << ": expected \"" << want << "\", found type "
                                           << static_cast<int>(v.at(key).type) << " '" << v.at(key).text << "'";
}

void expect_number(const json_value& v, const std::string& key, std::string_view want)
{
    EXPECT_EQ(v.at(key).type, json_value::kind::number) << key;
    EXPECT_EQ(v.at(key).text, want) << key;
}

void expect_null(const json_value& v, const std::string& key)
{
    ASSERT_NE(v.get(key), nullptr) << key << " must be present (as null), not left out";
    EXPECT_EQ(v.at(key).type, json_value::kind::null) << key;
}

// Runs work on its own thread and gives up on the whole process if it has not finished within a generous
// bound: a logger that blocks its callers must fail the test, not hang the suite. This is a deadlock guard,
// not a timing assertion; the bound is far beyond what the work needs on a loaded machine.
void finishes(const std::function<void()>& work, const char* what)
{
    std::packaged_task<void()> task(work);
    auto done = task.get_future();
    std::thread runner(std::move(task));
    if (done.wait_for(180s) != std::future_status::ready) {
        std::fprintf(stderr, "FATAL: %s did not finish within 180 s: the event log blocks its callers\n", what);
        std::fflush(stderr);
        std::_Exit(1);
    }
    runner.join();
    done.get();  // rethrows what the work threw
}

// --- what each event looks like --------------------------------------------------------------------------

decision_event allow_event()
{
    decision_event e;
    e.event = observe::event_kind::allow;
    e.request_id = "r-1";
    e.client = "app";
    e.source = "10.0.0.5:40000";
    e.method = "CONNECT";
    e.host = "api.example.com";
    e.port = 443;
    e.address = "93.184.216.34";
    e.reason = observe::reason::allowed;
    e.mode = "enforce";
    e.rule_group = "web";
    e.rule_index = 0;
    e.rule_description = "the API";
    return e;
}

decision_event deny_event()
{
    decision_event e;
    e.event = observe::event_kind::deny;
    e.request_id = "r-2";
    e.source = "10.0.0.6:40001";
    e.method = "GET";
    e.host = "169.254.169.254";
    e.port = 80;
    e.reason = observe::reason::address_guard;
    e.mode = "enforce";
    e.guard = "link_local";
    return e;
}

TEST(cli_event_log, each_event_is_one_json_line_with_fixed_fields)
{
    temp_dir dir;
    {
        event_log log(file_logging(dir));
        log.decision(allow_event());
        log.decision(deny_event());
        auto would = deny_event();
        would.event = observe::event_kind::would_deny;
        would.request_id = "r-3";
        would.mode = "report";
        would.reason = observe::reason::no_matching_rule;
        would.detail = "dns: NXDOMAIN";
        log.decision(would);
        close_event c;
        c.request_id = "r-1";
        c.client = "app";
        c.source = "10.0.0.5:40000";
        c.method = "CONNECT";
        c.host = "api.example.com";
        c.port = 443;
        c.address = "93.184.216.34";
        c.bytes_from_client = 517;
        c.bytes_to_client = 18'446'744'073'709'551'615u;  // the widest counter survives as a JSON number
        c.duration = 1234ms;
        c.cause = observe::close_cause::client_closed;
        c.requests = 1;
        log.close(c);
        close_event unknown;  // nothing known: client and address are null, numbers are 0
        unknown.request_id = "r-4";
        unknown.cause = observe::close_cause::error;
        log.close(unknown);
        log.notice("egressd.start", {{"workers", "2"}, {"policy", "/etc/egressd/policy.yaml"}});
        log.flush();
        EXPECT_EQ(log.dropped(), 0u);
    }  // destroying the log drains its queue: every line above is on disk now

    auto lines = read_lines(dir.path() / "events.log");
    ASSERT_EQ(lines.size(), 6u);
    std::vector<json_value> v;
    for (const auto& l : lines) {
        v.push_back(parse_line(l));
        EXPECT_TRUE(l.starts_with("{\"time\":\"")) << "time comes first, so lines sort by it: " << l;
        EXPECT_TRUE(is_utc_millis(v.back().at("time").text)) << l;
    }

    const std::set<std::string> decision_keys{"time",   "event", "instance", "request_id", "client", "source",
                                              "method", "host",  "port",     "address",    "reason", "mode"};
    // allow, with its rule
    auto with_rule = decision_keys;
    with_rule.insert({"rule_group", "rule_index", "rule_description"});
    EXPECT_EQ(keys(v[0]), with_rule) << lines[0];
    expect_string(v[0], "event", "egress.allow");
    expect_string(v[0], "request_id", "r-1");
    expect_string(v[0], "client", "app");
    expect_string(v[0], "source", "10.0.0.5:40000");
    expect_string(v[0], "method", "CONNECT");
    expect_string(v[0], "host", "api.example.com");
    expect_number(v[0], "port", "443");
    expect_string(v[0], "address", "93.184.216.34");
    expect_string(v[0], "reason", "allowed");
    expect_string(v[0], "mode", "enforce");
    expect_string(v[0], "rule_group", "web");
    expect_number(v[0], "rule_index", "0");
    expect_string(v[0], "rule_description", "the API");

    // deny by the address guard: no rule fields, unknown client and name-phase address are null
    auto with_guard = decision_keys;
    with_guard.insert("guard");
    EXPECT_EQ(keys(v[1]), with_guard) << lines[1];
    expect_string(v[1], "event", "egress.deny");
    expect_null(v[1], "client");
    expect_null(v[1], "address");
    expect_number(v[1], "port", "80");
    expect_string(v[1], "guard", "link_local");

    auto with_detail = with_guard;
    with_detail.insert("detail");
    EXPECT_EQ(keys(v[2]), with_detail) << lines[2];
    expect_string(v[2], "event", "egress.would_deny");
    expect_string(v[2], "mode", "report");
    expect_string(v[2], "detail", "dns: NXDOMAIN");

    const std::set<std::string> close_keys{"time",    "event",   "instance",          "request_id",
                                           "client",  "source",  "method",            "host",
                                           "port",    "address", "bytes_from_client", "bytes_to_client",
                                           "duration_ms", "requests", "cause"};
    EXPECT_EQ(keys(v[3]), close_keys) << lines[3];
    expect_string(v[3], "event", "egress.close");
    expect_string(v[3], "client", "app");
    expect_number(v[3], "port", "443");
    expect_number(v[3], "bytes_from_client", "517");
    expect_number(v[3], "bytes_to_client", "18446744073709551615");
    expect_number(v[3], "duration_ms", "1234");
    expect_number(v[3], "requests", "1");
    expect_string(v[3], "cause", "client_closed");

    EXPECT_EQ(keys(v[4]), close_keys) << lines[4];
    expect_null(v[4], "client");
    expect_null(v[4], "address");
    expect_number(v[4], "port", "0");
    expect_number(v[4], "bytes_to_client", "0");
    expect_string(v[4], "host", "");

    EXPECT_EQ(keys(v[5]), (std::set<std::string>{"time", "event", "instance", "workers", "policy"})) << lines[5];
    expect_string(v[5], "instance", "egress-1");
    expect_string(v[5], "event", "egressd.start");
    expect_string(v[5], "workers", "2");
    expect_string(v[5], "policy", "/etc/egressd/policy.yaml");

    // The deny file: the deny and the would-deny, byte for byte as in the main log, and nothing else.
    auto deny_lines = read_lines(dir.path() / "deny.log");
    ASSERT_EQ(deny_lines.size(), 2u);
    EXPECT_EQ(deny_lines[0], lines[1]);
    EXPECT_EQ(deny_lines[1], lines[2]);
}

TEST(cli_event_log, rule_fields_need_both_group_and_index)
{
    temp_dir dir;
    {
        event_log log(file_logging(dir, false));
        auto no_index = allow_event();
        no_index.rule_index.reset();
        log.decision(no_index);
        auto no_group = allow_event();
        no_group.rule_group = "";
        log.decision(no_group);
        // A deny rule has an index in the deny list; description is optional even with a rule.
        auto no_description = allow_event();
        no_description.rule_index = 7;
        no_description.rule_description = "";
        log.decision(no_description);
    }
    auto lines = read_lines(dir.path() / "events.log");
    ASSERT_EQ(lines.size(), 3u);
    for (int i = 0; i < 2; ++i) {
        auto v = parse_line(lines[static_cast<std::size_t>(i)]);
        EXPECT_EQ(v.get("rule_group"), nullptr) << lines[static_cast<std::size_t>(i)];
        EXPECT_EQ(v.get("rule_index"), nullptr) << lines[static_cast<std::size_t>(i)];
        EXPECT_EQ(v.get("rule_description"), nullptr) << lines[static_cast<std::size_t>(i)];
    }
    auto v = parse_line(lines[2]);
    expect_string(v, "rule_group", "web");
    expect_number(v, "rule_index", "7");
    EXPECT_EQ(v.get("rule_description"), nullptr) << lines[2];
}

TEST(cli_event_log, identity_source_is_written_only_for_a_proven_identity)
{
    auto with = deny_event();
    with.identity = "alice";
    with.identity_source = observe::identity_source::proxy_auth;
    event_formatter format(config::logging_config{});
    auto v = parse_line(format.line(with));
    expect_string(v, "identity", "alice");
    expect_string(v, "identity_source", "proxy_auth");
    auto mtls = deny_event();
    mtls.identity = "build-agent";
    mtls.identity_source = observe::identity_source::mtls;
    expect_string(parse_line(format.line(mtls)), "identity_source", "mtls");
    auto none = parse_line(format.line(deny_event()));
    EXPECT_EQ(none.get("identity"), nullptr);
    EXPECT_EQ(none.get("identity_source"), nullptr);
}

TEST(cli_event_log, hostile_strings_cannot_break_a_line)
{
    // Quotes, backslashes, line breaks and control characters are escaped; well-formed UTF-8 passes through;
    // any byte that is not part of well-formed UTF-8 becomes U+FFFD, one per byte.
    const std::string hostile = std::string("a\"b\\c\nd\re\tf") + '\x01' + '\x1f' + '\x7f' + std::string(1, '\0') +
                                "|\xff|\xe2\x82|\xc0\xaf|\xed\xa0\x80|\xf5\x80\x80\x80|caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x92";
    const std::string fffd = "\xef\xbf\xbd";
    const std::string decoded = std::string("a\"b\\c\nd\re\tf") + '\x01' + '\x1f' + '\x7f' + std::string(1, '\0') +
                                "|" + fffd + "|" + fffd + fffd + "|" + fffd + fffd + "|" + fffd + fffd + fffd + "|" +
                                fffd + fffd + fffd + fffd + "|caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x92";
    temp_dir dir;
    {
        event_log log(file_logging(dir));
        auto d = deny_event();
        d.host = hostile;
        d.request_id = hostile;
        d.client = hostile;
        d.detail = hostile;
        log.decision(d);
        close_event c;
        c.method = hostile;
        c.host = hostile;
        log.close(c);
        const std::string name = "odd\"name\n";
        log.notice("egressd.\"reload\"", {{name, hostile}}, true);
    }
    auto lines = read_lines(dir.path() / "events.log");
    // Three events, three lines: no raw line break got through.
    ASSERT_EQ(lines.size(), 3u);
    auto d = parse_line(lines[0]);
    expect_string(d, "host", decoded);
    expect_string(d, "request_id", decoded);
    expect_string(d, "client", decoded);
    expect_string(d, "detail", decoded);
    auto c = parse_line(lines[1]);
    expect_string(c, "method", decoded);
    expect_string(c, "host", decoded);
    auto n = parse_line(lines[2]);
    expect_string(n, "event", "egressd.\"reload\"");
    expect_string(n, "odd\"name\n", decoded);
    for (const auto& l : lines) {
        // Only printable ASCII and well-formed UTF-8 on disk: DEL and NUL are escaped too.
        for (char ch : l) {
            auto u = static_cast<unsigned char>(ch);
            EXPECT_TRUE(u >= 0x20 && u != 0x7f) << "raw byte " << static_cast<int>(u) << " in " << l;
        }
    }
    ASSERT_EQ(read_lines(dir.path() / "deny.log").size(), 1u);
    EXPECT_EQ(read_lines(dir.path() / "deny.log")[0], lines[0]);
}

TEST(cli_event_log, flush_makes_lines_visible_while_the_log_lives)
{
    temp_dir dir;
    event_log log(file_logging(dir));
    for (int i = 0; i < 3; ++i) {
        log.decision(deny_event());
    }
    log.notice("egressd.listening", {{"address", "127.0.0.1:3128"}});
    log.flush();
    // spdlog's asynchronous flush returns before the writer thread has run it, so wait for the lines to appear
    // (bounded, so a flush that never reaches the file fails instead of hanging). A small burst stays in the
    // file's buffer until the flush: without it nothing would be read here.
    auto main_path = dir.path() / "events.log";
    auto deny_path = dir.path() / "deny.log";
    auto deadline = std::chrono::steady_clock::now() + 60s;
    while ((read_lines(main_path).size() < 4 || read_lines(deny_path).size() < 3) &&
           std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(10ms);
    }
    EXPECT_EQ(read_lines(main_path).size(), 4u);
    EXPECT_EQ(read_lines(deny_path).size(), 3u);
    EXPECT_EQ(log.dropped(), 0u);
}

TEST(cli_event_log, full_queue_drops_and_counts_instead_of_blocking)
{
    constexpr int threads = 4;
    constexpr int per_thread = 25'000;
    constexpr std::uint64_t total = std::uint64_t{threads} * per_thread;
    temp_dir dir;
    auto config = file_logging(dir, false);
    config.queue_size = 16;  // the smallest the configuration allows: drops are all but certain
    std::uint64_t dropped_after_burst = 0;
    finishes(
        [&] {
            event_log log(config);
            std::vector<std::thread> writers;
            for (int t = 0; t < threads; ++t) {
                writers.emplace_back([&log, t] {
                    for (int i = 0; i < per_thread; ++i) {
                        log.notice("egress.test", {{"id", std::to_string(t * per_thread + i)}});
                    }
                });
            }
            for (auto& w : writers) {
                w.join();
            }
            dropped_after_burst = log.dropped();
        },
        "a burst of 100,000 events into a queue of 16");

    auto lines = read_lines(dir.path() / "events.log");
    std::set<std::string> ids;
    for (const auto& l : lines) {
        auto v = parse_line(l);
        ASSERT_EQ(v.at("event").text, "egress.test") << l;
        EXPECT_TRUE(ids.insert(v.at("id").text).second) << "written twice: " << l;
    }
    EXPECT_LE(lines.size(), total);
    // spdlog counts every entry pushed out of a full queue (overrun_counter), so lines + drops account for
    // every event. Exactly, but for one: the destructor's flush request is queued with overrun_oldest too, and
    // if the queue is still full then it pushes out one more event after dropped() was read (a flush is not
    // itself a line, and nothing is queued after it but the terminate message, which waits for room).
    // Recorded for whoever reads the XML report: how much the writer kept up with on this machine.
    RecordProperty("lines", static_cast<int>(lines.size()));
    RecordProperty("dropped", static_cast<int>(dropped_after_burst));
    std::uint64_t accounted = lines.size() + dropped_after_burst;
    EXPECT_TRUE(accounted == total || accounted + 1 == total)
        << "lines " << lines.size() << " + dropped " << dropped_after_burst << " != " << total;
}

TEST(cli_event_log, small_burst_from_threads_drops_nothing)
{
    temp_dir dir;
    auto config = file_logging(dir, false);
    config.queue_size = 1024;  // room for every event at once: nothing may be lost
    {
        event_log log(config);
        std::vector<std::thread> writers;
        for (int t = 0; t < 4; ++t) {
            writers.emplace_back([&log] {
                for (int i = 0; i < 100; ++i) {
                    log.decision(deny_event());
                }
            });
        }
        for (auto& w : writers) {
            w.join();
        }
        EXPECT_EQ(log.dropped(), 0u);
    }
    EXPECT_EQ(read_lines(dir.path() / "events.log").size(), 400u);
}

// --- sinks that cannot open --------------------------------------------------------------------------------

TEST(cli_event_log, sink_that_cannot_open_throws_at_construction)
{
    temp_dir dir;
    auto plain = dir.write("plain", "a regular file, so nothing can be created under it\n");
    for (bool deny : {false, true}) {
        auto config = file_logging(dir);
        auto& sink = deny ? config.deny_file : config.file;
        sink->path = (plain / "logs" / "events.log").string();
        try {
            event_log log(config);
            ADD_FAILURE() << "no exception for " << sink->path;
        } catch (const std::runtime_error& e) {
            EXPECT_NE(std::string(e.what()).find("cannot open a log sink"), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find(sink->path), std::string::npos) << e.what();
        }
    }
}

// --- format_utc_millis -------------------------------------------------------------------------------------

TEST(cli_event_log, format_utc_millis_on_fixed_instants)
{
    using namespace std::chrono;
    auto at = [](sys_days day, nanoseconds since_midnight) { return system_clock::time_point(day) + since_midnight; };
    EXPECT_EQ(format_utc_millis(at(2026y / November / 21, 6h + 50min + 123ms)), "2026-11-21T06:50:00.123Z");
    EXPECT_EQ(format_utc_millis(system_clock::time_point{}), "1970-01-01T00:00:00.000Z");
    // Truncated, never rounded: 999.999 ms is still .999 of the same second.
    EXPECT_EQ(format_utc_millis(at(2024y / February / 29, 23h + 59min + 59s + 999'999us)), "2024-02-29T23:59:59.999Z");
    EXPECT_EQ(format_utc_millis(system_clock::time_point{} + 1999us), "1970-01-01T00:00:00.001Z");
    // Before the epoch, floor (not truncation toward zero) keeps the fields in range.
    EXPECT_EQ(format_utc_millis(system_clock::time_point{} - 1ms), "1969-12-31T23:59:59.999Z");
    EXPECT_EQ(format_utc_millis(system_clock::time_point{} - 1ns), "1969-12-31T23:59:59.999Z");
    EXPECT_EQ(format_utc_millis(at(2200y / January / 1, 0ns)), "2200-01-01T00:00:00.000Z");
    EXPECT_TRUE(is_utc_millis(format_utc_millis(system_clock::now())));
    // Within one second only the milliseconds change (the rest is formatted once per second).
    auto second = at(2026y / November / 21, 6h + 50min);
    EXPECT_EQ(format_utc_millis(second + 456ms), "2026-11-21T06:50:00.456Z");
    EXPECT_EQ(format_utc_millis(second + 7ms), "2026-11-21T06:50:00.007Z");
    EXPECT_EQ(format_utc_millis(second + 999ms), "2026-11-21T06:50:00.999Z");
    EXPECT_EQ(format_utc_millis(second + 1000ms), "2026-11-21T06:50:01.000Z");
    EXPECT_EQ(format_utc_millis(second + 60ms), "2026-11-21T06:50:00.060Z");
}


// --- the three formats ---------------------------------------------------------------------------------------
//
// Each line is parsed with Boost.JSON (which also rejects ill-formed UTF-8) and checked field by field: the
// contract in docs/EVENT_FORMATS.md, and the fields each schema requires.

namespace bj = boost::json;

bj::object parse_object(const std::string& line)
{
    boost::system::error_code ec;
    auto v = bj::parse(line, ec);
    EXPECT_FALSE(ec) << ec.message() << "\nline: " << line;
    if (ec || !v.is_object()) {
        ADD_FAILURE() << "not an object: " << line;
        return {};
    }
    return v.as_object();
}

// The value at a dotted path of nested objects ("event.kind"), or nullptr.
const bj::value* at_path(const bj::object& o, std::string_view path)
{
    const bj::object* here = &o;
    for (;;) {
        auto dot = path.find('.');
        auto* v = here->if_contains(path.substr(0, dot));
        if (v == nullptr || dot == std::string_view::npos) {
            return v;
        }
        if (!v->is_object()) {
            return nullptr;
        }
        here = &v->as_object();
        path = path.substr(dot + 1);
    }
}

std::string text_at(const bj::object& o, std::string_view path)
{
    const auto* v = at_path(o, path);
    return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string("<absent>");
}

std::int64_t number_at(const bj::object& o, std::string_view path)
{
    const auto* v = at_path(o, path);
    if (v == nullptr) {
        return -1;
    }
    if (v->is_uint64()) {
        return static_cast<std::int64_t>(v->as_uint64());
    }
    return v->is_int64() ? v->as_int64() : -1;
}

std::vector<std::string> strings_at(const bj::object& o, std::string_view path)
{
    std::vector<std::string> out;
    const auto* v = at_path(o, path);
    if (v != nullptr && v->is_array()) {
        for (const auto& item : v->as_array()) {
            out.push_back(item.is_string() ? std::string(item.as_string()) : std::string("<not a string>"));
        }
    }
    return out;
}

config::logging_config format_config(config::event_format f, bool http_query = false)
{
    config::logging_config c;
    c.format = f;
    c.instance = "egress-1";
    c.http_query = http_query;
    return c;
}

// A forwarded plain-HTTP GET, allowed; its status arrives later.
decision_event forwarded_get()
{
    decision_event e = allow_event();
    e.request_id = "r-7";
    e.method = "GET";
    e.port = 80;
    e.path = "/v1/items";
    e.query = "token=secret";
    e.identity = "alice";
    e.identity_source = observe::identity_source::proxy_auth;
    return e;
}

decision_event dns_error_event()
{
    decision_event e = allow_event();
    e.event = observe::event_kind::error;
    e.request_id = "r-8";
    e.address = "";
    e.reason = observe::reason::dns_nxdomain;
    return e;
}

decision_event cert_rejected_event()
{
    decision_event e;
    e.event = observe::event_kind::deny;
    e.request_id = "r-9";
    e.source = "[2001:db8::7]:5000";
    e.method = "-";
    e.host = "-";
    e.reason = observe::reason::client_cert_rejected;
    e.mode = "enforce";
    e.detail = "certificate revoked";
    e.cert_subject = "CN=build-agent,O=Example";
    e.cert_serial = "1A2B";
    return e;
}

close_event sample_close()
{
    close_event c;
    c.request_id = "r-1";
    c.client = "app";
    c.source = "10.0.0.5:40000";
    c.method = "CONNECT";
    c.host = "api.example.com";
    c.port = 443;
    c.address = "93.184.216.34";
    c.bytes_from_client = 517;
    c.bytes_to_client = 4096;
    c.duration = 1234ms;
    c.cause = observe::close_cause::client_closed;
    c.requests = 1;
    return c;
}

revoke_event sample_revoke()
{
    revoke_event r;
    r.request_id = "r-1";
    r.client = "app";
    r.source = "10.0.0.5:40000";
    r.method = "CONNECT";
    r.host = "api.example.com";
    r.port = 443;
    r.address = "93.184.216.34";
    r.reason = "no_matching_rule";
    r.policy_version = 2;
    r.previous_version = 1;
    return r;
}

TEST(event_formats, egressd_format_carries_the_new_fields)
{
    event_formatter plain(format_config(config::event_format::egressd));
    auto get = plain.line(forwarded_get());
    auto v = parse_object(get);
    EXPECT_EQ(text_at(v, "instance"), "egress-1");
    EXPECT_EQ(text_at(v, "path"), "/v1/items");
    EXPECT_EQ(at_path(v, "query"), nullptr) << "the query may carry secrets: only with logging.http_query";
    EXPECT_EQ(at_path(v, "status"), nullptr) << "no status known yet";
    auto opened = plain.open_line(forwarded_get());
    EXPECT_FALSE(opened.deny);
    auto with_status = parse_object(plain.finish(std::move(opened), 204));
    EXPECT_EQ(number_at(with_status, "status"), 204);

    event_formatter with_query(format_config(config::event_format::egressd, true));
    EXPECT_EQ(text_at(parse_object(with_query.line(forwarded_get())), "query"), "token=secret");

    auto failed = deny_event();
    failed.reason = observe::reason::proxy_auth_failed;
    std::string long_name(5000, 'x');
    failed.user = long_name;
    auto user = text_at(parse_object(plain.line(failed)), "user");
    EXPECT_GT(user.size(), 0u);
    EXPECT_LE(user.size(), 256u) << "an attacker-chosen name is capped";

    auto rejected = parse_object(plain.line(cert_rejected_event()));
    EXPECT_EQ(text_at(rejected, "cert_subject"), "CN=build-agent,O=Example");
    EXPECT_EQ(text_at(rejected, "cert_serial"), "1A2B");

    auto error = parse_object(plain.line(dns_error_event()));
    EXPECT_EQ(text_at(error, "event"), "egress.error");
    EXPECT_EQ(text_at(error, "reason"), "dns_nxdomain");
    EXPECT_FALSE(plain.open_line(dns_error_event()).deny) << "a DNS failure is not a denial";
    EXPECT_TRUE(plain.open_line(deny_event()).deny);
}

TEST(event_formats, errors_stay_out_of_the_deny_file)
{
    temp_dir dir;
    {
        event_log log(file_logging(dir));
        log.decision(dns_error_event());
        log.decision(deny_event());
    }
    auto lines = read_lines(dir.path() / "events.log");
    auto deny_lines = read_lines(dir.path() / "deny.log");
    ASSERT_EQ(lines.size(), 2u);
    ASSERT_EQ(deny_lines.size(), 1u);
    EXPECT_EQ(deny_lines[0], lines[1]);
}

// ECS 8.11 categorization fields, allowed values (https://www.elastic.co/guide/en/ecs/8.11/ecs-allowed-values-event-kind.html,
// ...-event-category.html and ...-event-type.html), and the fields every ECS event carries: @timestamp (the one
// field ECS calls required, "Base fields") and ecs.version ("ECS fields": must be present in every event).
const std::set<std::string> ecs_kinds{"alert", "enrichment", "event", "metric", "state", "pipeline_error", "signal"};
const std::set<std::string> ecs_categories{"authentication", "configuration", "database", "driver",  "email",
                                           "file",           "host",          "iam",      "intrusion_detection",
                                           "malware",        "network",       "package",  "process", "registry",
                                           "session",        "threat",        "vulnerability", "web"};
const std::set<std::string> ecs_types{"access",   "admin",     "allowed",      "change", "connection", "creation",
                                      "deletion", "denied",    "end",          "error",  "group",      "indicator",
                                      "info",     "installation", "protocol", "start",  "user"};
// Which types each category we use allows (the "expected event types" of each category's allowed-values page).
const std::map<std::string, std::set<std::string>> ecs_types_of{
    {"network", {"access", "allowed", "connection", "denied", "end", "info", "protocol", "start"}},
    {"web", {"access", "error", "info"}},
    {"process", {"access", "change", "end", "info", "start"}},
};

void expect_ecs_event(const bj::object& v, const std::string& line)
{
    EXPECT_TRUE(v.contains("@timestamp")) << line;
    EXPECT_TRUE(is_utc_millis(text_at(v, "@timestamp"))) << line;
    EXPECT_EQ(text_at(v, "ecs.version"), "8.11.0") << line;
    EXPECT_TRUE(ecs_kinds.contains(text_at(v, "event.kind"))) << line;
    auto categories = strings_at(v, "event.category");
    auto types = strings_at(v, "event.type");
    EXPECT_FALSE(categories.empty()) << line;
    EXPECT_FALSE(types.empty()) << line;
    for (const auto& c : categories) {
        EXPECT_TRUE(ecs_categories.contains(c)) << c << ": " << line;
    }
    for (const auto& t : types) {
        EXPECT_TRUE(ecs_types.contains(t)) << t << ": " << line;
        // Each type must be expected by at least one of the event's categories.
        bool expected = std::any_of(categories.begin(), categories.end(), [&](const std::string& c) {
            auto it = ecs_types_of.find(c);
            return it != ecs_types_of.end() && it->second.contains(t);
        });
        EXPECT_TRUE(expected) << t << " under " << categories.front() << ": " << line;
    }
    if (const auto* outcome = at_path(v, "event.outcome")) {
        std::string o(outcome->as_string());
        EXPECT_TRUE(o == "success" || o == "failure" || o == "unknown") << line;
    }
    EXPECT_EQ(text_at(v, "host.name"), "egress-1") << line;
    EXPECT_EQ(text_at(v, "observer.name"), "egress-1") << line;
    EXPECT_EQ(text_at(v, "observer.product"), "egressd") << line;
    EXPECT_EQ(text_at(v, "egressd.event"), text_at(v, "event.action")) << line;
    for (const auto& [key, unused] : v) {
        EXPECT_EQ(std::string_view(key).find('.'), std::string_view::npos) << "nested objects, not dotted keys: " << line;
    }
}

TEST(event_formats, ecs_lines_carry_what_ecs_requires_and_the_contract)
{
    event_formatter ecs(format_config(config::event_format::ecs));

    auto allow_line = ecs.finish(ecs.open_line(forwarded_get()), 200);
    auto allow = parse_object(allow_line);
    expect_ecs_event(allow, allow_line);
    EXPECT_EQ(strings_at(allow, "event.category"), (std::vector<std::string>{"network", "web"}));
    EXPECT_EQ(strings_at(allow, "event.type"), (std::vector<std::string>{"allowed"}));
    EXPECT_EQ(text_at(allow, "event.action"), "egress.allow");
    EXPECT_EQ(text_at(allow, "event.outcome"), "success");
    EXPECT_EQ(text_at(allow, "event.reason"), "allowed");
    EXPECT_EQ(text_at(allow, "event.id"), "r-7");
    EXPECT_EQ(text_at(allow, "source.ip"), "10.0.0.5");
    EXPECT_EQ(number_at(allow, "source.port"), 40000);
    EXPECT_EQ(text_at(allow, "destination.address"), "api.example.com");
    EXPECT_EQ(text_at(allow, "destination.domain"), "api.example.com");
    EXPECT_EQ(text_at(allow, "destination.ip"), "93.184.216.34");
    EXPECT_EQ(number_at(allow, "destination.port"), 80);
    EXPECT_EQ(text_at(allow, "user.name"), "alice");
    EXPECT_EQ(text_at(allow, "rule.ruleset"), "web");
    EXPECT_EQ(text_at(allow, "rule.id"), "web#0");
    EXPECT_EQ(text_at(allow, "rule.description"), "the API");
    EXPECT_EQ(text_at(allow, "url.path"), "/v1/items");
    EXPECT_EQ(at_path(allow, "url.query"), nullptr);
    EXPECT_EQ(text_at(allow, "http.request.method"), "GET");
    EXPECT_EQ(number_at(allow, "http.response.status_code"), 200);
    EXPECT_EQ(text_at(allow, "egressd.client"), "app");
    EXPECT_EQ(text_at(allow, "egressd.mode"), "enforce");
    EXPECT_EQ(text_at(allow, "egressd.rule_group"), "web");
    EXPECT_EQ(number_at(allow, "egressd.rule_index"), 0);
    EXPECT_EQ(text_at(allow, "egressd.identity_source"), "proxy_auth");

    auto deny_line = ecs.line(deny_event());
    auto deny = parse_object(deny_line);
    expect_ecs_event(deny, deny_line);
    EXPECT_EQ(strings_at(deny, "event.type"), (std::vector<std::string>{"denied"}));
    EXPECT_EQ(text_at(deny, "event.outcome"), "failure");
    EXPECT_TRUE(at_path(deny, "egressd.client")->is_null());
    EXPECT_EQ(text_at(deny, "destination.address"), "169.254.169.254");
    EXPECT_EQ(at_path(deny, "destination.domain"), nullptr) << "an IP literal is no domain";
    EXPECT_EQ(text_at(deny, "destination.ip"), "169.254.169.254");
    EXPECT_EQ(text_at(deny, "egressd.guard"), "link_local");
    EXPECT_EQ(at_path(deny, "http.response"), nullptr);

    auto error_line = ecs.line(dns_error_event());
    auto error = parse_object(error_line);
    expect_ecs_event(error, error_line);
    EXPECT_EQ(strings_at(error, "event.type"), (std::vector<std::string>{"error"}));
    EXPECT_EQ(text_at(error, "error.code"), "dns_nxdomain");

    auto rejected_line = ecs.line(cert_rejected_event());
    auto rejected = parse_object(rejected_line);
    expect_ecs_event(rejected, rejected_line);
    EXPECT_EQ(strings_at(rejected, "event.category"), (std::vector<std::string>{"network"}));
    EXPECT_EQ(text_at(rejected, "source.ip"), "2001:db8::7");
    EXPECT_EQ(number_at(rejected, "source.port"), 5000);
    EXPECT_EQ(at_path(rejected, "destination"), nullptr);
    EXPECT_EQ(at_path(rejected, "http"), nullptr);
    EXPECT_EQ(text_at(rejected, "tls.client.subject"), "CN=build-agent,O=Example");
    EXPECT_EQ(text_at(rejected, "tls.client.x509.serial_number"), "1A2B");

    auto close_line = ecs.line(sample_close());
    auto closed = parse_object(close_line);
    expect_ecs_event(closed, close_line);
    EXPECT_EQ(strings_at(closed, "event.type"), (std::vector<std::string>{"connection", "end"}));
    EXPECT_EQ(number_at(closed, "event.duration"), 1'234'000'000);
    EXPECT_EQ(number_at(closed, "source.bytes"), 517);
    EXPECT_EQ(number_at(closed, "destination.bytes"), 4096);
    EXPECT_EQ(text_at(closed, "egressd.cause"), "client_closed");

    auto revoke_line = ecs.line(sample_revoke());
    expect_ecs_event(parse_object(revoke_line), revoke_line);
    auto kept = sample_revoke();
    kept.kind = observe::event_kind::would_revoke;
    kept.action = observe::revoke_outcome::would_close;
    auto kept_line = ecs.line(kept);
    expect_ecs_event(parse_object(kept_line), kept_line);

    auto notice_line = ecs.line("egressd.start", {{"workers", 2}}, false);
    auto notice = parse_object(notice_line);
    expect_ecs_event(notice, notice_line);
    EXPECT_EQ(strings_at(notice, "event.category"), (std::vector<std::string>{"process"}));
    EXPECT_EQ(strings_at(notice, "event.type"), (std::vector<std::string>{"start"}));
    EXPECT_EQ(number_at(notice, "egressd.workers"), 2);
}

// OCSF 1.1.0 (https://schema.ocsf.io/1.1.0): the base event's required attributes (activity_id, category_uid,
// class_uid, metadata, severity_id, time, type_uid), metadata's (product, version) and product's (vendor_name);
// the Network category's constraint (at least one of src_endpoint, dst_endpoint); HTTP Activity's (at least one of
// http_request, http_response); Application Lifecycle's app; action_id 0-2/99 and disposition_id from the
// security_control profile.
void expect_ocsf_event(const bj::object& v, const std::string& line)
{
    for (auto attribute : {"activity_id", "category_uid", "class_uid", "severity_id", "time", "type_uid"}) {
        EXPECT_GE(number_at(v, attribute), 0) << attribute << ": " << line;
    }
    EXPECT_EQ(number_at(v, "type_uid"), number_at(v, "class_uid") * 100 + number_at(v, "activity_id")) << line;
    EXPECT_EQ(number_at(v, "category_uid"), number_at(v, "class_uid") / 1000) << line;
    auto severity = number_at(v, "severity_id");
    EXPECT_TRUE((severity >= 0 && severity <= 6) || severity == 99) << line;
    EXPECT_EQ(text_at(v, "metadata.version"), "1.1.0") << line;
    EXPECT_EQ(text_at(v, "metadata.product.vendor_name"), "egressd") << line;
    EXPECT_EQ(text_at(v, "metadata.product.name"), "egressd") << line;
    if (const auto* status = at_path(v, "status_id")) {
        auto s = status->as_int64();
        EXPECT_TRUE(s == 0 || s == 1 || s == 2 || s == 99) << line;
    }
    if (at_path(v, "action_id") != nullptr) {
        auto a = number_at(v, "action_id");
        EXPECT_TRUE(a == 0 || a == 1 || a == 2 || a == 99) << line;
        auto d = number_at(v, "disposition_id");
        EXPECT_TRUE((d >= 0 && d <= 17) || d == 99) << line;
    }
    auto class_uid = number_at(v, "class_uid");
    if (class_uid == 4001 || class_uid == 4002) {
        EXPECT_TRUE(v.contains("src_endpoint") || v.contains("dst_endpoint")) << line;
        EXPECT_EQ(text_at(v, "proxy_endpoint.hostname"), "egress-1") << line;
        EXPECT_TRUE(at_path(v, "unmapped.egressd.event") != nullptr) << line;
    }
    if (class_uid == 4002) {
        EXPECT_TRUE(v.contains("http_request") || v.contains("http_response")) << line;
        auto activity = number_at(v, "activity_id");
        EXPECT_TRUE((activity >= 0 && activity <= 8) || activity == 99) << line;
    }
    if (class_uid == 4001) {
        auto activity = number_at(v, "activity_id");
        EXPECT_TRUE((activity >= 0 && activity <= 6) || activity == 99) << line;
    }
    if (class_uid == 6002) {
        EXPECT_EQ(text_at(v, "app.name"), "egressd") << line;
        EXPECT_EQ(text_at(v, "app.vendor_name"), "egressd") << line;
    }
}

TEST(event_formats, ocsf_lines_carry_what_ocsf_requires_and_the_contract)
{
    event_formatter ocsf(format_config(config::event_format::ocsf, true), "0.1.0");

    auto allow_line = ocsf.finish(ocsf.open_line(forwarded_get()), 502);
    auto allow = parse_object(allow_line);
    expect_ocsf_event(allow, allow_line);
    EXPECT_EQ(number_at(allow, "class_uid"), 4002);
    EXPECT_EQ(number_at(allow, "activity_id"), 3) << "3 Get";
    EXPECT_EQ(number_at(allow, "action_id"), 1);
    EXPECT_EQ(number_at(allow, "disposition_id"), 1);
    EXPECT_EQ(text_at(allow, "metadata.uid"), "r-7");
    EXPECT_EQ(text_at(allow, "metadata.product.version"), "0.1.0");
    EXPECT_EQ(text_at(allow, "src_endpoint.ip"), "10.0.0.5");
    EXPECT_EQ(number_at(allow, "src_endpoint.port"), 40000);
    EXPECT_EQ(text_at(allow, "dst_endpoint.hostname"), "api.example.com");
    EXPECT_EQ(text_at(allow, "dst_endpoint.ip"), "93.184.216.34");
    EXPECT_EQ(number_at(allow, "dst_endpoint.port"), 80);
    EXPECT_EQ(text_at(allow, "actor.user.name"), "alice");
    EXPECT_EQ(text_at(allow, "http_request.http_method"), "GET");
    EXPECT_EQ(text_at(allow, "http_request.url.path"), "/v1/items");
    EXPECT_EQ(text_at(allow, "http_request.url.query_string"), "token=secret");
    EXPECT_EQ(number_at(allow, "http_response.code"), 502);
    EXPECT_EQ(text_at(allow, "unmapped.egressd.event"), "egress.allow");
    EXPECT_EQ(text_at(allow, "unmapped.egressd.client"), "app");
    EXPECT_EQ(text_at(allow, "unmapped.egressd.host"), "api.example.com");
    EXPECT_EQ(text_at(allow, "unmapped.egressd.reason"), "allowed");
    EXPECT_EQ(text_at(allow, "unmapped.egressd.mode"), "enforce");
    EXPECT_EQ(text_at(allow, "unmapped.egressd.rule_group"), "web");
    EXPECT_EQ(number_at(allow, "unmapped.egressd.rule_index"), 0);
    EXPECT_GT(number_at(allow, "time"), 1'600'000'000'000);

    auto deny_line = ocsf.line(deny_event());
    auto deny = parse_object(deny_line);
    expect_ocsf_event(deny, deny_line);
    EXPECT_EQ(number_at(deny, "action_id"), 2);
    EXPECT_EQ(number_at(deny, "disposition_id"), 2);
    EXPECT_EQ(text_at(deny, "dst_endpoint.ip"), "169.254.169.254");
    EXPECT_EQ(at_path(deny, "dst_endpoint.hostname"), nullptr);
    EXPECT_TRUE(at_path(deny, "unmapped.egressd.client")->is_null());

    auto would = deny_event();
    would.event = observe::event_kind::would_deny;
    auto would_line = ocsf.line(would);
    auto report = parse_object(would_line);
    expect_ocsf_event(report, would_line);
    EXPECT_EQ(number_at(report, "action_id"), 1);
    EXPECT_EQ(number_at(report, "disposition_id"), 15);

    auto error_line = ocsf.line(dns_error_event());
    auto error = parse_object(error_line);
    expect_ocsf_event(error, error_line);
    EXPECT_EQ(number_at(error, "status_id"), 2);
    EXPECT_EQ(text_at(error, "status_detail"), "dns_nxdomain");
    EXPECT_EQ(text_at(error, "unmapped.egressd.event"), "egress.error");

    auto rejected_line = ocsf.line(cert_rejected_event());
    auto rejected = parse_object(rejected_line);
    expect_ocsf_event(rejected, rejected_line);
    EXPECT_EQ(number_at(rejected, "class_uid"), 4001);
    EXPECT_EQ(number_at(rejected, "activity_id"), 5) << "5 Refuse";
    EXPECT_EQ(text_at(rejected, "tls.certificate.subject"), "CN=build-agent,O=Example");
    EXPECT_EQ(text_at(rejected, "tls.certificate.serial_number"), "1A2B");
    EXPECT_EQ(text_at(rejected, "unmapped.egressd.method"), "-");

    auto close_line = ocsf.line(sample_close());
    auto closed = parse_object(close_line);
    expect_ocsf_event(closed, close_line);
    EXPECT_EQ(number_at(closed, "class_uid"), 4001);
    EXPECT_EQ(number_at(closed, "activity_id"), 2) << "2 Close";
    EXPECT_EQ(number_at(closed, "traffic.bytes_out"), 517);
    EXPECT_EQ(number_at(closed, "traffic.bytes_in"), 4096);
    EXPECT_EQ(number_at(closed, "duration"), 1234);
    EXPECT_EQ(text_at(closed, "unmapped.egressd.method"), "CONNECT");

    auto revoke_line = ocsf.line(sample_revoke());
    auto revoked = parse_object(revoke_line);
    expect_ocsf_event(revoked, revoke_line);
    EXPECT_EQ(number_at(revoked, "action_id"), 2);

    auto start_line = ocsf.line("egressd.start", {{"workers", 2}}, false);
    auto start = parse_object(start_line);
    expect_ocsf_event(start, start_line);
    EXPECT_EQ(number_at(start, "class_uid"), 6002);
    EXPECT_EQ(number_at(start, "activity_id"), 3) << "3 Start";
    EXPECT_EQ(number_at(start, "unmapped.egressd.workers"), 2);
    EXPECT_EQ(text_at(start, "unmapped.egressd.instance"), "egress-1");
    auto reload_line = ocsf.line("egressd.reload_failed", {{"errors", 1}}, true);
    auto reload = parse_object(reload_line);
    expect_ocsf_event(reload, reload_line);
    EXPECT_EQ(number_at(reload, "activity_id"), 99);
    EXPECT_EQ(text_at(reload, "activity_name"), "egressd.reload_failed");
}

TEST(event_formats, hostile_strings_keep_every_format_valid)
{
    const std::string hostile = std::string("a\"b\\c\n\r\t\x01\x7f\xff\xc3(") + "\xe2\x82\xac}" + std::string(1, '\0');
    for (auto f : {config::event_format::egressd, config::event_format::ecs, config::event_format::ocsf}) {
        event_formatter format(format_config(f, true));
        auto e = forwarded_get();
        e.path = hostile;
        e.query = hostile;
        e.host = hostile;
        e.source = hostile;
        e.user = hostile;
        e.detail = hostile;
        e.identity = hostile;
        parse_object(format.finish(format.open_line(e), 200));
        auto c = cert_rejected_event();
        c.cert_subject = hostile;
        parse_object(format.line(c));
        parse_object(format.line(hostile, {{hostile, hostile}}, true));
    }
}

// Counts what an event_batch's observer sees and how often the batch asks to be flushed.
class counting_observer final : public event_observer {
public:
    void decision(const decision_event&) override { ++decisions; }
    void revoke(const revoke_event&) override { ++revocations; }
    void flush() override { ++flushes; }
    int decisions = 0;
    int revocations = 0;
    int flushes = 0;
};

TEST(event_batch, asks_for_one_flush_per_batch_and_hands_the_observer_its_events)
{
    temp_dir dir;
    event_log log(file_logging(dir));
    int scheduled = 0;
    event_batch batch(log, [&scheduled] { ++scheduled; });
    counting_observer observer;
    batch.set_observer(&observer);
    batch.decision(deny_event());
    batch.decision(deny_event());
    EXPECT_EQ(scheduled, 1);
    EXPECT_EQ(observer.decisions, 2);
    batch.flush();
    EXPECT_EQ(observer.flushes, 1);
    batch.decision(deny_event());
    EXPECT_EQ(scheduled, 2);
}

TEST(event_batch, a_decision_held_for_its_status_still_reaches_the_observer_in_the_next_flush)
{
    temp_dir dir;
    event_log log(file_logging(dir));
    int scheduled = 0;
    event_batch batch(log, [&scheduled] { ++scheduled; });
    counting_observer observer;
    batch.set_observer(&observer);
    // Forwarded plain HTTP: the line waits for the upstream's status, the observer (alerts) must not.
    auto held = batch.open(deny_event());
    EXPECT_EQ(observer.decisions, 1);
    EXPECT_EQ(scheduled, 1);
    batch.complete(std::move(held), 403);
    EXPECT_EQ(scheduled, 1);
    batch.flush();
    EXPECT_EQ(observer.flushes, 1);
}

}  // namespace
}  // namespace egressd::proxy
