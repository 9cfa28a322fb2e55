# The install test (CTest install.cmake_package): install the build into a
# fresh temporary prefix, then configure, build and run the consumer project
# next to this file against it -- one executable per exported target
# (aredis::aredis and aredis::aredis_static) -- with REDIS_URL pointing at
# the fixture's server. Run with cmake -P and these definitions:
#   BUILD_DIR   the aredis build tree to install
#   WORK_DIR    scratch directory (emptied first)
#   C_COMPILER  the compiler the library was built with
#   SAN_FLAGS   the sanitizer flags it was built with ("" when none)
#   STATE       the server's state file (tests/support/redis-server.sh)
foreach(v BUILD_DIR WORK_DIR C_COMPILER STATE)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "run.cmake: ${v} is not defined")
  endif()
endforeach()

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}")
  endif()
  message(STATUS "${what}: ok")
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")
set(consumer "${WORK_DIR}/consumer")

run("install into ${prefix}"
    "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${prefix}")

# The sanitizers' runtimes are linked into programs, not libraries: a
# consumer of an instrumented static library must link them too.
set(flags "")
if(SAN_FLAGS)
  string(REPLACE ";" " " flags "${SAN_FLAGS}")
endif()
run("configure the consumer"
    "${CMAKE_COMMAND}" -S "${CMAKE_CURRENT_LIST_DIR}" -B "${consumer}"
    "-DCMAKE_C_COMPILER=${C_COMPILER}" "-DCMAKE_PREFIX_PATH=${prefix}"
    "-DCMAKE_EXE_LINKER_FLAGS=${flags}" "-DCMAKE_C_FLAGS=${flags}")
run("build the consumer" "${CMAKE_COMMAND}" --build "${consumer}")

file(STRINGS "${STATE}" port REGEX "^port=")
string(REGEX REPLACE "^port=" "" port "${port}")
if(NOT port)
  message(FATAL_ERROR "no port in ${STATE}")
endif()
foreach(exe consumer_shared consumer_static)
  run("run ${exe}" "${CMAKE_COMMAND}" -E env "REDIS_URL=redis://127.0.0.1:${port}/0"
      "${consumer}/${exe}")
endforeach()

# The same program built with pkg-config, as docs/guide/building.md shows:
# against the shared library, and statically with `pkg-config --static`
# (Libs.private must be words a compiler driver takes as they are).
find_program(PKG_CONFIG_EXECUTABLE pkg-config REQUIRED)
file(GLOB_RECURSE pc_file "${prefix}/*/aredis.pc")
if(NOT pc_file)
  message(FATAL_ERROR "no aredis.pc under ${prefix}")
endif()
get_filename_component(pc_dir "${pc_file}" DIRECTORY)
get_filename_component(lib_dir "${pc_dir}" DIRECTORY)
set(ENV{PKG_CONFIG_PATH} "${pc_dir}")
foreach(kind shared static)
  set(pc_args --cflags --libs aredis)
  if(kind STREQUAL "static")
    set(pc_args --static ${pc_args})
  endif()
  execute_process(COMMAND "${PKG_CONFIG_EXECUTABLE}" ${pc_args}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE pc_flags
                  ERROR_VARIABLE pc_err OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "pkg-config ${pc_args} failed: ${pc_err}")
  endif()
  # A shell splits at blanks only: a ';' would glue two flags into one
  # word (a bogus -L directory swallowing the -l after it).
  if(pc_flags MATCHES ";")
    list(JOIN pc_args " " pc_words)
    message(FATAL_ERROR "pkg-config ${pc_words} gives a ';': ${pc_flags}")
  endif()
  separate_arguments(pc_flags UNIX_COMMAND "${pc_flags}")
  set(exe "${WORK_DIR}/pc_${kind}")
  set(link_mode "")
  if(kind STREQUAL "static")
    # Take libaredis.a although libaredis.so sits beside it.
    list(TRANSFORM pc_flags REPLACE "^-laredis$" "-l:libaredis.a")
  else()
    set(link_mode "-Wl,-rpath,${lib_dir}")
  endif()
  run("build pc_${kind} with pkg-config"
      "${C_COMPILER}" -std=c11 ${SAN_FLAGS} -o "${exe}"
      "${CMAKE_CURRENT_LIST_DIR}/consumer.c" ${pc_flags} ${link_mode})
  run("run pc_${kind}" "${CMAKE_COMMAND}" -E env
      "REDIS_URL=redis://127.0.0.1:${port}/0" "${exe}")
endforeach()
file(REMOVE_RECURSE "${WORK_DIR}")
