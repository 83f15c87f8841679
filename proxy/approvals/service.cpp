#include "proxy/approvals/service.hpp"

#include "config/rfc3339.hpp"
#include "proxy/event_log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <functional>

namespace egressd::proxy::approvals {

namespace asio = boost::asio;

namespace {

constexpr std::size_t max_text = 2000;  // a justification or a note: a ticket link and a few sentences
constexpr auto request_deadline = std::chrono::seconds(2);

time_point now_seconds() { return std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()); }

std::string duration_text(std::chrono::seconds d)
{
    auto s = d.count();
    if (s % 86400 == 0) {
        return std::to_string(s / 86400) + "d";
    }
    if (s % 3600 == 0) {
        return std::to_string(s / 3600) + "h";
    }
    if (s % 60 == 0) {
        return std::to_string(s / 60) + "m";
    }
    return std::to_string(s) + "s";
}

std::string key_text(const request_key& k) { return k.client + " " + k.host + ":" + std::to_string(k.port); }

// The destination an approver typed (or picked), if it covers the requested host. Patterns are label-based:
// "*.example.com" covers "api.example.com", never "example.com" nor "evil-example.com".
std::optional<policy::domain_pattern> covering_pattern(const std::string& text, const std::string& host)
{
    auto target = policy::host::parse(host);
    if (!target.value) {
        return std::nullopt;
    }
    if (const auto* literal = target.value->literal()) {
        auto given = policy::host::parse(text);
        if (given.value && given.value->literal() && *given.value->literal() == *literal) {
            return policy::domain_pattern{policy::pattern_kind::exact, literal->to_string()};
        }
        return std::nullopt;
    }
    auto pattern = policy::parse_domain_pattern(text);
    if (!pattern.value) {
        return std::nullopt;
    }
    const std::string& name = *target.value->name();
    const auto& p = *pattern.value;
    if (p.kind != policy::pattern_kind::exact && p.name.find('.') == std::string::npos) {
        return std::nullopt;  // "*.com" or ".com" would open a whole top-level domain
    }
    bool below = name.size() > p.name.size() && name.ends_with(p.name) && name[name.size() - p.name.size() - 1] == '.';
    bool covers = false;
    switch (p.kind) {
    case policy::pattern_kind::exact:
        covers = name == p.name;
        break;
    case policy::pattern_kind::subdomains:
        covers = below;
        break;
    case policy::pattern_kind::domain:
        covers = below || name == p.name;
        break;
    }
    return covers ? pattern.value : std::nullopt;
}

std::optional<policy::grant> to_policy_grant(const grant_record& g)
{
    policy::grant out;
    out.id = static_cast<std::uint64_t>(g.id);
    out.scope = g.scope;
    out.scope_name = g.scope_name;
    out.port = g.port;
    out.expires = g.expires;
    if (auto literal = policy::host::parse(g.destination); literal.value && literal.value->literal()) {
        out.destination = {policy::pattern_kind::exact, literal.value->literal()->to_string()};
        return out;
    }
    auto pattern = policy::parse_domain_pattern(g.destination);
    if (!pattern.value) {
        return std::nullopt;
    }
    out.destination = *pattern.value;
    return out;
}

std::string yaml_quoted(std::string_view text)
{
    std::string out = "\"";
    for (char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
        }
        out += (c == '\n' || c == '\r') ? ' ' : c;
    }
    return out + "\"";
}

}  // namespace

std::string_view to_string(role r) { return r == role::approver ? "approver" : "requester"; }

std::size_t service::key_hash::operator()(const request_key& k) const
{
    std::size_t h = std::hash<std::string>{}(k.client);
    h ^= std::hash<std::string>{}(k.host) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h ^ (k.port * 0x9e3779b1u);
}

service::service(const config::approvals_config& settings, std::unique_ptr<store> s, event_log& log,
                 policy_source policy, grant_sink publish)
    : settings_(settings), store_(std::move(s)), log_(log), policy_(std::move(policy)), publish_(std::move(publish)),
      public_url_(settings.public_url), grants_(policy::grant_set::empty())
{
}

