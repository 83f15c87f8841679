#pragma once

// A real PostgreSQL server for tests: initdb into a temporary directory, postgres on 127.0.0.1 at a free port
// (and a socket directory inside the temporary directory), stopped by its PID. As root, initdb and postgres run
// as the "postgres" system user (initdb refuses root). The binaries come from Debian's postgresql package
// (/usr/lib/postgresql/<version>/bin, the newest version there) or EGRESSD_PG_BIN.

#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace egressd::test_support {

class postgres_server {
public:
    // fsync off by default: a test that kills the server and checks durability asks for it on.
    explicit postgres_server(bool fsync = false) : fsync_(fsync)
    {
        bin_ = find_bin();
        if (bin_.empty()) {
            problem_ = "no PostgreSQL server binaries (install Debian's postgresql, or set EGRESSD_PG_BIN)";
            return;
        }
        if (::geteuid() == 0) {
            const passwd* pw = ::getpwnam("postgres");
            if (pw == nullptr) {
                problem_ = "running as root, but there is no postgres user to run PostgreSQL as";
                return;
            }
            uid_ = pw->pw_uid;
            gid_ = pw->pw_gid;
            if (::chown(dir_.path().c_str(), *uid_, *gid_) != 0) {
                problem_ = "cannot hand " + dir_.path().string() + " to the postgres user";
                return;
            }
        }
        port_ = free_port();
        const auto data = (dir_.path() / "data").string();
        const int rc = run_and_wait({(bin_ / "initdb").string(), "-D", data, "-A", "trust", "-U", "postgres",
                                     "-E", "UTF8", "--no-sync", "--no-instructions"});
        if (rc != 0) {
            problem_ = "initdb failed (exit " + std::to_string(rc) + "); see " + log_file().string();
            return;
        }
        start();
    }

    ~postgres_server() { stop(SIGQUIT); }
    postgres_server(const postgres_server&) = delete;
    postgres_server& operator=(const postgres_server&) = delete;

    // Empty when the server runs; else why not (for GTEST_SKIP or a failure).
    const std::string& problem() const { return problem_; }
    std::uint16_t port() const { return port_; }
    std::string url(const std::string& database = "postgres") const
    {
        return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" + database;
    }

