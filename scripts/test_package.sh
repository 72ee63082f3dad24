#!/usr/bin/env bash
# The installed package, tested as a user would use it (scripts/test.sh runs
# it; CI counts its checks):
#   1. configure, build (library + walctl, -j2) and install the CMake tree
#      into a temporary prefix;
#   2. the installed tree: no internal include in any header, each header
#      compiles alone in a translation unit, walctl.1 and walctl --version;
#   3. examples/embed copied out of the tree and built against that prefix
#      alone, with its CMakeLists.txt (find_package) and with pkg-config; no
#      path into the source tree on a compile or link line;
#   4. each build of the example run (write, reopen, check values and index)
#      and the installed `walctl verify` run on the directory it wrote;
#   5. the Debian packages (scripts/make_deb.sh, reusing the build of step 1)
#      installed with apt-get, the example built against /usr by both ways
#      and run, then the packages purged (as root only; skipped otherwise).
# Ends with "package: N passed, M failed".
# Usage: scripts/test_package.sh [--keep]   (--keep: leave the temp dir)
set -uo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
keep=0
[ "${1:-}" = "--keep" ] && keep=1
jobs=${WALSTATE_PACKAGE_JOBS:-2}

work=$(mktemp -d /tmp/walstate-package.XXXXXX)
[ "$keep" -eq 0 ] && trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
passed=0
failed=0
check() {  # check NAME COMMAND...: one counted check
  local name=$1; shift
  local log="$work/check.log"
  if "$@" >"$log" 2>&1; then
    echo "package: ok   $name"
    passed=$((passed + 1))
  else
    echo "package: FAIL $name"
    tail -30 "$log" | sed 's/^/  | /'
    failed=$((failed + 1))
  fi
}
finish() {
  echo "package: ${passed} passed, ${failed} failed"
  [ "$keep" -eq 1 ] && echo "package: kept $work"
  [ "$failed" -eq 0 ]
  exit $?
}

# 1. Build and install.
build_and_install() {
  cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$prefix" &&
    cmake --build "$work/build" -j "$jobs" &&
    cmake --install "$work/build"
}
check "cmake configure, build and install into a temporary prefix" build_and_install
[ -f "$prefix/include/walstate/walstate.h" ] || finish

libdir=$(dirname "$(find "$prefix" -name walstate.pc | head -1)")
libdir=$(dirname "$libdir")
export PKG_CONFIG_PATH="$libdir/pkgconfig"

