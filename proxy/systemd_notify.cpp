#include "proxy/systemd_notify.hpp"

#include <systemd/sd-daemon.h>

#include <string>
#include <time.h>

namespace egressd::proxy::systemd {

void notify_ready() { ::sd_notify(0, "READY=1"); }

void notify_reloading()
{
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    auto usec = static_cast<unsigned long long>(now.tv_sec) * 1'000'000ULL +
                static_cast<unsigned long long>(now.tv_nsec) / 1'000ULL;
    std::string state = "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec);
    ::sd_notify(0, state.c_str());
}

void notify_stopping() { ::sd_notify(0, "STOPPING=1"); }

}  // namespace egressd::proxy::systemd