    // Runs one statement as the superuser; returns libpq's error message, empty on success.
    std::string exec(const std::string& sql, const std::string& database = "postgres") const
    {
        PGconn* c = PQconnectdb(url(database).c_str());
        std::string error;
        if (PQstatus(c) != CONNECTION_OK) {
            error = PQerrorMessage(c);
        } else {
            PGresult* r = PQexec(c, sql.c_str());
            const auto status = PQresultStatus(r);
            if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
                error = PQresultErrorMessage(r);
            }
            PQclear(r);
        }
        PQfinish(c);
        return error;
    }

    // The first column of the first row of a query, as text (empty when none or on error).
    std::string value(const std::string& sql, const std::string& database = "postgres") const
    {
        PGconn* c = PQconnectdb(url(database).c_str());
        std::string out;
        if (PQstatus(c) == CONNECTION_OK) {
            PGresult* r = PQexec(c, sql.c_str());
            if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) {
                out = PQgetvalue(r, 0, 0);
            } else if (PQresultStatus(r) != PGRES_TUPLES_OK) {
                ADD_FAILURE() << sql << ": " << PQresultErrorMessage(r);
            }
            PQclear(r);
        } else {
            ADD_FAILURE() << PQerrorMessage(c);
        }
        PQfinish(c);
        return out;
    }

    // A new empty database; returns its URL.
    std::string create_database(const std::string& name) const
    {
        // FILE_COPY: much faster than PostgreSQL 15's default (WAL_LOG) for a small template, with fsync off.
        if (auto error = exec("CREATE DATABASE " + name + " STRATEGY = FILE_COPY"); !error.empty()) {
            ADD_FAILURE() << "CREATE DATABASE " << name << ": " << error;
        }
        return url(name);
    }

    // Stops the server with a signal (SIGQUIT: immediate shutdown; SIGKILL: a crash) and waits for it. A crash
    // kills the postmaster's children too: a backend outliving its postmaster answers on its connection for a
    // moment longer, and a call the test expects to fail could succeed. Each child is a session of its own
    // (PostgreSQL calls setsid() in every child), so they are found by their parent, before it dies.
    void stop(int signal = SIGQUIT)
    {
        if (pid_ <= 0) {
            return;
        }
        const auto children = signal == SIGKILL ? children_of(pid_) : std::vector<pid_t>{};
        ::kill(pid_, signal);
        for (const pid_t child : children) {
            ::kill(child, SIGKILL);
        }
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
    }

    // Starts (again) on the same port and data directory; waits until it accepts connections.
    void start()
    {
        problem_.clear();
        const auto data = (dir_.path() / "data").string();
        // After a SIGKILL the killed server's backends may take a moment to notice and free the shared memory:
        // a start that exits at once is tried again.
        for (int attempt = 0; attempt < 20; ++attempt) {
            pid_ = spawn({(bin_ / "postgres").string(), "-D", data, "-p", std::to_string(port_), "-c",
                          "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + dir_.path().string(),
                          "-c", std::string("fsync=") + (fsync_ ? "on" : "off"), "-c", "max_connections=60"});
            const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
            while (std::chrono::steady_clock::now() < deadline) {
                int status = 0;
                if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                    pid_ = -1;
                    break;
                }
                const std::string info =
                    "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=postgres user=postgres";
                if (PQping(info.c_str()) == PQPING_OK) {
                    return;
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
            if (pid_ > 0) {
                stop(SIGKILL);
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(250));
        }
        problem_ = "postgres did not start; see " + log_file().string();
    }

    std::filesystem::path log_file() const { return dir_.path() / "postgres.log"; }

private:
    static std::filesystem::path find_bin()
    {
        if (const char* env = std::getenv("EGRESSD_PG_BIN"); env != nullptr && *env != '\0') {
            return env;
        }
        std::filesystem::path best;
        int best_version = -1;
        std::error_code ec;
        for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
            const std::string name = entry.path().filename().string();
            int version = std::atoi(name.c_str());
            if (version > best_version && std::filesystem::exists(entry.path() / "bin" / "postgres")) {
                best_version = version;
                best = entry.path() / "bin";
            }
        }
        return best;
    }

    static std::uint16_t free_port()
    {
        const int s = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        std::uint16_t port = 0;
        if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
            ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
            port = ntohs(a.sin_port);
        }
        ::close(s);
        return port;
    }

    // The processes whose parent is `parent`, from /proc.
    static std::vector<pid_t> children_of(pid_t parent)
    {
        std::vector<pid_t> out;
        std::error_code ec;
        for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
            const auto name = entry.path().filename().string();
            if (name.find_first_not_of("0123456789") != std::string::npos) {
                continue;
            }
            std::ifstream stat(entry.path() / "stat");
            std::string text;
            std::getline(stat, text);
            // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ')'.
            const auto close = text.rfind(')');
            if (close == std::string::npos) {
                continue;
            }
            std::istringstream rest(text.substr(close + 1));
            char state = 0;
            long ppid = 0;
            if (rest >> state >> ppid && ppid == parent) {
                out.push_back(static_cast<pid_t>(std::stol(name)));
            }
        }
        return out;
    }

    // fork + exec, as the postgres user when root, output appended to the log file.
    pid_t spawn(const std::vector<std::string>& argv) const
    {
        const std::string log = log_file().string();
        const pid_t pid = ::fork();
        if (pid != 0) {
            return pid;
        }
        const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            ::dup2(fd, 1);
            ::dup2(fd, 2);
        }
        if (uid_) {
            if (fd >= 0 && ::fchown(fd, *uid_, *gid_) != 0) {
                ::_exit(126);
            }
            if (::setgroups(0, nullptr) != 0 || ::setgid(*gid_) != 0 || ::setuid(*uid_) != 0) {
                ::_exit(126);
            }
        }
        std::vector<char*> args;
        for (const auto& a : argv) {
            args.push_back(const_cast<char*>(a.c_str()));
        }
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        ::_exit(127);
    }

    int run_and_wait(const std::vector<std::string>& argv) const
    {
        const pid_t pid = spawn(argv);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
        while (std::chrono::steady_clock::now() < deadline) {
            int status = 0;
            if (::waitpid(pid, &status, WNOHANG) == pid) {
                return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        ::kill(pid, SIGKILL);
        int status = 0;
        ::waitpid(pid, &status, 0);
        return -1;
    }

    temp_dir dir_;
    bool fsync_ = false;
    std::filesystem::path bin_;
    std::optional<uid_t> uid_;
    std::optional<gid_t> gid_;
    std::uint16_t port_ = 0;
    pid_t pid_ = -1;
    std::string problem_;
};

}  // namespace egressd::test_support
