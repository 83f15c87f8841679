// The approvals service over a real SQLite store in a temporary directory: requests from denials, bounds,
// decisions and their rules, grants published to the proxy, expiry, and the event stream.

#include "proxy/approvals/service.hpp"

#include "config/policy_loader.hpp"
#include "proxy/event_log.hpp"
#include "tests/support/file_size_limit.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <unistd.h>

namespace egressd::proxy::approvals {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

constexpr const char* policy_text = R"(version: 1
groups:
  base:
    rules:
      - ports: [443]
        destinations: [allowed.example]
  builders:
    rules:
      - ports: [443]
        destinations: [registry.example]
clients:
  ci:
    sources: [10.0.0.0/24]
    groups: [base, builders]
  prod:
    sources: [10.0.1.0/24]
    groups: [base]
    approvals: {required: 2}
  qa:
    sources: [10.0.2.0/24]
    groups: [builders]
)";

std::shared_ptr<const policy::policy> test_policy()
{
    auto loaded = config::load_policy_texts({{"policy.yaml", policy_text}});
    if (!loaded.snapshot) {
        for (const auto& e : loaded.errors) {
            ADD_FAILURE() << e.message;
        }
    }
    return loaded.snapshot;
}

class ServiceTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        char pattern[] = "/tmp/egressd-service-XXXXXX";
        dir_ = ::mkdtemp(pattern);
        log_config_.to_stdout = false;
        log_config_.file = config::rotating_file_config{(dir_ / "events.log").string()};
        log_ = std::make_unique<event_log>(log_config_);
        settings_.store = dir_ / "approvals.db";
        settings_.public_url = "https://approvals.test";
        settings_.default_grant = 8h;
        settings_.max_grant = 24h;
        policy_ = test_policy();
    }

    void TearDown() override
    {
        svc_.reset();
        log_.reset();
        std::filesystem::remove_all(dir_);
    }

    void start()
    {
        svc_ = std::make_unique<service>(
            settings_, open_sqlite_store(settings_.store), *log_, [this] { return policy_; },
            [this](std::shared_ptr<const policy::grant_set> g) {
                published_ = std::move(g);
                ++publications_;
            });
        svc_->load();
        svc_->run();
    }

    // Runs f on the service thread and waits for it: the page's and the API's calls live there.
    template <typename F>
    auto on_service(F f)
    {
        return asio::post(svc_->io(), asio::use_future(std::move(f))).get();
    }

    std::optional<std::int64_t> deny(const std::string& client, const std::string& host, std::uint16_t port = 443)
    {
        // A worker's thread in production: here a second io_context stands for it.
        asio::io_context worker;
        denial d{{client, host, port}, policy::reason::no_matching_rule, "10.0.0.5:40000", ""};
        auto f = asio::co_spawn(worker, svc_->note_denial(d), asio::use_future);
        worker.run();
        return f.get();
    }

    // Whether the event stream holds this text: the log is written by its own thread, so wait a little.
    bool logged(const std::string& text)
    {
        for (int i = 0; i < 50; ++i) {
            log_->flush();
            std::ifstream in(dir_ / "events.log");
            std::stringstream s;
            s << in.rdbuf();
            if (s.str().find(text) != std::string::npos) {
                return true;
            }
            std::this_thread::sleep_for(50ms);
        }
        return false;
    }

    bool granted(const std::string& client, const std::string& host, std::uint16_t port = 443)
    {
        auto set = published_;
        auto id = policy_->find_client(client);
        auto h = policy::host::parse(host);
        auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
        return set && id && h.value && set->match(*policy_, *id, *h.value, port, now) != nullptr;
    }

    std::filesystem::path dir_;
    config::logging_config log_config_;
    std::unique_ptr<event_log> log_;
    config::approvals_config settings_;
    std::shared_ptr<const policy::policy> policy_;
    std::shared_ptr<const policy::grant_set> published_;
    std::atomic<int> publications_{0};
    std::unique_ptr<service> svc_;
    user alice{"alice", role::approver};
    user bob{"bob", role::approver};
    user rita{"rita", role::requester};
};