void service::apply_settings(config::approvals_config next)
{
    {
        std::lock_guard lock(mutex_);
        public_url_ = next.public_url;
    }
    if (thread_.joinable()) {
        asio::post(io_, [this, next = std::move(next)]() mutable { settings_ = std::move(next); });
    } else {
        settings_ = std::move(next);
    }
}

std::string service::public_url() const
{
    std::lock_guard lock(mutex_);
    return public_url_;
}

service::~service() { stop(); }

void service::load()
{
    // The version first: whatever changes while the rest is read shows up as a newer version at the next poll.
    const auto version = store_->change_version();
    auto pending = store_->pending_requests();
    auto now = now_seconds();
    auto denied = store_->requests(request_state::denied, settings_.max_pending);
    auto active = store_->active_grants();
    {
        std::lock_guard lock(mutex_);
        std::unordered_map<request_key, pending_entry, key_hash> next;
        for (auto& r : pending) {
            auto it = pending_.find(r.key);
            // The same request: keep the hits counted here and not yet written.
            next[r.key] = it != pending_.end() && it->second.id == r.id
                              ? it->second
                              : pending_entry{r.id, 0, r.last_seen, r.reason, r.last_source, r.last_identity};
        }
        pending_ = std::move(next);
        counts_.pending = pending_.size();
    }
    for (const auto& r : denied) {
        if (r.decided_at && *r.decided_at + settings_.request_ttl > now && !denied_.contains(r.key)) {
            denied_[r.key] = denied_entry{r.id, *r.decided_at + settings_.request_ttl};
        }
    }
    install_grants(active);
    republish_ = false;
    seen_version_ = version;
    loaded_ = true;
}

void service::run()
{
    work_.emplace(io_.get_executor());
    schedule_tick();
    listener_ = store_->listen_for_changes();
    if (listener_) {
        listen_thread_ = std::thread([this] { listen_for_changes(); });
    }
    thread_ = std::thread([this] {
        // A bug in one handler must not end the process: it is logged and the loop goes on.
        for (;;) {
            try {
                io_.run();
                return;
            } catch (const std::exception& e) {
                log_.notice("approval.internal_error", {{"error", e.what()}}, true);
            }
        }
    });
}

void service::stop()
{
    if (stopped_.exchange(true)) {
        return;
    }
    asio::post(io_, [this] {
        tick_timer_.cancel();
        try {
            flush_hits();
        } catch (const store_error&) {
            // Hit counts are best effort; the requests themselves are already stored.
        }
        work_.reset();
    });
    if (thread_.joinable()) {
        thread_.join();
    }
    if (listen_thread_.joinable()) {
        listen_thread_.join();
    }
}

void service::listen_for_changes()
{
    while (!stopped_) {
        // Short waits, so that stop() is not held up for long.
        if (!listener_->wait(std::chrono::milliseconds(500)) || stopped_) {
            continue;
        }
        asio::post(io_, [this] {
            if (!loaded_ || stopped_) {
                return;  // the tick loads first
            }
            try {
                apply_changes();
            } catch (const store_error& e) {
                background_failure(e, "cannot read the changes other replicas made");
            }
        });
    }
}

std::shared_ptr<const policy::policy> service::current_policy() const { return policy_ ? policy_() : nullptr; }

std::shared_ptr<const policy::grant_set> service::grants() const { return grants_snapshot(); }

std::shared_ptr<const policy::grant_set> service::grants_snapshot() const
{
    std::lock_guard lock(mutex_);
    return grants_;
}

service_counts service::counts() const
{
    std::lock_guard lock(mutex_);
    return counts_;
}

void service::count(std::uint64_t service_counts::*which)
{
    std::lock_guard lock(mutex_);
    ++(counts_.*which);
}

std::string service::request_url(std::int64_t id) const { return public_url() + "/requests/" + std::to_string(id); }

