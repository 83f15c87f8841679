# Every dependency comes from a Debian 12 package; a missing one names the package to install.
find_package(PkgConfig QUIET)

function(egressd_missing what apt_package)
  message(FATAL_ERROR "${what} not found. Install it with: apt-get install ${apt_package}  "
                      "(or run scripts/bootstrap deps)")
endfunction()

find_package(Boost 1.81 QUIET CONFIG)
if(NOT Boost_FOUND)
  egressd_missing("Boost 1.81 (Asio, Beast)" libboost1.81-dev)
endif()
find_package(boost_json 1.81 QUIET CONFIG)
if(NOT boost_json_FOUND)
  egressd_missing("Boost.JSON 1.81" libboost-json1.81-dev)
endif()

find_package(OpenSSL 3 QUIET)
if(NOT OPENSSL_FOUND)
  egressd_missing("OpenSSL 3" libssl-dev)
endif()

find_package(yaml-cpp 0.7 QUIET CONFIG)
if(NOT yaml-cpp_FOUND)
  egressd_missing("yaml-cpp 0.7" libyaml-cpp-dev)
endif()

# libfyaml parses policies fast; yaml-cpp stays as the reference that words every syntax error.
if(PkgConfig_FOUND)
  pkg_check_modules(FYAML QUIET IMPORTED_TARGET libfyaml>=0.7)
endif()
if(NOT FYAML_FOUND)
  egressd_missing("libfyaml 0.7" "libfyaml-dev pkg-config")
endif()

if(PkgConfig_FOUND)
  pkg_check_modules(CARES QUIET IMPORTED_TARGET libcares>=1.18)
endif()
if(NOT CARES_FOUND)
  egressd_missing("c-ares 1.18" "libc-ares-dev pkg-config")
endif()

find_package(spdlog 1.10 QUIET CONFIG)
if(NOT spdlog_FOUND)
  egressd_missing("spdlog 1.10" libspdlog-dev)
endif()
# Under ThreadSanitizer spdlog is compiled in, instrumented: the reference counts its writer thread drops inside an
# uninstrumented libspdlog.so are invisible to TSan, which then reports the log's shutdown as a race.
if(EGRESSD_SANITIZE STREQUAL "thread")
  set(egressd_spdlog spdlog::spdlog_header_only)
else()
  set(egressd_spdlog spdlog::spdlog)
endif()

find_package(Threads REQUIRED)

if(EGRESSD_BUILD_TESTS)
  find_package(GTest QUIET CONFIG)
  if(NOT GTest_FOUND)
    egressd_missing("GoogleTest and GoogleMock" "libgtest-dev libgmock-dev")
  endif()
endif()

if(EGRESSD_BUILD_BENCH)
  find_package(benchmark QUIET CONFIG)
  if(NOT benchmark_FOUND)
    egressd_missing("Google Benchmark" libbenchmark-dev)
  endif()
endif()
