# What `cmake --install` puts on a host, and the Debian package carries (cmake/package.cmake): the binary, the
# man pages, the systemd unit, a host configuration under /etc/egressd, the logrotate snippet, and the state and
# log directories. /etc and /var are absolute on purpose: a host install is configured there whatever the
# prefix (DESTDIR still applies to them).
include(GNUInstallDirs)
find_package(Python3 COMPONENTS Interpreter REQUIRED)

set(EGRESSD_SYSTEMD_UNIT_DIR "lib/systemd/system" CACHE STRING
    "Where the systemd unit goes, relative to the installation prefix")

# The man pages: one Markdown source each in docs/man, rendered to roff and compressed at build time.
set(egressd_man_pages egressd.8 egressd.yaml.5 egressd-policy.5)
set(egressd_man_outputs "")
foreach(page IN LISTS egressd_man_pages)
  set(output ${PROJECT_BINARY_DIR}/man/${page}.gz)
  add_custom_command(OUTPUT ${output}
                     COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/man
                     COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/render-man
                             --version ${PROJECT_VERSION} ${PROJECT_SOURCE_DIR}/docs/man/${page}.md ${output}
                     DEPENDS ${PROJECT_SOURCE_DIR}/docs/man/${page}.md ${PROJECT_SOURCE_DIR}/scripts/render-man
                     COMMENT "Rendering the man page ${page}"
                     VERBATIM)
  list(APPEND egressd_man_outputs ${output})
  string(REGEX MATCH "[0-9]$" section ${page})
  install(FILES ${output} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
endforeach()
add_custom_target(egressd_man ALL DEPENDS ${egressd_man_outputs})

install(TARGETS egressd RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# The unit names the binary by its installed path, which is known only when installing: the Debian package
# installs with the prefix /usr, a `cmake --install` with /usr/local or --prefix.
install(CODE "
  set(EGRESSD_BINARY \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/egressd\")
  configure_file(\"${PROJECT_SOURCE_DIR}/deploy/systemd/egressd.service.in\"
                 \"${PROJECT_BINARY_DIR}/deploy/egressd.service\" @ONLY)
")
install(FILES ${PROJECT_BINARY_DIR}/deploy/egressd.service DESTINATION ${EGRESSD_SYSTEMD_UNIT_DIR})

install(FILES ${PROJECT_SOURCE_DIR}/deploy/systemd/egressd.yaml ${PROJECT_SOURCE_DIR}/config/examples/policy.yaml
        DESTINATION /etc/egressd)
# Password hashes: not for everyone to read. The package's postinst gives them to the group egressd.
install(FILES ${PROJECT_SOURCE_DIR}/config/examples/approvers.passwd
              ${PROJECT_SOURCE_DIR}/config/examples/requesters.passwd
        DESTINATION /etc/egressd
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)
install(FILES ${PROJECT_SOURCE_DIR}/deploy/logrotate/egressd DESTINATION /etc/logrotate.d)
install(DIRECTORY DESTINATION /var/lib/egressd)
install(DIRECTORY DESTINATION /var/log/egressd)