asio::awaitable<std::optional<std::int64_t>> service::note_denial(const denial& d)
{
    auto now = now_seconds();
    {
        std::lock_guard lock(mutex_);
        if (auto it = pending_.find(d.key); it != pending_.end()) {
            auto& e = it->second;
            ++e.unflushed_hits;
            e.last_seen = now;
            e.reason = policy::to_string(d.why);
            e.last_source = d.source;
            e.last_identity = d.identity;
            co_return e.id;
        }
    }
    if (stopped_) {
        co_return std::nullopt;
    }
    // The store is used on the service thread only; the session waits for the new row (a new key is rare, and
    // bounded per client) so that the 403 can name a request that exists, but never longer than a deadline: a
    // slow store costs the 403 its request id, not its promptness. The service's answer comes back to this
    // executor and cancels the timer the session waits on.
    struct waiter {
        explicit waiter(asio::any_io_executor ex) : timer(std::move(ex)) {}
        asio::steady_timer timer;
        std::optional<std::int64_t> id;
    };
    auto here = co_await asio::this_coro::executor;
    auto w = std::make_shared<waiter>(here);
    w->timer.expires_after(request_deadline);
    // The waiter travels on: its timer must die on its own executor's thread, never on the service's (where the
    // worker's io_context and its timer service may already be gone).
    asio::post(io_, [this, d, now, w, here]() mutable {
        std::optional<std::int64_t> made;
        try {
            made = create_request(d, now);
        } catch (const std::exception& e) {
            log_.notice("approval.internal_error", {{"what", "creating an access request"}, {"error", e.what()}}, true);
        }
        asio::post(here, [w = std::move(w), made] {
            w->id = made;
            w->timer.cancel();
        });
    });
    co_await w->timer.async_wait(asio::as_tuple(asio::use_awaitable));
    co_return w->id;
}

std::optional<std::int64_t> service::create_request(const denial& d, time_point now)
{
    // A denied request stands for request_ttl: the client's retries point at it instead of asking again.
    if (auto denied = denied_.find(d.key); denied != denied_.end() && denied->second.until > now) {
        return denied->second.id;
    }
    {
        std::lock_guard lock(mutex_);
        if (auto it = pending_.find(d.key); it != pending_.end()) {
            ++it->second.unflushed_hits;  // another worker's denial of the same key got here first
            return it->second.id;
        }
        if (pending_.size() >= settings_.max_pending) {
            ++counts_.requests_limited;
            return std::nullopt;
        }
    }
    auto& recent = recent_by_client_[d.key.client];
    auto steady = std::chrono::steady_clock::now();
    std::erase_if(recent, [&](auto t) { return steady - t >= std::chrono::minutes(1); });
    if (recent.size() >= settings_.requests_per_client_per_minute) {
        count(&service_counts::requests_limited);
        return std::nullopt;
    }
    access_request made;
    try {
        made = store_->create_request(d.key, now, std::string(policy::to_string(d.why)), d.source, d.identity);
    } catch (const store_error& e) {
        background_failure(e, "cannot record an access request");
        return std::nullopt;
    }
    if (made.hits > 1) {
        // Another replica made it first: this denial was counted on it, and its announcement was theirs.
        std::lock_guard lock(mutex_);
        pending_[d.key] = pending_entry{made.id, 0, now, made.reason, d.source, d.identity};
        counts_.pending = pending_.size();
        return made.id;
    }
    recent.push_back(steady);
    {
        std::lock_guard lock(mutex_);
        pending_[d.key] = pending_entry{made.id, 0, now, made.reason, d.source, d.identity};
        counts_.pending = pending_.size();
        ++counts_.requests_created;
    }
    log_.notice("approval.requested", {{"request_id", made.id},
                                       {"client", d.key.client},
                                       {"host", d.key.host},
                                       {"port", d.key.port},
                                       {"reason", made.reason},
                                       {"source", d.source},
                                       {"identity", d.identity},
                                       {"url", request_url(made.id)}});
    auto key = key_text(d.key);
    auto last = notified_at_.find(key);
    if (last == notified_at_.end() || steady - last->second >= settings_.notify_cooldown) {
        notified_at_[key] = steady;
        notify({"requested", now, made.id, std::nullopt, d.key.client, d.key.host, d.key.port, {}, {}, std::nullopt,
                made.reason, made.hits, request_url(made.id)});
    }
    return made.id;
}

