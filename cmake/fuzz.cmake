# libFuzzer targets need clang (-fsanitize=fuzzer) while the project builds with the default
# compiler, so each fuzzer compiles the sources it exercises with clang++ (instrumented) and
# links whatever else it needs as already built. Without a clang that links libFuzzer, no
# fuzzer is built and CTest has no fuzz tests.
find_program(TRECVIT_FUZZ_CXX NAMES clang++ clang++-16 clang++-15 clang++-14)
set(TRECVIT_FUZZ_OK OFF)
if(TRECVIT_FUZZ_CXX)
  set(probe_dir ${CMAKE_BINARY_DIR}/fuzz-probe)
  file(WRITE ${probe_dir}/probe.cpp
    "#include <cstdint>\n#include <cstddef>\nextern \"C\" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n")
  execute_process(COMMAND ${TRECVIT_FUZZ_CXX} -fsanitize=fuzzer ${probe_dir}/probe.cpp -o ${probe_dir}/probe
                  RESULT_VARIABLE probe_rc OUTPUT_QUIET ERROR_QUIET)
  if(probe_rc EQUAL 0)
    set(TRECVIT_FUZZ_OK ON)
  else()
    message(STATUS "trecvit: ${TRECVIT_FUZZ_CXX} cannot link -fsanitize=fuzzer, no fuzzers built")
  endif()
else()
  message(STATUS "trecvit: no clang++, no fuzzers built")
endif()

# trecvit_add_fuzzer(NAME SOURCES ... [SANITIZE list] [FLAGS ...] [LINK ...] [DEPENDS ...])
# builds ${CMAKE_CURRENT_BINARY_DIR}/NAME and sets TRECVIT_FUZZER_<NAME> (cache) to its path.
function(trecvit_add_fuzzer name)
  cmake_parse_arguments(F "" "SANITIZE" "SOURCES;FLAGS;LINK;DEPENDS" ${ARGN})
  set(TRECVIT_FUZZER_${name} "" CACHE INTERNAL "libFuzzer binary ${name}")
  if(NOT TRECVIT_FUZZ_OK)
    return()
  endif()
  if(NOT F_SANITIZE)
    set(F_SANITIZE "fuzzer,address,undefined")
  endif()
  set(out ${CMAKE_CURRENT_BINARY_DIR}/${name})
  file(GLOB_RECURSE headers ${PROJECT_SOURCE_DIR}/blocks/*.h ${PROJECT_SOURCE_DIR}/models/*.h
       ${PROJECT_SOURCE_DIR}/video_io/*.h ${PROJECT_SOURCE_DIR}/datasets/*.h)
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${TRECVIT_FUZZ_CXX} -std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=${F_SANITIZE}
            -fno-sanitize-recover=undefined -I${PROJECT_SOURCE_DIR} ${F_FLAGS} ${F_SOURCES} -o ${out} ${F_LINK}
    DEPENDS ${F_SOURCES} ${headers} ${F_DEPENDS}
    COMMENT "Building the ${name} libFuzzer target with ${TRECVIT_FUZZ_CXX}"
    VERBATIM)
  add_custom_target(${name}_target ALL DEPENDS ${out})
  set(TRECVIT_FUZZER_${name} ${out} CACHE INTERNAL "libFuzzer binary ${name}")
endfunction()
