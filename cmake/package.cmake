# `cpack -G DEB` in the build tree: egressd_<version>_amd64.deb with what cmake/install.cmake installs, its
# library dependencies computed by dpkg-shlibdeps, the files under /etc as conffiles, and maintainer scripts
# (deploy/debian) that create the user egressd and enable the unit the Debian way.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME egressd)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "egress filtering HTTP/HTTPS forward proxy")
set(CPACK_PACKAGE_DESCRIPTION
    "An explicit HTTP proxy (absolute-form http:// and CONNECT) that lets each client reach only what its policy
allows, decided before DNS by name and after DNS by address, with access requests, approvals and alerts.")
set(CPACK_PACKAGE_CONTACT "egressd maintainers <egressd@localhost>")
# The install rules name /etc and /var absolutely: CPack must stage them under DESTDIR, not on this machine.
# With DESTDIR staging, CPACK_INSTALL_PREFIX is the prefix the package installs under.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# Debian ships binaries without their symbol tables.
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Besides the libraries: the CA certificates for https webhooks and alert sinks, and useradd for postinst.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "ca-certificates, passwd")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "logrotate")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/deploy/debian/conffiles
    ${PROJECT_SOURCE_DIR}/deploy/debian/postinst
    ${PROJECT_SOURCE_DIR}/deploy/debian/prerm
    ${PROJECT_SOURCE_DIR}/deploy/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
