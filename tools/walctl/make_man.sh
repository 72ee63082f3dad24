#!/bin/sh
# make_man.sh WALCTL OUT: writes the walctl(1) man page to OUT from the texts
# WALCTL itself prints (--help, help COMMAND, --version), so the man page and
# the tool cannot disagree. Run by the CMake build (CMakeLists.txt).
set -eu
walctl=$1
out=$2

# roff: a backslash is \e; a line starting with . or ' would be a request.
escape() {
  sed -e 's/\\/\\e/g' -e 's/^\./\\\&./' -e "s/^'/\\\\\&'/" -e 's/^-/\\-/'
}

version=$("$walctl" --version)
release=$(printf '%s\n' "$version" | sed -n 's/^walctl (walstate) \([^,]*\),.*/\1/p')
[ -n "$release" ] || { echo "make_man.sh: cannot read the release from '$version'" >&2; exit 1; }
# The commands are the lines "  NAME ..." of the "commands:" part of --help.
commands=$("$walctl" --help | sed -n '/^commands:/,/^$/p' |
           sed -n 's/^  \([a-z][a-z]*\) .*/\1/p' | grep -v '^help$')
[ -n "$commands" ] || { echo "make_man.sh: no commands in walctl --help" >&2; exit 1; }

tmp="$out.tmp"
{
  echo ".TH WALCTL 1 \"\" \"walstate $release\" \"User Commands\""
  echo ".SH NAME"
  echo "walctl \\- look inside, check and fix a walstate data directory"
  echo ".SH SYNOPSIS"
  echo ".B walctl"
  echo ".I COMMAND DIR"
  echo "[flags]"
  echo ".br"
  echo ".B walctl --version"
  echo ".SH DESCRIPTION"
  echo "The text of"
  echo ".BR \"walctl --help\" ."
  echo ".PP"
  echo ".nf"
  "$walctl" --help | escape
  echo ".fi"
  for c in $commands; do
    echo ".SH \"COMMAND $c\""
    echo ".nf"
    "$walctl" help "$c" | escape
    echo ".fi"
  done
  echo ".SH VERSION"
  printf '%s\n' "$version" | escape
  echo ".SH SEE ALSO"
  echo "docs/walctl.md and docs/FORMAT.md in walstate's documentation."
} >"$tmp"
mv "$tmp" "$out"