void service::notify(notification n)
{
    if (notifier_ != nullptr) {
        notifier_->enqueue(n);
    }
}

error service::store_failed(const store_error& e, std::string_view what)
{
    count(&service_counts::store_failures);
    log_.notice("approval.store_error", {{"what", what}, {"error", e.what()}}, true);
    return {failure::unavailable, std::string(what) + ": the approvals store cannot be written (" + e.what() +
                                      "); nothing was changed"};
}

void service::forget_pending(const request_key& key)
{
    std::lock_guard lock(mutex_);
    pending_.erase(key);
    counts_.pending = pending_.size();
}

void service::publish_grants(std::optional<std::uint64_t> ended)
{
    std::vector<grant_record> active;
    try {
        active = store_->active_grants();
        republish_ = false;
    } catch (const store_error& e) {
        // The change is committed but the set cannot be read back: retried at every tick. Meanwhile a grant that
        // ended leaves the set in force at once (fail closed); one just made waits for the retry.
        background_failure(e, "cannot read the active grants");
        republish_ = true;
        if (!ended) {
            return;
        }
        std::vector<policy::grant> kept;
        for (const auto& g : grants_snapshot()->all()) {
            if (g.id != *ended) {
                kept.push_back(g);
            }
        }
        publish_set(policy::grant_set::make(std::move(kept)));
        return;
    }
    install_grants(active);
}

void service::install_grants(const std::vector<grant_record>& active)
{
    std::vector<policy::grant> grants;
    for (const auto& g : active) {
        if (auto pg = to_policy_grant(g)) {
            grants.push_back(std::move(*pg));
        }
    }
    publish_set(policy::grant_set::make(std::move(grants)));
}

void service::publish_set(std::shared_ptr<const policy::grant_set> set)
{
    {
        std::lock_guard lock(mutex_);
        grants_ = set;
        counts_.active_grants = set->size();
    }
    if (publish_) {
        publish_(set);
    }
}

void service::schedule_tick()
{
    tick_timer_.expires_after(std::chrono::seconds(1));
    tick_timer_.async_wait([this](boost::system::error_code ec) {
        if (ec || stopped_) {
            return;
        }
        tick();
        schedule_tick();
    });
}

void service::flush_hits()
{
    std::vector<hit_update> updates;
    {
        std::lock_guard lock(mutex_);
        for (auto& [key, e] : pending_) {
            if (e.unflushed_hits > 0) {
                updates.push_back({e.id, e.unflushed_hits, e.last_seen, e.reason, e.last_source, e.last_identity});
                e.unflushed_hits = 0;
            }
        }
    }
    if (updates.empty()) {
        return;
    }
    try {
        store_->add_hits(updates);
    } catch (const store_error&) {
        // Kept for the next flush: a store that is down for a while still gets the counts when it returns.
        std::lock_guard lock(mutex_);
        for (auto& [key, e] : pending_) {
            for (const auto& u : updates) {
                if (u.request_id == e.id) {
                    e.unflushed_hits += u.hits;
                }
            }
        }
        throw;
    }
}

void service::apply_changes()
{
    if (store_->change_version() != seen_version_) {
        load();
    }
}

void service::background_failure(const store_error& e, std::string_view what)
{
    count(&service_counts::store_failures);
    // The next successful poll reads everything again: what other replicas did meanwhile is caught up.
    seen_version_.reset();
    if (store_down_) {
        return;
    }
    store_down_ = true;
    log_.notice("approval.store_unavailable", {{"what", what}, {"error", e.what()}}, true);
}

