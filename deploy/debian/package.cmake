# The Debian packages, built by `make package` (CPack's DEB generator, one
# package per install component; docs/packages.md says what goes where):
#   shardex              (component tools) the shardex tool, libshardex (static,
#                        with its header and shardex.pc), the descriptor set;
#   shardex-coordinator  (component coordinator) and
#   shardex-worker       (component worker): the daemon, its default
#                        configuration as a conffile, its systemd unit, and
#                        maintainer scripts that make the shardex user and the
#                        state directory (daemon.postinst.in and the others here).
# The binaries' install() rules live with their targets; the files that belong
# to no target are installed here. tests/package/test_packages.sh installs the
# three in a fresh Debian root.

set(SX_DEB_MAINTAINER "shardex maintainers <maintainers@shardex.invalid>"
    CACHE STRING "Maintainer field of the Debian packages")

# Files outside /usr get absolute destinations: a package puts them there
# whatever its prefix (/usr), and Debian 12's systemd reads vendor units from
# /lib/systemd/system (usrmerge makes it /usr/lib/systemd/system too).
set(SX_UNIT_DIR /lib/systemd/system)
set(SX_CONF_DIR /etc/shardex)

install(FILES ${CMAKE_BINARY_DIR}/shardex.protoset
        DESTINATION ${CMAKE_INSTALL_DATADIR}/shardex COMPONENT tools)
# The units' Documentation= points at the README; security.md and deploy.md
# are what an operator of the packages reads next.
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/docs/packages.md
              ${CMAKE_SOURCE_DIR}/docs/security.md ${CMAKE_SOURCE_DIR}/docs/deploy.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT tools)
# The certificates and tokens of a TLS cluster (docs/security.md); it needs
# the openssl command, which the package suggests.
install(PROGRAMS ${CMAKE_SOURCE_DIR}/deploy/certs.sh
        DESTINATION ${CMAKE_INSTALL_DATADIR}/shardex COMPONENT tools)

# The maintainer scripts differ between the daemons only in names: one
# template each, made per daemon in the build tree.
set(SX_DEB_GEN ${CMAKE_BINARY_DIR}/deploy/debian)
foreach(SX_ROLE coordinator worker)
  set(SX_PKG shardex-${SX_ROLE})
  set(SX_UNIT ${SX_PKG}.service)
  string(TOUPPER ${SX_ROLE} comp)
  install(FILES ${CMAKE_SOURCE_DIR}/deploy/${SX_ROLE}.conf.example DESTINATION ${SX_CONF_DIR}
          RENAME ${SX_ROLE}.conf COMPONENT ${SX_ROLE})
  install(FILES ${CMAKE_SOURCE_DIR}/deploy/systemd/${SX_UNIT} DESTINATION ${SX_UNIT_DIR}
          COMPONENT ${SX_ROLE})
  set(extra)
  foreach(script postinst prerm postrm)
    configure_file(${CMAKE_CURRENT_LIST_DIR}/daemon.${script}.in ${SX_DEB_GEN}/${SX_ROLE}/${script}
                   @ONLY)
    list(APPEND extra ${SX_DEB_GEN}/${SX_ROLE}/${script})
  endforeach()
  # dpkg keeps an operator's edits of a conffile across upgrades and asks
  # before replacing them; purge removes it.
  file(WRITE ${SX_DEB_GEN}/${SX_ROLE}/conffiles "${SX_CONF_DIR}/${SX_ROLE}.conf\n")
  list(APPEND extra ${SX_DEB_GEN}/${SX_ROLE}/conffiles)
  set(CPACK_DEBIAN_${comp}_PACKAGE_NAME ${SX_PKG})
  set(CPACK_DEBIAN_${comp}_PACKAGE_CONTROL_EXTRA "${extra}")
  # adduser for the postinst; the libraries come from dpkg-shlibdeps. The
  # tool is only recommended: the daemon runs without it, but `shardex status`
  # is how an operator checks a node, and the unit's documentation is there.
  set(CPACK_DEBIAN_${comp}_PACKAGE_DEPENDS adduser)
  set(CPACK_DEBIAN_${comp}_PACKAGE_RECOMMENDS shardex)
endforeach()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME shardex)
set(CPACK_PACKAGE_VENDOR shardex)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${SX_DEB_MAINTAINER}")
set(CPACK_PACKAGE_DIRECTORY ${CMAKE_BINARY_DIR}/packages)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL tools coordinator worker)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # name_version-release_arch.deb
set(CPACK_DEBIAN_PACKAGE_SECTION database)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${SX_DEB_MAINTAINER}")
# Depends on the shared libraries the binaries link, with the versions their
# symbols need (dpkg-shlibdeps, from dpkg-dev; it finds ELF files with file(1)).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Maintainer scripts 0755, conffiles 0644, whatever the source files' modes.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME shardex)
# Building against libshardex needs the development packages of what it calls
# (shardex.pc names them); running the tool does not.
set(CPACK_DEBIAN_TOOLS_PACKAGE_SUGGESTS
    "openssl, pkg-config, libgrpc-dev, libprotobuf-c-dev, libleveldb-dev, libxxhash-dev, libjansson-dev, libsystemd-dev")

# The first line is the synopsis (not starting with the package's name, as
# Debian asks); CPack indents the rest and turns an empty
# line into the " ." of a control file.
set(CPACK_COMPONENT_TOOLS_DESCRIPTION
    "distributed index builder - command-line tool and C client library
shardex is a partitioned, distributed index builder: documents go to a
replicated, partitioned log, and workers build local and global secondary
indexes over them.

This package holds the shardex tool (put, query, load, status, verify),
libshardex (a static C client library with its header and pkg-config file)
and a protobuf descriptor set of the API (/usr/share/shardex/shardex.protoset)
for grpcurl-like clients.")
set(CPACK_COMPONENT_COORDINATOR_DESCRIPTION
    "distributed index builder - coordinator daemon
shardex is a partitioned, distributed index builder.

The coordinator keeps the cluster map, the workers' leases and the index
catalog, and moves partitions when workers fail. This package installs the
daemon, /etc/shardex/coordinator.conf, the shardex-coordinator systemd unit
(neither enabled nor started), the shardex system user and
/var/lib/shardex/coordinator.")
set(CPACK_COMPONENT_WORKER_DESCRIPTION
    "distributed index builder - worker daemon
shardex is a partitioned, distributed index builder.

A worker hosts log partitions and term partitions and serves the client
API. This package installs the daemon, /etc/shardex/worker.conf, the
shardex-worker systemd unit (neither enabled nor started), the shardex
system user and /var/lib/shardex/worker.")

include(CPack)