# 2. The installed tree.
no_internal_includes() {
  ! grep -rnE '#include "(engine|proto|tools)/' "$prefix/include"
}
check "no installed header includes an internal header" no_internal_includes
headers_alone() {
  local h ok=0
  for h in "$prefix"/include/walstate/*.h; do
    printf '#include <walstate/%s>\n' "$(basename "$h")" |
      c++ -std=c++17 -fsyntax-only -Wall -x c++ - \
        $(pkg-config --cflags walstate) || { echo "does not compile alone: $h"; ok=1; }
  done
  return $ok
}
check "each installed header compiles alone" headers_alone
installed_files() {
  local f
  for f in include/walstate/options.proto include/walstate/options.pb.h \
           include/walstate/version.h bin/walctl share/man/man1/walctl.1 \
           "${libdir#$prefix/}/libwalstate.a" "${libdir#$prefix/}/libwalstate.so" \
           "${libdir#$prefix/}/cmake/walstate/walstateConfig.cmake" \
           "${libdir#$prefix/}/cmake/walstate/walstateConfigVersion.cmake"; do
    [ -e "$prefix/$f" ] || { echo "missing: $f"; return 1; }
  done
  # The shared library carries its ABI version.
  objdump -p "$libdir/libwalstate.so" | grep -E 'SONAME +libwalstate\.so\.[0-9]'
}
check "installed files, SONAME" installed_files
walctl_version_and_man() {
  local v
  v=$("$prefix/bin/walctl" --version) || return 1
  echo "$v" | grep -E '^walctl \(walstate\) [0-9]+\.[0-9]+\.[0-9]+, on-disk format [0-9]+$' || return 1
  # Every command's usage line is in the man page.
  local c
  for c in dump verify stats show compact repair; do
    grep -q "usage: walctl $c" "$prefix/share/man/man1/walctl.1" || { echo "walctl.1 lacks $c"; return 1; }
  done
  grep -q "^\.TH WALCTL 1" "$prefix/share/man/man1/walctl.1"
}
check "walctl --version; walctl.1 from walctl --help" walctl_version_and_man

# 3. and 4. The example, out of the tree.
cp -r "$src/examples/embed" "$work/embed"
no_source_paths() {  # no_source_paths FILE...: none names the source tree
  if grep -l -- "$src" "$@"; then
    echo "a compile or link line names the source tree ($src)"
    return 1
  fi
}
cmake_example() {
  cmake -S "$work/embed" -B "$work/embed-build" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DCMAKE_BUILD_TYPE=Release &&
    cmake --build "$work/embed-build" -j "$jobs" &&
    no_source_paths "$work/embed-build/compile_commands.json" \
      $(find "$work/embed-build" -name link.txt) &&
    "$work/embed-build/embed" "$work/data-cmake" &&
    "$prefix/bin/walctl" verify "$work/data-cmake"
}
check "examples/embed with find_package(walstate): build, run, walctl verify" cmake_example
pkg_config_example() {
  (cd "$work/embed" && sh -x ./build_pkg_config.sh) >"$work/pkg-config.log" 2>&1 ||
    { cat "$work/pkg-config.log"; return 1; }
  cat "$work/pkg-config.log"
  no_source_paths "$work/pkg-config.log" &&
    LD_LIBRARY_PATH="$libdir" "$work/embed/embed" "$work/data-pkg-config" &&
    "$prefix/bin/walctl" verify "$work/data-pkg-config"
}
check "examples/embed with pkg-config: build, run, walctl verify" pkg_config_example

# 5. The Debian packages, installed as on a fresh machine and used from /usr.
debs=()  # the package names, read off the built .deb files
purge_debs() {
  local p installed=()
  for p in "${debs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 && installed+=("$p"); done
  [ ${#installed[@]} -eq 0 ] || apt-get purge -y "${installed[@]}" >/dev/null 2>&1
  return 0
}
deb_packages() {
  bash "$src/scripts/make_deb.sh" "$work/build" "$work/deb" || return 1
  local f
  for f in "$work"/deb/*.deb; do debs+=("$(dpkg-deb -f "$f" Package)"); done
  echo "packages: ${debs[*]}"
  [ ${#debs[@]} -eq 3 ] || { echo "expected 3 packages"; return 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y "$work"/deb/*.deb || return 1
  ( # Only what the packages installed under /usr: no prefix, no PKG_CONFIG_PATH.
    unset PKG_CONFIG_PATH
    set -e
    cp -r "$src/examples/embed" "$work/embed-deb"
    cmake -S "$work/embed-deb" -B "$work/embed-deb/build" -DCMAKE_BUILD_TYPE=Release
    grep -E '^walstate_DIR:PATH=/usr/lib/' "$work/embed-deb/build/CMakeCache.txt"
    cmake --build "$work/embed-deb/build" -j "$jobs"
    "$work/embed-deb/build/embed" "$work/data-deb-cmake"
    /usr/bin/walctl verify "$work/data-deb-cmake"
    (cd "$work/embed-deb" && sh -x ./build_pkg_config.sh)
    "$work/embed-deb/embed" "$work/data-deb-pkg-config"
    /usr/bin/walctl verify "$work/data-deb-pkg-config"
    ls /usr/share/man/man1/walctl.1*
  )
}
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null && command -v cpack >/dev/null; then
  check "Debian packages: build, apt-get install, examples/embed against /usr" deb_packages
  purge_debs
else
  echo "package: skip Debian packages (needs root, apt-get and cpack)"
fi

finish