TEST_F(ServiceTest, ADenialBecomesOnePendingRequestAndLaterDenialsCountOnIt)
{
    start();
    auto first = deny("ci", "api.example.com");
    ASSERT_TRUE(first);
    EXPECT_EQ(deny("ci", "api.example.com"), first);
    EXPECT_EQ(deny("ci", "api.example.com"), first);
    EXPECT_NE(deny("ci", "api.example.com", 8443), first);
    EXPECT_EQ(svc_->counts().pending, 2u);
    std::this_thread::sleep_for(1500ms);  // one tick flushes the hits
    auto r = on_service([&] { return svc_->request(*first); });
    ASSERT_TRUE(std::holds_alternative<access_request>(r));
    EXPECT_EQ(std::get<access_request>(r).hits, 3);
    EXPECT_EQ(std::get<access_request>(r).state, request_state::pending);
    EXPECT_TRUE(logged("\"approval.requested\""));
    EXPECT_EQ(svc_->request_url(*first), "https://approvals.test/requests/" + std::to_string(*first));
}

// Two replicas over one store (here one SQLite file; in a fleet, one PostgreSQL database): a denial seen by both is
// one request, and a decision made through either is applied by the other at its next poll.
TEST_F(ServiceTest, ReplicasSharingAStoreShareRequestsAndApplyEachOthersGrants)
{
    start();
    std::mutex other_mutex;
    std::shared_ptr<const policy::grant_set> other_published;
    service other(settings_, open_sqlite_store(settings_.store), *log_, [this] { return policy_; },
                  [&](std::shared_ptr<const policy::grant_set> g) {
                      std::lock_guard lock(other_mutex);
                      other_published = std::move(g);
                  });
    other.load();
    other.run();
    const auto allows = [&](const std::shared_ptr<const policy::grant_set>& set) {
        auto id = policy_->find_client("ci");
        auto h = policy::host::parse("api.example.com");
        auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
        return set && id && h.value && set->match(*policy_, *id, *h.value, 443, now) != nullptr;
    };
    const auto other_allows = [&] {
        std::lock_guard lock(other_mutex);
        return allows(other_published);
    };
    const auto within_two_seconds = [](auto condition) {
        for (int i = 0; i < 40; ++i) {
            if (condition()) {
                return true;
            }
            std::this_thread::sleep_for(50ms);
        }
        return condition();
    };

    auto id = deny("ci", "api.example.com");
    ASSERT_TRUE(id);
    asio::io_context worker;
    denial d{{"ci", "api.example.com", 443}, policy::reason::no_matching_rule, "10.0.0.6:40000", ""};
    auto seen_by_other = asio::co_spawn(worker, other.note_denial(d), asio::use_future);
    worker.run();
    EXPECT_EQ(seen_by_other.get(), id) << "the second replica made its own request for the same key";
    auto r = on_service([&] { return svc_->request(*id); });
    ASSERT_TRUE(std::holds_alternative<access_request>(r));
    EXPECT_EQ(std::get<access_request>(r).hits, 2);

    auto approved = on_service([&] { return svc_->approve(alice, *id, {"", "", 2min, ""}); });
    ASSERT_TRUE(std::holds_alternative<approve_result>(approved));
    EXPECT_TRUE(within_two_seconds(other_allows)) << "the other replica did not apply the grant";
    const auto grant_id = std::get<approve_result>(approved).grant->id;
    auto revoked = asio::post(other.io(), asio::use_future([&] { return other.revoke(bob, grant_id, ""); })).get();
    ASSERT_TRUE(std::holds_alternative<grant_record>(revoked));
    EXPECT_FALSE(other_allows());
    EXPECT_TRUE(within_two_seconds([&] { return !granted("ci", "api.example.com"); }))
        << "the first replica still applies a grant revoked through the other";
    other.stop();
}

TEST_F(ServiceTest, MaxPendingAndThePerClientRateBoundNewRequests)
{
    settings_.max_pending = 3;
    settings_.requests_per_client_per_minute = 2;
    start();
    EXPECT_TRUE(deny("ci", "a.example"));
    EXPECT_TRUE(deny("ci", "b.example"));
    EXPECT_FALSE(deny("ci", "c.example")) << "a third new request of one client within a minute";
    EXPECT_TRUE(deny("prod", "a.example"));
    EXPECT_FALSE(deny("prod", "b.example")) << "max_pending reached";
    EXPECT_EQ(svc_->counts().pending, 3u);
    EXPECT_EQ(svc_->counts().requests_limited, 2u);
}