void service::tick()
{
    auto now = now_seconds();
    std::erase_if(notified_at_, [&](const auto& n) {
        return std::chrono::steady_clock::now() - n.second >= settings_.notify_cooldown;
    });
    std::erase_if(denied_, [&](const auto& d) { return d.second.until <= now; });
    try {
        if (!loaded_) {
            load();
            auto c = counts();
            log_.notice("approval.loaded", {{"pending", c.pending}, {"active_grants", c.active_grants}});
            if (on_loaded_) {
                on_loaded_();
            }
        }
        if (republish_) {
            publish_grants();
        }
        flush_hits();
        auto expired = store_->expire(now, now - settings_.request_ttl);
        for (const auto& r : expired.requests) {
            forget_pending(r.key);
            log_.notice("approval.expired", {{"what", "request"},
                                             {"request_id", r.id},
                                             {"client", r.key.client},
                                             {"host", r.key.host},
                                             {"port", r.key.port}});
        }
        for (const auto& g : expired.grants) {
            count(&service_counts::expired);
            warned_.erase(g.id);
            log_.notice("approval.expired", {{"what", "grant"},
                                             {"grant_id", g.id},
                                             {"request_id", g.request_id},
                                             {"scope", g.scope == policy::grant_scope::group ? "group" : "client"},
                                             {"scope_name", g.scope_name},
                                             {"destination", g.destination},
                                             {"port", g.port}});
        }
        if (!expired.grants.empty()) {
            publish_grants();  // a grant past its expiry matches nothing even in a set that could not be renewed
        }
        apply_changes();
        if (notifier_ != nullptr) {
            auto in_force = grants_snapshot();
            std::erase_if(warned_, [&](const auto& w) {
                return in_force->find(static_cast<std::uint64_t>(w.first)) == nullptr;
            });
            for (const auto& g : store_->active_grants()) {
                if (g.expires - now <= settings_.expiry_warning && !warned_.contains(g.id)) {
                    warned_[g.id] = true;
                    notify({"expiring", now, g.request_id, g.id, g.scope_name, g.destination, g.port, {}, g.note,
                            g.expires, {}, std::nullopt, request_url(g.request_id)});
                }
            }
        }
        if (store_down_ && !republish_) {
            store_down_ = false;
            log_.notice("approval.store_available", {{"pending", counts().pending}});
        }
    } catch (const store_error& e) {
        background_failure(e, loaded_ ? "cannot update access requests" : "cannot load access requests and grants");
    }
}

std::optional<error> service::check_duration(std::chrono::seconds d) const
{
    if (d.count() <= 0) {
        return error{failure::invalid, "the duration must be positive, like 8h"};
    }
    if (d > settings_.max_grant) {
        return error{failure::invalid,
                     "the duration " + duration_text(d) + " is longer than max_grant " + duration_text(settings_.max_grant)};
    }
    return std::nullopt;
}

std::vector<access_request> service::requests(std::optional<request_state> state, std::size_t limit)
{
    return store_->requests(state, limit);
}

outcome<access_request> service::request(std::int64_t id)
{
    if (auto r = store_->request(id)) {
        return *r;
    }
    return error{failure::not_found, "no access request " + std::to_string(id)};
}

std::vector<grant_record> service::grants_list(std::optional<grant_state> state, std::size_t limit)
{
    return store_->grants(state, limit);
}

std::optional<grant_record> service::grant(std::int64_t id) { return store_->grant(id); }

std::vector<history_entry> service::history(const history_filter& filter) { return store_->history(filter); }

outcome<access_request> service::justify(const user& who, std::int64_t request_id, const std::string& text)
{
    if (text.empty() || text.size() > max_text) {
        return error{failure::invalid, "a justification is 1 to 2000 characters: a ticket link, a reason"};
    }
    try {
        if (!store_->justify(request_id, who.name, text, now_seconds())) {
            auto r = store_->request(request_id);
            return r ? error{failure::conflict, "request " + std::to_string(request_id) + " is " +
                                                     std::string(to_string(r->state)) + ", no longer pending"}
                     : error{failure::not_found, "no access request " + std::to_string(request_id)};
        }
    } catch (const store_error& e) {
        return store_failed(e, "cannot record the justification");
    }
    auto r = store_->request(request_id);
    log_.notice("approval.justified", {{"request_id", request_id},
                                       {"user", who.name},
                                       {"client", r->key.client},
                                       {"host", r->key.host},
                                       {"port", r->key.port},
                                       {"text", text}});
    return *r;
}

