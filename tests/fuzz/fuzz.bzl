"""Build rules for walstate's libFuzzer targets."""

load("//:build_defs.bzl", "WALSTATE_COPTS")

def walstate_fuzz_target(name, srcs, deps):
    """Defines `<name>_fuzzer` and `<name>_corpus_test`.

    `<name>_fuzzer` is the libFuzzer binary. It links only under
    `--config=fuzz` (clang, -fsanitize=fuzzer), so it is tagged "manual" and
    left out of `bazel build //tests/...`; scripts/fuzz.sh builds and runs it.

    `<name>_corpus_test` is a plain test (any compiler, any sanitizer config)
    that runs every file of corpus/<name>/ through the same
    LLVMFuzzerTestOneInput once, so that the regular and the ASan suites
    exercise the committed corpus.
    """
    native.cc_binary(
        name = name + "_fuzzer",
        testonly = True,
        srcs = srcs,
        copts = WALSTATE_COPTS,
        tags = ["manual", "fuzz"],
        deps = deps,
    )
    native.cc_test(
        name = name + "_corpus_test",
        size = "small",
        srcs = srcs + ["corpus_replay_main.cc"],
        args = ["tests/fuzz/corpus/" + name],
        copts = WALSTATE_COPTS,
        data = native.glob(["corpus/" + name + "/**"]),
        deps = deps,
    )
