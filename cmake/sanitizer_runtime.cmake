# cmake/sanitizer_runtime.cmake - run the Python and Lua suites against a
# core and modules built with RETLS_SANITIZE (ASan + UBSan).
#
# The interpreters (python3, lua5.4) are not instrumented, and ASan must be
# the first library of a process, so the ASan runtime is preloaded into
# them.  Two ways, for two needs:
#
#   RETLS_SANITIZE_ENV   LD_PRELOAD=<runtime> in the environment, leak
#                        detection off.  Every child inherits it, which the
#                        Python suite needs (test_gil.py starts child
#                        interpreters that import the ASan module).  CPython
#                        keeps objects alive until exit on purpose, so
#                        LeakSanitizer would only report the interpreter.
#   retls_sanitize_command() + RETLS_SANITIZE_LEAK_ENV
#                        <dynamic loader> --preload <runtime>: only that one
#                        process gets the runtime, not its children (sh,
#                        mktemp, openssl: their exit-time leaks would fail
#                        the run), so leak detection stays on.  Used for the
#                        Lua suite, which is leak-clean: a connection or
#                        context the module forgets to free fails it.
#
# UBSan's runtime comes in as a dependency of the modules; with
# -fno-sanitize-recover=undefined (top-level CMakeLists.txt) any report
# aborts the test.  Valgrind cannot run over ASan: the Lua valgrind test is
# not registered in this build.
#
# Included by each directory that registers such tests (no include guard:
# variables are per directory).

set(RETLS_SANITIZE_ENV "")
set(RETLS_SANITIZE_LEAK_ENV "")
if(NOT RETLS_SANITIZE OR RETLS_SANITIZE STREQUAL "thread")
  # (ThreadSanitizer builds run the C suite only: nothing to preload.)
  function(retls_sanitize_command out program)
    set(${out} ${program} PARENT_SCOPE)
  endfunction()
  return()
endif()

if(CMAKE_C_COMPILER_ID STREQUAL "GNU")
  set(_asan_name libasan.so)
elseif(CMAKE_C_COMPILER_ID MATCHES "Clang")
  set(_asan_name libclang_rt.asan-${CMAKE_SYSTEM_PROCESSOR}.so)
else()
  message(FATAL_ERROR "RETLS_SANITIZE: do not know the ASan runtime of "
                      "${CMAKE_C_COMPILER_ID}; use gcc or clang")
endif()
execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=${_asan_name}
                OUTPUT_VARIABLE RETLS_ASAN_RUNTIME
                OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT IS_ABSOLUTE "${RETLS_ASAN_RUNTIME}" OR NOT EXISTS "${RETLS_ASAN_RUNTIME}")
  message(FATAL_ERROR "RETLS_SANITIZE: ${CMAKE_C_COMPILER} does not know "
                      "where ${_asan_name} is (got '${RETLS_ASAN_RUNTIME}'); "
                      "Debian: apt-get install libasan8 (gcc) or "
                      "libclang-rt-14-dev (clang)")
endif()
get_filename_component(RETLS_ASAN_RUNTIME ${RETLS_ASAN_RUNTIME} REALPATH)

# allocator_may_return_null: a huge allocation returns NULL, as malloc
# does without ASan, so the out-of-memory paths the bad-input tests take
# (capacity=2**62) report NOMEM instead of ASan aborting the interpreter.
set(RETLS_SANITIZE_ENV
  "LD_PRELOAD=${RETLS_ASAN_RUNTIME}"
  "ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1"
  "UBSAN_OPTIONS=print_stacktrace=1")
set(RETLS_SANITIZE_LEAK_ENV
  "ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1"
  "LSAN_OPTIONS=suppressions=${CMAKE_CURRENT_LIST_DIR}/lsan-preload.supp:print_suppressions=0"
  "UBSAN_OPTIONS=print_stacktrace=1")
message(STATUS "retls: the interpreters get the ASan runtime ${RETLS_ASAN_RUNTIME}")

# retls_sanitize_command(<out_var> <program>): the command that runs
# <program> with the ASan runtime preloaded into it alone, through the
# program's own dynamic loader (its PT_INTERP; `ld.so --preload` needs
# glibc 2.33 or later, Debian 12 has 2.36).  (Without RETLS_SANITIZE,
# defined above: <program> itself.)
function(retls_sanitize_command out program)
  find_program(RETLS_READELF NAMES readelf)
  if(NOT RETLS_READELF)
    message(FATAL_ERROR "RETLS_SANITIZE: readelf not found (apt-get install binutils)")
  endif()
  execute_process(COMMAND ${RETLS_READELF} -lW ${program}
                  OUTPUT_VARIABLE phdrs ERROR_QUIET)
  string(REGEX MATCH "interpreter: ([^]]+)\\]" m "${phdrs}")
  if(NOT CMAKE_MATCH_1 OR NOT EXISTS "${CMAKE_MATCH_1}")
    message(FATAL_ERROR "RETLS_SANITIZE: ${program} is not a dynamically "
                        "linked program; cannot preload ASan into it")
  endif()
  set(${out} ${CMAKE_MATCH_1} --preload ${RETLS_ASAN_RUNTIME} ${program}
      PARENT_SCOPE)
endfunction()
