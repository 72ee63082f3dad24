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

def walstate_proto(name, src, deps = [], proto_deps = []):
    """Compiles one .proto with the system protoc into a cc_library.

    Bazel 4's proto rules would download protobuf's sources; this genrule runs
    Debian's protoc instead. `proto_deps` are other .proto files it imports.
    """
    base = src[:-len(".proto")]
    native.genrule(
        name = name + "_gen",
        srcs = [src] + proto_deps,
        outs = [base + ".pb.h", base + ".pb.cc"],
        cmd = "protoc --proto_path=. --proto_path=/usr/include --cpp_out=$(GENDIR) $(location " + src + ")",
    )
    native.cc_library(
        name = name,
        srcs = [base + ".pb.cc"],
        hdrs = [base + ".pb.h"],
        copts = ["-std=c++17", "-w"],
        deps = deps + ["//third_party:protobuf"],
        visibility = ["//visibility:public"],
    )
