# Install rules: the trecvit binary, the component libraries and their headers, the configs, a
# CMake package (find_package(trecvit) -> trecvit::trecvit) and trecvit.pc. Included last, so
# every target exists; only the components this build defines are installed.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(TRECVIT_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR}/trecvit)
set(TRECVIT_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/trecvit)
set(TRECVIT_INSTALL_CONFIGDIR ${CMAKE_INSTALL_DATADIR}/trecvit/configs)

# Components (folder = target suffix), users before what they use.
set(_trecvit_components)
foreach(c jobs train eval datasets video_io models blocks)
  if(TARGET trecvit_${c})
    list(APPEND _trecvit_components trecvit_${c})
    if(IS_DIRECTORY ${PROJECT_SOURCE_DIR}/${c})
      install(DIRECTORY ${PROJECT_SOURCE_DIR}/${c}/ DESTINATION ${TRECVIT_INSTALL_INCLUDEDIR}/${c}
              FILES_MATCHING PATTERN "*.h" PATTERN "fuzz" EXCLUDE)
    endif()
  endif()
endforeach()

# Depth first over the link interfaces: our own targets (the components plus helpers such as
# trecvit_pch) in dependency order, and the external items a consumer has to resolve.
function(_trecvit_visit t)
  get_property(seen GLOBAL PROPERTY _trecvit_seen)
  if(t IN_LIST seen)
    return()
  endif()
  set_property(GLOBAL APPEND PROPERTY _trecvit_seen ${t})
  get_target_property(links ${t} INTERFACE_LINK_LIBRARIES)
  if(NOT links)
    set(links)
  endif()
  foreach(l IN LISTS links)
    string(REGEX REPLACE "^\\$<LINK_ONLY:(.+)>$" "\\1" l "${l}")
    if(TARGET "${l}")
      get_target_property(aliased ${l} ALIASED_TARGET)
      if(aliased)
        set(l ${aliased})
      endif()
      get_target_property(imported ${l} IMPORTED)
    else()
      set(imported TRUE)  # a name, path, flag, or an imported target of a subdirectory
    endif()
    if(imported)
      set_property(GLOBAL APPEND PROPERTY _trecvit_external "${l}")
    else()
      _trecvit_visit(${l})
    endif()
  endforeach()
  set_property(GLOBAL APPEND PROPERTY _trecvit_ordered ${t})
endfunction()
foreach(t IN LISTS _trecvit_components)
  _trecvit_visit(${t})
endforeach()
get_property(_trecvit_export GLOBAL PROPERTY _trecvit_ordered)
list(REVERSE _trecvit_export)  # link order
get_property(_trecvit_external GLOBAL PROPERTY _trecvit_external)
list(REMOVE_DUPLICATES _trecvit_external)