outcome<approve_result> service::approve(const user& who, std::int64_t request_id, const approve_params& params)
{
    if (who.level != role::approver) {
        return error{failure::forbidden, "only approvers decide access requests"};
    }
    if (params.note.size() > max_text) {
        return error{failure::invalid, "a note is at most 2000 characters"};
    }
    std::optional<access_request> r;
    try {
        r = store_->request(request_id);
    } catch (const store_error& e) {
        return store_failed(e, "cannot record the approval");
    }
    if (!r) {
        return error{failure::not_found, "no access request " + std::to_string(request_id)};
    }
    if (r->state != request_state::pending) {
        return error{failure::conflict,
                     "request " + std::to_string(request_id) + " is already " + std::string(to_string(r->state))};
    }
    std::string destination = params.destination.empty() ? r->key.host : params.destination;
    auto pattern = covering_pattern(destination, r->key.host);
    if (!pattern) {
        return error{failure::invalid, "the scope '" + destination + "' does not cover " + r->key.host +
                                           ": use the host itself, or a pattern such as *.parent or .apex above it"};
    }
    approval_input in;
    in.approver = who.name;
    in.scope_name = r->key.client;
    if (!params.group.empty()) {
        auto groups = groups_of(r->key.client);
        if (std::find(groups.begin(), groups.end(), params.group) == groups.end()) {
            return error{failure::invalid, "client " + r->key.client + " is not in a group named '" + params.group + "'"};
        }
        in.scope = policy::grant_scope::group;
        in.scope_name = params.group;
    }
    auto duration = params.duration.value_or(settings_.default_grant);
    if (auto bad = check_duration(duration)) {
        return *bad;
    }
    auto now = now_seconds();
    in.destination = pattern->kind == policy::pattern_kind::exact ? pattern->name : pattern->to_string();
    in.port = r->key.port;
    in.expires = now + duration;
    in.note = params.note;
    in.required = in.scope == policy::grant_scope::group ? group_required_approvals(in.scope_name)
                                                         : required_approvals(r->key.client);
    approval_result result;
    try {
        result = store_->approve(request_id, in, now);
    } catch (const store_error& e) {
        return store_failed(e, "cannot record the approval");
    }
    using o = approval_result::outcome;
    switch (result.result) {
    case o::not_found:
        return error{failure::not_found, "no access request " + std::to_string(request_id)};
    case o::not_pending:
        return error{failure::conflict, "request " + std::to_string(request_id) + " is no longer pending"};
    case o::self_approval:
        return error{failure::forbidden, "you justified this request: another approver must decide it"};
    case o::already_voted:
        return error{failure::conflict, "you already approved this request: it needs a second, different approver"};
    case o::differs_from_vote: {
        const auto& v = result.request->votes.front();
        return error{failure::conflict, v.approver + " approved " + v.destination + " for " +
                                            (v.scope == policy::grant_scope::group ? "group " : "client ") +
                                            v.scope_name + " for " + duration_text(v.duration) +
                                            ": approve exactly that, or deny"};
    }
    case o::vote_recorded:
        count(&service_counts::voted);
        log_.notice("approval.voted", {{"request_id", request_id},
                                       {"approver", who.name},
                                       {"client", r->key.client},
                                       {"host", r->key.host},
                                       {"port", r->key.port},
                                       {"required", static_cast<std::uint64_t>(in.required)}});
        return approve_result{*result.request, std::nullopt};
    case o::granted:
        break;
    }
    forget_pending(r->key);
    count(&service_counts::approved);
    publish_grants();
    const auto& g = *result.grant;
    log_.notice("approval.approved", {{"request_id", request_id},
                                      {"grant_id", g.id},
                                      {"approver", g.approved_by},
                                      {"client", r->key.client},
                                      {"host", r->key.host},
                                      {"port", r->key.port},
                                      {"scope", in.scope == policy::grant_scope::group ? "group" : "client"},
                                      {"scope_name", g.scope_name},
                                      {"destination", g.destination},
                                      {"expires", config::format_rfc3339(g.expires)},
                                      {"note", g.note}});
    notify({"approved", now, request_id, g.id, r->key.client, g.destination, g.port, g.approved_by, g.note, g.expires,
            {}, std::nullopt, request_url(request_id)});
    return approve_result{*result.request, g};
}

