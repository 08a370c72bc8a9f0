# Shared helpers for the component libraries.

# One precompiled LibTorch header, built once and reused by every target:
# torch/torch.h costs ~15 s per translation unit on 2 cores without it. PRIVATE: targets opt in
# with trecvit_use_pch (REUSE_FROM), and installed targets do not impose it on consumers.
add_library(trecvit_pch STATIC ${CMAKE_CURRENT_LIST_DIR}/pch.cpp)
target_link_libraries(trecvit_pch PUBLIC ${TORCH_LIBRARIES})
target_compile_options(trecvit_pch PUBLIC ${TORCH_CXX_FLAGS})
target_precompile_headers(trecvit_pch PRIVATE <torch/torch.h> <vector> <string> <memory>)

function(trecvit_use_pch target)
  target_precompile_headers(${target} REUSE_FROM trecvit_pch)
endfunction()

# Executables get the retaining allocator; libraries never force it on users.
function(trecvit_link_allocator target)
  if(TRECVIT_WITH_JEMALLOC)
    target_sources(${target} PRIVATE ${PROJECT_SOURCE_DIR}/cmake/malloc_conf.cpp)
    target_link_libraries(${target} PRIVATE PkgConfig::JEMALLOC)
    target_compile_definitions(${target} PRIVATE TRECVIT_JEMALLOC=1)
  endif()
endfunction()
