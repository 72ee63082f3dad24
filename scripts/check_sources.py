#!/usr/bin/env python3
"""Checks that Bazel and CMake build the same .cc files of the library and walctl.

Bazel side: the srcs of //engine:walstate and of every //engine/... target it
depends on (the library), and of //tools/walctl:walctl and the targets under
tools/walctl it depends on (walctl), read from the BUILD.bazel files.
(walctl's own sources are those beyond the library's.)
CMake side: the engine/... and tools/walctl/... .cc files named in
CMakeLists.txt's WALSTATE_SOURCES and WALCTL_SOURCES.

Any .cc in one and not the other fails, with what to add where. Also fails
for a .cc file under engine/ or tools/walctl/ that no Bazel target builds
(a file added but forgotten in both builds).

Usage: check_sources.py [REPO_ROOT]   (default: this script's ../)
Run by //tests/build:sources_test and scripts/test.sh.
"""

import glob
import os
import re
import sys

LIBRARY_ROOT = "//engine:walstate"
WALCTL_ROOT = "//tools/walctl:walctl"


def load_build(path, package):
    """Evaluates one BUILD.bazel file with stubs; returns {label: rule}."""
    rules = {}

    def rule(kind):
        def record(name, **kwargs):
            rules["//%s:%s" % (package, name)] = {
                "kind": kind,
                "srcs": kwargs.get("srcs", []),
                "deps": kwargs.get("deps", []),
            }

        return record

    def ignore(*args, **kwargs):
        return None

    def stub_glob(patterns, exclude=None, **kwargs):
        base = os.path.dirname(path)
        out = []
        for p in patterns:
            for f in glob.glob(os.path.join(base, p), recursive=True):
                out.append(os.path.relpath(f, base))
        return sorted(set(out) - set(exclude or []))

    env = {
        "load": ignore,
        "package": ignore,
        "exports_files": ignore,
        "filegroup": ignore,
        "genrule": ignore,
        "cc_test": ignore,
        "sh_test": ignore,
        "py_test": ignore,
        "walstate_proto": ignore,
        "glob": stub_glob,
        "cc_library": rule("cc_library"),
        "cc_binary": rule("cc_binary"),
        "WALSTATE_COPTS": [],
        "True": True,
        "False": False,
    }
    with open(path) as f:
        code = f.read()
    exec(compile(code, path, "exec"), env)  # BUILD files are Python syntax
    return rules


def absolute(label, package):
    if label.startswith(":"):
        return "//%s%s" % (package, label)
    if label.startswith("//") and ":" not in label:
        return "%s:%s" % (label, label.rsplit("/", 1)[-1])
    return label


def bazel_closure(root_dir, root_label, prefixes):
    """The .cc srcs of root_label and its deps inside `prefixes` packages."""
    rules = {}
    for prefix in prefixes:
        for path in glob.glob(os.path.join(root_dir, prefix, "**", "BUILD.bazel"), recursive=True):
            package = os.path.relpath(os.path.dirname(path), root_dir)
            rules.update(load_build(path, package))
    seen, todo, srcs, owner = set(), [root_label], set(), {}
    while todo:
        label = todo.pop()
        if label in seen or label not in rules:
            continue
        seen.add(label)
        package = label[2:].split(":")[0]
        for s in rules[label]["srcs"]:
            if s.endswith(".cc") and not s.startswith("//"):
                path = "%s/%s" % (package, s)
                srcs.add(path)
                owner[path] = label
        for d in rules[label]["deps"]:
            todo.append(absolute(d, package))
    return srcs, owner, rules


def cmake_list(root_dir, variable):
    with open(os.path.join(root_dir, "CMakeLists.txt")) as f:
        text = f.read()
    m = re.search(r"set\(%s\s(.*?)\)" % variable, text, re.S)
    if not m:
        return None
    body = re.sub(r"#[^\n]*", "", m.group(1))
    return {t for t in body.split() if t.endswith(".cc")}


def main():
    root_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    root_dir = os.path.abspath(root_dir)
    errors = []
    lib, lib_owner, engine_rules = bazel_closure(root_dir, LIBRARY_ROOT, ["engine"])
    tool_all, tool_owner, tool_rules = bazel_closure(root_dir, WALCTL_ROOT, ["engine", "tools/walctl"])
    # walctl's own sources: what it builds beyond the library (tools/walctl/,
    # and engine code only walctl links, such as the NATS replicator).
    tool = tool_all - lib
    if not lib:
        errors.append("no sources found for %s in engine/**/BUILD.bazel" % LIBRARY_ROOT)
    if not tool:
        errors.append("no sources found for %s in tools/walctl/BUILD.bazel" % WALCTL_ROOT)

    for variable, bazel, owner, what, root in (
        ("WALSTATE_SOURCES", lib, lib_owner, "the library", LIBRARY_ROOT),
        ("WALCTL_SOURCES", tool, tool_owner, "walctl", WALCTL_ROOT),
    ):
        cmake = cmake_list(root_dir, variable)
        if cmake is None:
            errors.append("CMakeLists.txt has no set(%s ...) list" % variable)
            continue
        for s in sorted(bazel - cmake):
            errors.append(
                "%s is built by Bazel (%s, part of %s %s) but not by CMake: "
                "add it to set(%s ...) in CMakeLists.txt" % (s, owner[s], what, root, variable))
        for s in sorted(cmake - bazel):
            if not os.path.exists(os.path.join(root_dir, s)):
                errors.append(
                    "%s is listed in set(%s ...) in CMakeLists.txt but does not exist: "
                    "remove it there" % (s, variable))
            else:
                errors.append(
                    "%s is built by CMake (set(%s ...) in CMakeLists.txt) but by no Bazel "
                    "target %s depends on: add it to the srcs of a cc_library in %s/BUILD.bazel "
                    "that %s depends on, or remove it from CMakeLists.txt"
                    % (s, variable, root, os.path.dirname(s), root))

    # Every .cc under engine/ and tools/walctl/ is built by some Bazel target.
    built = set()
    for rules in (engine_rules, tool_rules):
        for label, r in rules.items():
            package = label[2:].split(":")[0]
            built.update("%s/%s" % (package, s) for s in r["srcs"] if s.endswith(".cc"))
    for prefix in ("engine", "tools/walctl"):
        for f in glob.glob(os.path.join(root_dir, prefix, "**", "*.cc"), recursive=True):
            rel = os.path.relpath(f, root_dir)
            if rel not in built:
                errors.append(
                    "%s is built by no Bazel target: add it to the srcs of a cc_library in "
                    "%s/BUILD.bazel (and, if %s or walctl depends on that target, to "
                    "CMakeLists.txt's WALSTATE_SOURCES or WALCTL_SOURCES)"
                    % (rel, os.path.dirname(rel), LIBRARY_ROOT))

    if errors:
        for e in errors:
            print("check_sources: " + e)
        print("check_sources: FAILED (%d problems)" % len(errors))
        return 1
    print("check_sources: Bazel and CMake build the same %d library and %d walctl sources"
          % (len(lib), len(tool)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