outcome<access_request> service::deny(const user& who, std::int64_t request_id, const std::string& note)
{
    if (who.level != role::approver) {
        return error{failure::forbidden, "only approvers decide access requests"};
    }
    if (note.size() > max_text) {
        return error{failure::invalid, "a note is at most 2000 characters"};
    }
    auto now = now_seconds();
    std::optional<access_request> r;
    try {
        if (auto asked = store_->request(request_id)) {
            for (const auto& j : asked->justifications) {
                if (j.user == who.name) {
                    return error{failure::forbidden, "you justified this request: another approver must decide it"};
                }
            }
        }
        r = store_->deny(request_id, who.name, note, now);
    } catch (const store_error& e) {
        return store_failed(e, "cannot record the denial");
    }
    if (!r) {
        return store_->request(request_id)
                   ? error{failure::conflict, "request " + std::to_string(request_id) + " is no longer pending"}
                   : error{failure::not_found, "no access request " + std::to_string(request_id)};
    }
    forget_pending(r->key);
    denied_[r->key] = denied_entry{r->id, now + settings_.request_ttl};
    count(&service_counts::denied);
    log_.notice("approval.denied", {{"request_id", request_id},
                                    {"approver", who.name},
                                    {"client", r->key.client},
                                    {"host", r->key.host},
                                    {"port", r->key.port},
                                    {"note", note}});
    notify({"denied", now, request_id, std::nullopt, r->key.client, r->key.host, r->key.port, who.name, note,
            std::nullopt, {}, std::nullopt, request_url(request_id)});
    return *r;
}

outcome<grant_record> service::revoke(const user& who, std::int64_t grant_id, const std::string& note)
{
    if (who.level != role::approver) {
        return error{failure::forbidden, "only approvers revoke grants"};
    }
    if (note.size() > max_text) {
        return error{failure::invalid, "a note is at most 2000 characters"};
    }
    auto now = now_seconds();
    std::optional<grant_record> g;
    try {
        g = store_->revoke_grant(grant_id, who.name, note, now);
    } catch (const store_error& e) {
        return store_failed(e, "cannot record the revocation");
    }
    if (!g) {
        return store_->grant(grant_id) ? error{failure::conflict, "grant " + std::to_string(grant_id) + " is not active"}
                                       : error{failure::not_found, "no grant " + std::to_string(grant_id)};
    }
    count(&service_counts::revoked);
    publish_grants(static_cast<std::uint64_t>(grant_id));
    log_.notice("approval.revoked", {{"grant_id", grant_id},
                                     {"request_id", g->request_id},
                                     {"actor", who.name},
                                     {"scope_name", g->scope_name},
                                     {"destination", g->destination},
                                     {"port", g->port},
                                     {"note", note}});
    notify({"revoked", now, g->request_id, grant_id, g->scope_name, g->destination, g->port, who.name, note,
            std::nullopt, {}, std::nullopt, request_url(g->request_id)});
    return *g;
}