TEST_F(ServiceTest, ApprovalPublishesAGrantTheProxyMatches)
{
    start();
    auto id = *deny("ci", "api.example.com");
    EXPECT_FALSE(granted("ci", "api.example.com"));
    auto result = on_service([&] { return svc_->approve(alice, id, {"", "", 2min, "ticket OPS-1"}); });
    ASSERT_TRUE(std::holds_alternative<approve_result>(result));
    const auto& g = *std::get<approve_result>(result).grant;
    EXPECT_EQ(g.destination, "api.example.com");
    EXPECT_EQ(g.scope_name, "ci");
    EXPECT_TRUE(granted("ci", "api.example.com"));
    EXPECT_FALSE(granted("ci", "api.example.com", 8443));
    EXPECT_FALSE(granted("ci", "www.example.com"));
    EXPECT_EQ(svc_->counts().pending, 0u);
    EXPECT_EQ(svc_->counts().active_grants, 1u);
    EXPECT_TRUE(logged("\"approval.approved\""));
    // A decided request is not decided again.
    auto again = on_service([&] { return svc_->deny(bob, id, "late"); });
    ASSERT_TRUE(std::holds_alternative<error>(again));
    EXPECT_EQ(std::get<error>(again).kind, failure::conflict);
}

TEST_F(ServiceTest, AWiderScopeAndAGroupScopeReachFurther)
{
    start();
    auto id = *deny("ci", "api.example.com");
    auto result = on_service([&] { return svc_->approve(alice, id, {"*.example.com", "builders", 1h, ""}); });
    ASSERT_TRUE(std::holds_alternative<approve_result>(result)) << std::get<error>(result).message;
    EXPECT_TRUE(granted("ci", "www.example.com"));
    EXPECT_TRUE(granted("qa", "api.example.com")) << "qa is in group builders too";
    EXPECT_FALSE(granted("prod", "api.example.com")) << "prod is not";
    EXPECT_FALSE(granted("ci", "example.com")) << "*.example.com is below example.com only";
}

TEST_F(ServiceTest, ScopesDurationsGroupsAndRolesAreChecked)
{
    start();
    auto id = *deny("ci", "api.example.com");
    auto expect_error = [&](const approve_params& p, const user& who, failure kind) {
        auto r = on_service([&] { return svc_->approve(who, id, p); });
        ASSERT_TRUE(std::holds_alternative<error>(r));
        EXPECT_EQ(std::get<error>(r).kind, kind) << std::get<error>(r).message;
    };
    expect_error({"evil-example.com", "", std::nullopt, ""}, alice, failure::invalid);
    expect_error({"*.api.example.com", "", std::nullopt, ""}, alice, failure::invalid);
    expect_error({"", "", 48h, ""}, alice, failure::invalid);
    expect_error({"", "not-a-group", std::nullopt, ""}, alice, failure::invalid);
    expect_error({"", "", std::nullopt, ""}, rita, failure::forbidden);
    auto choices = on_service([&] { return svc_->scope_choices(std::get<access_request>(svc_->request(id))); });
    ASSERT_EQ(choices.size(), 3u);
    EXPECT_EQ(choices[0].destination, "api.example.com");
    EXPECT_EQ(choices[1].destination, "*.example.com");
    EXPECT_EQ(choices[2].destination, ".example.com");
    auto groups = on_service([&] { return svc_->groups_of("ci"); });
    EXPECT_EQ(groups, (std::vector<std::string>{"base", "builders"}));
}

TEST_F(ServiceTest, TheApproverWhoJustifiedMayNotApproveAndTwoApproverClientsNeedTwo)
{
    start();
    auto id = *deny("prod", "api.example.com");
    ASSERT_TRUE(std::holds_alternative<access_request>(on_service([&] { return svc_->justify(alice, id, "OPS-7"); })));
    auto self = on_service([&] { return svc_->approve(alice, id, {}); });
    ASSERT_TRUE(std::holds_alternative<error>(self));
    EXPECT_EQ(std::get<error>(self).kind, failure::forbidden);

    auto first = on_service([&] { return svc_->approve(bob, id, {}); });
    ASSERT_TRUE(std::holds_alternative<approve_result>(first));
    EXPECT_FALSE(std::get<approve_result>(first).grant) << "one of two approvers";
    EXPECT_FALSE(granted("prod", "api.example.com"));
    auto twice = on_service([&] { return svc_->approve(bob, id, {}); });
    ASSERT_TRUE(std::holds_alternative<error>(twice));
    EXPECT_EQ(std::get<error>(twice).kind, failure::conflict);
    user carol{"carol", role::approver};
    auto second = on_service([&] { return svc_->approve(carol, id, {}); });
    ASSERT_TRUE(std::holds_alternative<approve_result>(second));
    ASSERT_TRUE(std::get<approve_result>(second).grant);
    EXPECT_TRUE(granted("prod", "api.example.com"));
}

