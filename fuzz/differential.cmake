# Differential runs (ctest label fuzz_diff): egressd_parse_dump against Node's llhttp for HTTP and against
# OpenSSL (Python's ssl) for ClientHellos, over the seed corpora and, in the fuzz build, over the corpus the
# fuzz.<name> run grew (so they run after it). See fuzz/diff/compare.py.
add_executable(egressd_parse_dump ${CMAKE_CURRENT_SOURCE_DIR}/diff/parse_dump.cpp)
target_link_libraries(egressd_parse_dump PRIVATE egressd_protocol)
if(EGRESSD_FUZZ)
  add_dependencies(egressd_fuzz_targets egressd_parse_dump)
endif()

find_package(Python3 COMPONENTS Interpreter)
find_program(EGRESSD_NODE node)
set(egressd_compare ${CMAKE_CURRENT_SOURCE_DIR}/diff/compare.py)
if(Python3_Interpreter_FOUND)
  add_test(NAME fuzz_diff.self_test COMMAND Python3::Interpreter ${egressd_compare} --self-test)
  set_tests_properties(fuzz_diff.self_test PROPERTIES LABELS fuzz_diff TIMEOUT 60)
endif()

# egressd_fuzz_differential(KIND TARGET): KIND as compare.py names it, TARGET the fuzz target whose corpus it reads.
function(egressd_fuzz_differential kind target)
  if(NOT Python3_Interpreter_FOUND OR (NOT kind STREQUAL "tls_client_hello" AND NOT EGRESSD_NODE))
    message(STATUS "fuzz_diff.${kind}: no python3 or node, not registered")
    return()
  endif()
  set(dirs ${CMAKE_CURRENT_SOURCE_DIR}/corpus/${target} ${CMAKE_CURRENT_SOURCE_DIR}/regressions/${target})
  set(properties LABELS fuzz_diff TIMEOUT 600)
  if(EGRESSD_FUZZ)
    list(APPEND dirs ${CMAKE_CURRENT_BINARY_DIR}/work/${target}/corpus)
    list(APPEND properties DEPENDS fuzz.${target})
  endif()
  add_test(NAME fuzz_diff.${kind}
           COMMAND Python3::Interpreter ${egressd_compare} ${kind} --dump $<TARGET_FILE:egressd_parse_dump>
                   --node ${EGRESSD_NODE} ${dirs})
  set_tests_properties(fuzz_diff.${kind} PROPERTIES ${properties})
endfunction()

egressd_fuzz_differential(http_request http_request_head)
egressd_fuzz_differential(http_response http_response_head)
egressd_fuzz_differential(http_chunked http_chunked)
egressd_fuzz_differential(tls_client_hello tls_client_hello)