outcome<grant_record> service::extend(const user& who, std::int64_t grant_id, std::chrono::seconds duration,
                                      const std::string& note)
{
    if (who.level != role::approver) {
        return error{failure::forbidden, "only approvers extend grants"};
    }
    // An extension is a new decision: the same people may not make it as could not approve.
    std::optional<grant_record> current;
    std::optional<access_request> asked;
    try {
        current = store_->grant(grant_id);
        if (current) {
            asked = store_->request(current->request_id);
        }
    } catch (const store_error& e) {
        return store_failed(e, "cannot record the extension");
    }
    if (asked) {
        for (const auto& j : asked->justifications) {
            if (j.user == who.name) {
                return error{failure::forbidden, "you justified this request: another approver must extend it"};
            }
        }
    }
    if (current) {
        unsigned required = current->scope == policy::grant_scope::group ? group_required_approvals(current->scope_name)
                                                                         : required_approvals(current->scope_name);
        if (required > 1) {
            return error{failure::forbidden, "this grant needed two approvers: it cannot be extended by one; revoke "
                                             "it, and two approvers approve the next request"};
        }
    }
    if (auto bad = check_duration(duration)) {
        return *bad;
    }
    if (note.size() > max_text) {
        return error{failure::invalid, "a note is at most 2000 characters"};
    }
    auto now = now_seconds();
    std::optional<grant_record> g;
    try {
        g = store_->extend_grant(grant_id, who.name, now + duration, note, now);
    } catch (const store_error& e) {
        return store_failed(e, "cannot record the extension");
    }
    if (!g) {
        return store_->grant(grant_id) ? error{failure::conflict, "grant " + std::to_string(grant_id) + " is not active"}
                                       : error{failure::not_found, "no grant " + std::to_string(grant_id)};
    }
    warned_.erase(grant_id);
    count(&service_counts::extended);
    publish_grants();
    log_.notice("approval.extended", {{"grant_id", grant_id},
                                      {"request_id", g->request_id},
                                      {"actor", who.name},
                                      {"destination", g->destination},
                                      {"port", g->port},
                                      {"expires", config::format_rfc3339(g->expires)},
                                      {"note", note}});
    notify({"extended", now, g->request_id, grant_id, g->scope_name, g->destination, g->port, who.name, note,
            g->expires, {}, std::nullopt, request_url(g->request_id)});
    return *g;
}

std::vector<scope_choice> service::scope_choices(const access_request& r) const
{
    std::vector<scope_choice> out;
    auto target = policy::host::parse(r.key.host);
    if (!target.value) {
        return out;
    }
    if (target.value->literal()) {
        out.push_back({r.key.host, "only " + r.key.host});
        return out;
    }
    const std::string& name = *target.value->name();
    out.push_back({name, "only " + name});
    // Every parent with at least two labels: "*.com" would open a whole top-level domain.
    for (auto dot = name.find('.'); dot != std::string::npos; dot = name.find('.', dot + 1)) {
        std::string parent = name.substr(dot + 1);
        if (parent.find('.') == std::string::npos) {
            break;
        }
        out.push_back({"*." + parent, "every name below " + parent});
        out.push_back({"." + parent, parent + " and every name below it"});
    }
    return out;
}

std::vector<std::string> service::groups_of(const std::string& client) const
{
    std::vector<std::string> out;
    auto p = current_policy();
    if (!p) {
        return out;
    }
    if (auto id = p->find_client(client)) {
        for (auto name : p->group_names(*id)) {
            out.emplace_back(name);
        }
    }
    return out;
}

unsigned service::group_required_approvals(const std::string& group) const
{
    auto p = current_policy();
    unsigned most = 1;
    if (!p) {
        return most;
    }
    for (policy::client_id id = 0; id < p->stats().clients; ++id) {
        auto groups = p->group_names(id);
        if (std::find(groups.begin(), groups.end(), group) != groups.end()) {
            most = std::max(most, p->required_approvals(id));
        }
    }
    return most;
}

unsigned service::required_approvals(const std::string& client) const
{
    auto p = current_policy();
    if (!p) {
        return 1;
    }
    auto id = p->find_client(client);
    return id ? p->required_approvals(*id) : 1;
}

std::string service::policy_snippet(const grant_record& g) const
{
    std::string rule = "      - description: " +
                       yaml_quoted("access request " + std::to_string(g.request_id) + ", approved by " + g.approved_by +
                                   (g.note.empty() ? std::string() : ": " + g.note)) +
                       "\n        ports: [" + std::to_string(g.port) + "]\n        destinations: [" +
                       yaml_quoted(g.destination) + "]\n";
    if (g.scope == policy::grant_scope::group) {
        return "# Add this rule to the rules of group " + g.scope_name + " in the policy:\ngroups:\n  " + g.scope_name +
               ":\n    rules:\n" + rule;
    }
    std::string group = "approved-" + g.scope_name;
    return "# A group for what was approved for " + g.scope_name + " (or add the rule to one of its groups):\ngroups:\n  " +
           group + ":\n    description: Destinations approved through access requests\n    rules:\n" + rule +
           "# and list the group in the client's groups:\nclients:\n  " + g.scope_name + ":\n    groups: [..., " + group +
           "]\n";
}

}  // namespace egressd::proxy::approvals