TEST_F(ServiceTest, TheSecondApproverGrantsExactlyWhatTheFirstApproved)
{
    start();
    auto id = *deny("prod", "api.example.com");
    auto first = on_service([&] { return svc_->approve(alice, id, {"api.example.com", "", 1h, ""}); });
    ASSERT_TRUE(std::holds_alternative<approve_result>(first));
    for (const approve_params& wider : {approve_params{".example.com", "", 1h, ""},
                                        approve_params{"api.example.com", "", 2h, ""},
                                        approve_params{"api.example.com", "base", 1h, ""}}) {
        auto r = on_service([&] { return svc_->approve(bob, id, wider); });
        ASSERT_TRUE(std::holds_alternative<error>(r)) << wider.destination;
        EXPECT_EQ(std::get<error>(r).kind, failure::conflict);
    }
    EXPECT_FALSE(granted("prod", "www.example.com"));
    auto same = on_service([&] { return svc_->approve(bob, id, {"api.example.com", "", 1h, "agreed"}); });
    ASSERT_TRUE(std::holds_alternative<approve_result>(same));
    EXPECT_TRUE(std::get<approve_result>(same).grant);
}

TEST_F(ServiceTest, AGroupGrantNeedsAsManyApproversAsAnyClientOfTheGroup)
{
    start();
    auto id = *deny("ci", "api.example.com");
    // ci needs one approver, but group base also holds prod, which needs two.
    auto r = on_service([&] { return svc_->approve(alice, id, {"", "base", 1h, ""}); });
    ASSERT_TRUE(std::holds_alternative<approve_result>(r));
    EXPECT_FALSE(std::get<approve_result>(r).grant);
    EXPECT_FALSE(granted("prod", "api.example.com"));
    auto own = on_service([&] { return svc_->approve(bob, id, {"", "builders", 1h, ""}); });
    ASSERT_TRUE(std::holds_alternative<error>(own)) << "a second approver cannot change the scope";
}

TEST_F(ServiceTest, ExtensionsFollowTheApprovalRules)
{
    start();
    auto id = *deny("ci", "api.example.com");
    on_service([&] { return svc_->justify(alice, id, "OPS-9"); });
    auto approved = on_service([&] { return svc_->approve(bob, id, {"", "", 1h, ""}); });
    auto grant_id = std::get<approve_result>(approved).grant->id;
    auto by_justifier = on_service([&] { return svc_->extend(alice, grant_id, 2h, ""); });
    ASSERT_TRUE(std::holds_alternative<error>(by_justifier));
    EXPECT_EQ(std::get<error>(by_justifier).kind, failure::forbidden);
    auto too_long = on_service([&] { return svc_->extend(bob, grant_id, 48h, ""); });
    ASSERT_TRUE(std::holds_alternative<error>(too_long));
    EXPECT_EQ(std::get<error>(too_long).kind, failure::invalid);

    auto two = *deny("prod", "api.example.com");
    on_service([&] { return svc_->approve(alice, two, {"", "", 1h, ""}); });
    user carol{"carol", role::approver};
    auto both = on_service([&] { return svc_->approve(carol, two, {"", "", 1h, ""}); });
    auto two_grant = std::get<approve_result>(both).grant->id;
    auto alone = on_service([&] { return svc_->extend(bob, two_grant, 2h, ""); });
    ASSERT_TRUE(std::holds_alternative<error>(alone));
    EXPECT_EQ(std::get<error>(alone).kind, failure::forbidden);
}

TEST_F(ServiceTest, ADeniedRequestStandsAndATopLevelScopeIsRefused)
{
    start();
    auto id = *deny("ci", "api.example.com");
    for (const char* tld : {"*.com", ".com"}) {
        auto r = on_service([&] { return svc_->approve(alice, id, {tld, "", std::nullopt, ""}); });
        ASSERT_TRUE(std::holds_alternative<error>(r)) << tld;
        EXPECT_EQ(std::get<error>(r).kind, failure::invalid);
    }
    ASSERT_TRUE(std::holds_alternative<access_request>(on_service([&] { return svc_->deny(alice, id, "no"); })));
    EXPECT_EQ(deny("ci", "api.example.com"), id) << "the client's retry points at the denial, not a new request";
    EXPECT_EQ(svc_->counts().pending, 0u);
    svc_.reset();
    start();
    EXPECT_EQ(deny("ci", "api.example.com"), id) << "and after a restart";
}

