"""Shared build settings for walstate's own code."""

# Our code compiles warning-free; generated and system code is not held to it.
WALSTATE_COPTS = [
    "-std=c++17",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-unused-parameter",
    "-Wno-sign-compare",
]

def walstate_proto(name, src, deps = [], proto_deps = [], strip_import_prefix = None):
    """Compiles one .proto with the system protoc into a cc_library.

    Bazel 4's proto rules would download protobuf's sources; this genrule runs
    Debian's protoc instead. `proto_deps` are other .proto files it imports
    (the public ones as "walstate/...", found under include/). With
    `strip_import_prefix` (the package's own path, e.g. "include"), the file
    is compiled and included relative to that directory: include/walstate/
    options.proto is "walstate/options.proto" and "walstate/options.pb.h".
    """
    base = src[:-len(".proto")]
    pkg = native.package_name()
    if strip_import_prefix:
        proto_path = strip_import_prefix
        cpp_out = "$(GENDIR)/" + strip_import_prefix
    else:
        proto_path = "."
        cpp_out = "$(GENDIR)"
    native.genrule(
        name = name + "_gen",
        srcs = [src] + proto_deps,
        outs = [base + ".pb.h", base + ".pb.cc"],
        cmd = ("protoc --proto_path=" + proto_path + " --proto_path=include" +
               " --proto_path=/usr/include --cpp_out=" + cpp_out +
               " $(location " + src + ")"),
    )
    native.cc_library(
        name = name,
        srcs = [base + ".pb.cc"],
        hdrs = [base + ".pb.h"],
        copts = ["-std=c++17", "-w"],
        strip_include_prefix = ("/" + strip_import_prefix) if strip_import_prefix else None,
        deps = deps + ["//third_party:protobuf"],
        visibility = ["//visibility:public"],
    )
