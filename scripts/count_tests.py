#!/usr/bin/env python3
"""Counts test cases of one `bazel test` run: prints "PASSED FAILED".

Reads the targets Bazel reported in its log (argv[1]) and, for each, the
test.xml under the testlogs directory (argv[2]). A target whose XML has test
cases contributes them; one without (sh_test, a crash) counts as one case,
failed if Bazel said it did not pass.
"""
import os
import re
import sys
import xml.etree.ElementTree as ET

log_path, testlogs = sys.argv[1], sys.argv[2]
status_re = re.compile(r"^(//\S+)\s+(?:\(cached\)\s+)?(PASSED|FAILED|TIMEOUT|FLAKY|NO STATUS|FAILED TO BUILD|INCOMPLETE)")
targets = {}
with open(log_path, errors="replace") as f:
    for line in f:
        m = status_re.match(line.strip())
        if m:
            targets[m.group(1)] = m.group(2)

passed = failed = 0
for target, status in targets.items():
    pkg, _, name = target[2:].partition(":")
    xml_path = os.path.join(testlogs, pkg, name, "test.xml")
    cases = fails = 0
    if status in ("PASSED", "FAILED", "FLAKY") and os.path.exists(xml_path):
        try:
            root = ET.parse(xml_path).getroot()
            for case in root.iter("testcase"):
                cases += 1
                if case.find("failure") is not None or case.find("error") is not None:
                    fails += 1
        except ET.ParseError:
            cases = 0
    ok = status == "PASSED"
    if cases <= 1:
        # No usable per-case results: the target is the case.
        passed += 1 if ok else 0
        failed += 0 if ok else 1
    else:
        if not ok and fails == 0:
            fails = 1  # crashed or timed out after its last recorded case
        passed += cases - fails
        failed += fails
print(passed, failed)