TEST_F(ServiceTest, RevokeAndExtendRepublishAndExpiryEndsAGrant)
{
    settings_.max_grant = 24h;
    start();
    auto id = *deny("ci", "api.example.com");
    auto approved = on_service([&] { return svc_->approve(alice, id, {"", "", 2s, ""}); });
    auto grant_id = std::get<approve_result>(approved).grant->id;
    auto extended = on_service([&] { return svc_->extend(alice, grant_id, 1h, "more time"); });
    ASSERT_TRUE(std::holds_alternative<grant_record>(extended));
    std::this_thread::sleep_for(3s);
    EXPECT_TRUE(granted("ci", "api.example.com")) << "extended past its first expiry";
    auto revoked = on_service([&] { return svc_->revoke(alice, grant_id, "done"); });
    ASSERT_TRUE(std::holds_alternative<grant_record>(revoked));
    EXPECT_FALSE(granted("ci", "api.example.com"));
    EXPECT_EQ(svc_->counts().active_grants, 0u);

    auto other = *deny("ci", "short.example.com");
    on_service([&] { return svc_->approve(alice, other, {"", "", 1s, ""}); });
    EXPECT_TRUE(granted("ci", "short.example.com"));
    for (int i = 0; i < 40 && svc_->counts().expired == 0; ++i) {
        std::this_thread::sleep_for(100ms);
    }
    EXPECT_EQ(svc_->counts().expired, 1u);
    EXPECT_FALSE(granted("ci", "short.example.com"));
    EXPECT_TRUE(logged("\"approval.extended\""));
    EXPECT_TRUE(logged("\"approval.revoked\""));
    EXPECT_TRUE(logged("\"approval.expired\""));
}

TEST_F(ServiceTest, AStoreThatCannotBeWrittenRefusesNewGrantsAndKeepsTheOnesInForce)
{
    start();
    auto kept = *deny("ci", "kept.example.com");
    on_service([&] { return svc_->approve(alice, kept, {"", "", 1h, ""}); });
    auto asked = *deny("ci", "asked.example.com");
    ASSERT_TRUE(granted("ci", "kept.example.com"));
    std::optional<outcome<approve_result>> refused;
    std::optional<std::int64_t> new_request;
    bool limited = false;
    {
        test_support::file_size_limit full_disk;
        limited = full_disk.ok();
        refused = on_service([&] { return svc_->approve(alice, asked, {"", "", 1h, ""}); });
        new_request = deny("ci", "new.example.com");
    }
    ASSERT_TRUE(limited) << "setrlimit(RLIMIT_FSIZE) failed";
    ASSERT_TRUE(std::holds_alternative<error>(*refused));
    EXPECT_EQ(std::get<error>(*refused).kind, failure::unavailable);
    EXPECT_NE(std::get<error>(*refused).message.find("cannot be written"), std::string::npos)
        << std::get<error>(*refused).message;
    EXPECT_FALSE(new_request) << "no request id for a row that was never written";
    EXPECT_FALSE(granted("ci", "asked.example.com")) << "fail closed: no grant without its row";
    EXPECT_TRUE(granted("ci", "kept.example.com")) << "the grants in force go on";
    EXPECT_GE(svc_->counts().store_failures, 2u);
    // Once the disk has room again, the same request can be approved.
    auto later = on_service([&] { return svc_->approve(alice, asked, {"", "", 1h, ""}); });
    ASSERT_TRUE(std::holds_alternative<approve_result>(later));
    EXPECT_TRUE(granted("ci", "asked.example.com"));
}

TEST_F(ServiceTest, GrantsAndPendingRequestsSurviveARestart)
{
    start();
    auto id = *deny("ci", "api.example.com");
    auto pending = *deny("ci", "other.example.com");
    on_service([&] { return svc_->approve(alice, id, {"", "", 1h, ""}); });
    svc_.reset();
    published_.reset();
    start();
    EXPECT_TRUE(granted("ci", "api.example.com")) << "loaded before the proxy is ready";
    EXPECT_EQ(deny("ci", "other.example.com"), pending);
}

TEST_F(ServiceTest, TheSnippetIsPolicyYamlThatAllowsTheSameThing)
{
    start();
    auto id = *deny("ci", "api.example.com");
    auto approved = on_service([&] { return svc_->approve(alice, id, {"*.example.com", "", 1h, "OPS-1"}); });
    auto snippet = on_service([&] { return svc_->policy_snippet(*std::get<approve_result>(approved).grant); });
    EXPECT_NE(snippet.find("destinations: [\"*.example.com\"]"), std::string::npos) << snippet;
    EXPECT_NE(snippet.find("ports: [443]"), std::string::npos) << snippet;
    EXPECT_NE(snippet.find("approved-ci:"), std::string::npos) << snippet;
    EXPECT_NE(snippet.find("access request " + std::to_string(id) + ", approved by alice: OPS-1"), std::string::npos)
        << snippet;
}

}  // namespace
}  // namespace egressd::proxy::approvals
