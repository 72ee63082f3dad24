#!/bin/sh
# The example built with pkg-config alone (PKG_CONFIG_PATH=<prefix>/lib/pkgconfig
# if walstate is not installed where pkg-config looks). Run in a copy of
# examples/embed; writes ./embed.
set -eu
protoc -I. -I"$(pkg-config --variable=protodir walstate)" -I/usr/include --cpp_out=. session.proto
c++ -std=c++17 -O2 -I. main.cc session.pb.cc $(pkg-config --cflags --libs walstate) -o embed