foreach(t IN LISTS _trecvit_export)
  # Exported as trecvit::<name without the trecvit_ prefix>; source-tree include directories
  # are for the build only, consumers get <prefix>/include/trecvit.
  string(REGEX REPLACE "^trecvit_" "" name ${t})
  set_target_properties(${t} PROPERTIES EXPORT_NAME ${name})
  get_target_property(dirs ${t} INTERFACE_INCLUDE_DIRECTORIES)
  if(dirs)
    set(wrapped)
    foreach(d IN LISTS dirs)
      string(FIND "${d}/" "${PROJECT_SOURCE_DIR}/" in_src)
      string(FIND "${d}/" "${PROJECT_BINARY_DIR}/" in_bin)
      if(in_src EQUAL 0 OR in_bin EQUAL 0)
        set(d "$<BUILD_INTERFACE:${d}>")
      endif()
      list(APPEND wrapped "${d}")
    endforeach()
    set_target_properties(${t} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${wrapped}")
  endif()
endforeach()

# trecvit::trecvit: every installed component.
add_library(trecvit_package INTERFACE)
add_library(trecvit::trecvit ALIAS trecvit_package)
target_link_libraries(trecvit_package INTERFACE ${_trecvit_components})
set_target_properties(trecvit_package PROPERTIES EXPORT_NAME trecvit)

install(TARGETS trecvit RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS ${_trecvit_export} trecvit_package EXPORT trecvitTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${TRECVIT_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/configs/ DESTINATION ${TRECVIT_INSTALL_CONFIGDIR} FILES_MATCHING PATTERN "*.json")

# What the consumer must find for the external link items: find_dependency() lines for the
# CMake config, Requires/Libs for pkg-config. PkgConfig::X targets are re-created from the
# modules this build asked pkg_check_modules() for.
set(TRECVIT_FIND_DEPENDENCIES "find_dependency(Torch)\n")  # trecvit_pch links it
set(TRECVIT_PC_REQUIRES)
set(TRECVIT_PC_LIBS)
set(_trecvit_packages)
set(_trecvit_pkg_modules)
foreach(l IN LISTS _trecvit_external)
  if(l MATCHES "^PkgConfig::(.+)$")
    set(p ${CMAKE_MATCH_1})
    set(mods ${__pkg_config_arguments_${p}})
    list(REMOVE_ITEM mods REQUIRED QUIET IMPORTED_TARGET GLOBAL NO_CMAKE_PATH NO_CMAKE_ENVIRONMENT_PATH)
    list(JOIN mods " " mods)
    list(APPEND _trecvit_packages PkgConfig)
    string(APPEND _trecvit_pkg_modules
      "if(NOT TARGET PkgConfig::${p})\n  pkg_check_modules(${p} REQUIRED IMPORTED_TARGET ${mods})\nendif()\n")
    list(APPEND TRECVIT_PC_REQUIRES ${mods})
  elseif(l MATCHES "^(torch|torch_library|torch_cpu|c10)$")
    # Torch: found above; its flags are added to the .pc below.
  elseif(l MATCHES "^opencv_")
    list(APPEND _trecvit_packages OpenCV)
    list(APPEND TRECVIT_PC_LIBS -l${l})
  elseif(l MATCHES "^([A-Za-z0-9_]+)::")
    set(pkg ${CMAKE_MATCH_1})
    list(APPEND _trecvit_packages ${pkg})
    if(pkg STREQUAL "Threads")
      list(APPEND TRECVIT_PC_LIBS -pthread)
    elseif(pkg STREQUAL "ZLIB")
      list(APPEND TRECVIT_PC_REQUIRES zlib)
    else()
      list(APPEND TRECVIT_PC_REQUIRES ${pkg})  # nlohmann_json, fmt, CLI11: .pc named as the package
    endif()
  elseif(l MATCHES "^(/|-)")
    list(APPEND TRECVIT_PC_LIBS ${l})
  elseif(NOT l MATCHES "[$<>]")
    list(APPEND TRECVIT_PC_LIBS -l${l})
  endif()
endforeach()
list(REMOVE_DUPLICATES _trecvit_packages)
foreach(pkg IN LISTS _trecvit_packages)
  string(APPEND TRECVIT_FIND_DEPENDENCIES "find_dependency(${pkg})\n")
endforeach()
string(APPEND TRECVIT_FIND_DEPENDENCIES "${_trecvit_pkg_modules}")
list(REMOVE_DUPLICATES TRECVIT_PC_REQUIRES)
list(JOIN TRECVIT_PC_REQUIRES " " TRECVIT_PC_REQUIRES)

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/trecvitConfig.cmake.in
  ${PROJECT_BINARY_DIR}/trecvitConfig.cmake
  INSTALL_DESTINATION ${TRECVIT_INSTALL_CMAKEDIR} PATH_VARS TRECVIT_INSTALL_CONFIGDIR)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/trecvitConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(EXPORT trecvitTargets NAMESPACE trecvit:: DESTINATION ${TRECVIT_INSTALL_CMAKEDIR})
install(FILES ${PROJECT_BINARY_DIR}/trecvitConfig.cmake ${PROJECT_BINARY_DIR}/trecvitConfigVersion.cmake
        DESTINATION ${TRECVIT_INSTALL_CMAKEDIR})

# trecvit.pc: static libraries, so everything a link needs is in Libs/Requires (not .private).
# The prefix is relative to the .pc file, so a tree installed with --prefix anywhere works.
file(RELATIVE_PATH TRECVIT_PC_RELPREFIX /p/${CMAKE_INSTALL_LIBDIR}/pkgconfig /p)
string(REGEX REPLACE "/$" "" TRECVIT_PC_RELPREFIX "${TRECVIT_PC_RELPREFIX}")
set(TRECVIT_PC_CFLAGS ${TORCH_CXX_FLAGS})
foreach(d IN LISTS TORCH_INCLUDE_DIRS)
  list(APPEND TRECVIT_PC_CFLAGS -I${d})
endforeach()
get_target_property(_trecvit_torch_defs torch_cpu INTERFACE_COMPILE_DEFINITIONS)
if(_trecvit_torch_defs)
  list(TRANSFORM _trecvit_torch_defs PREPEND -D)
  list(APPEND TRECVIT_PC_CFLAGS ${_trecvit_torch_defs})
endif()
set(_trecvit_pc_own)
foreach(t IN LISTS _trecvit_export)
  get_target_property(type ${t} TYPE)
  if(NOT type STREQUAL "INTERFACE_LIBRARY")
    list(APPEND _trecvit_pc_own -l$<TARGET_LINKER_FILE_BASE_NAME:${t}>)
  endif()
endforeach()
# LibTorch registers its operators from libtorch_cpu: keep it linked even if unreferenced.
list(PREPEND TRECVIT_PC_LIBS ${_trecvit_pc_own} -L$<TARGET_FILE_DIR:torch_cpu>
     -Wl,--no-as-needed -ltorch -ltorch_cpu -Wl,--as-needed)
list(JOIN TRECVIT_PC_CFLAGS " " TRECVIT_PC_CFLAGS)
list(JOIN TRECVIT_PC_LIBS " " TRECVIT_PC_LIBS)
configure_file(${CMAKE_CURRENT_LIST_DIR}/trecvit.pc.in ${PROJECT_BINARY_DIR}/trecvit.pc.in @ONLY)
file(GENERATE OUTPUT ${PROJECT_BINARY_DIR}/trecvit.pc INPUT ${PROJECT_BINARY_DIR}/trecvit.pc.in)
install(FILES ${PROJECT_BINARY_DIR}/trecvit.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
