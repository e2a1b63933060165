# Checks that includes between the parts of attnc go one way (run by ctest as `include_layers`):
#
#   cmake -DROOT=<repository> -P cmake/CheckIncludes.cmake
#
# Every source file belongs to a part, and the parts are ordered from the bottom up. A file may
# include its own part and any part below it, never one above: so no two parts include each other
# and no include cycle between parts can exist. Kernel families are each a part of their own at the
# same level, and may not include one another: adding a family touches no other family.
#
# Fails (exit status 1) listing every offending include as FILE:LINE: PART -> PART.

if(NOT ROOT)
  message(FATAL_ERROR "usage: cmake -DROOT=<repository> -P CheckIncludes.cmake")
endif()

# From the bottom up; a folder not listed takes the level of its nearest listed parent.
set(ATTNC_PARTS
    dsl
    compiler
    runtime/emulation
    runtime/kernels
    runtime/core
    runtime/reference
    runtime/llvm
    runtime/cpu
    runtime/cache
    runtime/cuda
    runtime/tilemap
    runtime/families
    runtime
    distributed
    nn
    bench
    tools)

# The part of a repository-relative path: the longest listed prefix; for runtime/families/X/...,
# the family "runtime/families/X" (at the level of runtime/families).
function(part_of path out_part out_level)
  set(best "")
  set(best_level -1)
  set(level 0)
  foreach(part IN LISTS ATTNC_PARTS)
    string(LENGTH "${part}" length)
    string(SUBSTRING "${path}/" 0 ${length} prefix)
    string(LENGTH "${best}" best_length)
    if(prefix STREQUAL part AND length GREATER best_length)
      string(SUBSTRING "${path}/" ${length} 1 next)
      if(next STREQUAL "/")
        set(best "${part}")
        set(best_level ${level})
      endif()
    endif()
    math(EXPR level "${level} + 1")
  endforeach()
  if(best STREQUAL "runtime/families" AND path MATCHES "^runtime/families/([^/]+)/")
    set(best "runtime/families/${CMAKE_MATCH_1}")
  endif()
  set(${out_part} "${best}" PARENT_SCOPE)
  set(${out_level} ${best_level} PARENT_SCOPE)
endfunction()

file(GLOB_RECURSE files RELATIVE "${ROOT}" "${ROOT}/dsl/*" "${ROOT}/compiler/*" "${ROOT}/runtime/*"
     "${ROOT}/distributed/*" "${ROOT}/nn/*" "${ROOT}/bench/*" "${ROOT}/tools/*")
set(violations "")
set(checked 0)
foreach(file IN LISTS files)
  if(NOT file MATCHES "\\.(h|cpp|cuh|cu)$")
    continue()
  endif()
  part_of("${file}" from from_level)
  if(from_level LESS 0)
    continue()
  endif()
  file(STRINGS "${ROOT}/${file}" lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
  foreach(line IN LISTS lines)
    if(NOT line MATCHES "#[ \t]*include[ \t]*\"([^\"]+)\"")
      continue()
    endif()
    set(target "${CMAKE_MATCH_1}")
    # Bare names (kernel templates including each other as NVRTC sees them) stay in their folder.
    if(NOT target MATCHES "/")
      continue()
    endif()
    part_of("${target}" to to_level)
    if(to_level LESS 0)
      continue()
    endif()
    math(EXPR checked "${checked} + 1")
    set(bad FALSE)
    if(to_level GREATER from_level)
      set(bad TRUE)
    elseif(to MATCHES "^runtime/families/" AND from MATCHES "^runtime/families/" AND NOT to STREQUAL from)
      set(bad TRUE)
    endif()
    if(bad)
      string(APPEND violations "  ${file}: #include \"${target}\": ${from} -> ${to}\n")
    endif()
  endforeach()
endforeach()

if(violations)
  message("includes that go up the parts (bottom up: ${ATTNC_PARTS}):\n${violations}")
  message(FATAL_ERROR "include layering violated")
endif()
message(STATUS "include layering: ${checked} includes between parts, all going down")
