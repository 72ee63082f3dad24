# Debian packages of the installed tree, by `cpack -G DEB` in a build
# configured with -DCMAKE_INSTALL_PREFIX=/usr (scripts/make_deb.sh does both).
# One package per install component:
#   libwalstate<SOVERSION>  (component lib)    the shared library;
#   libwalstate-dev         (component dev)    headers, options.proto, the
#                           static library, CMake config, walstate.pc, docs;
#   walctl                  (component walctl) the tool and its man page.
# Run-time dependencies of the binaries come from dpkg-shlibdeps; the -dev
# package depends on the -dev packages its headers and walstate.pc name.
set(CPACK_PACKAGE_NAME walstate)
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_HOMEPAGE_URL "${PROJECT_HOMEPAGE_URL}")
set(CPACK_RESOURCE_FILE_LICENSE "${CMAKE_CURRENT_SOURCE_DIR}/LICENSE")
set(CPACK_GENERATOR DEB)
set(CPACK_COMPONENTS_ALL lib dev walctl)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "walstate developers")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Intra-package dependencies carry the exact version: -dev and walctl need
# the same build of the library.
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)
set(CPACK_COMPONENT_DEV_DEPENDS lib)

set(CPACK_DEBIAN_LIB_PACKAGE_NAME "libwalstate${WALSTATE_SOVERSION}")
set(CPACK_DEBIAN_LIB_PACKAGE_SECTION libs)
set(CPACK_COMPONENT_LIB_DESCRIPTION
  "walstate: per-session protobuf state, durable through a log and snapshots\n shared library")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libwalstate-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
  "libabsl-dev, libprotobuf-dev, libxxhash-dev, pkg-config")
set(CPACK_DEBIAN_DEV_PACKAGE_RECOMMENDS "protobuf-compiler, walctl")
set(CPACK_COMPONENT_DEV_DESCRIPTION
  "walstate: per-session protobuf state, durable through a log and snapshots\n headers, walstate/options.proto, static library, CMake config and pkg-config file")

set(CPACK_DEBIAN_WALCTL_PACKAGE_NAME walctl)
set(CPACK_DEBIAN_WALCTL_PACKAGE_SECTION utils)
set(CPACK_COMPONENT_WALCTL_DESCRIPTION
  "walstate's tool: dump, verify, repair, compact and restore data directories")

include(CPack)
