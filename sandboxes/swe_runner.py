# mypy: check-untyped-defs
"""Runs a project's ``unittest`` suite inside an SWE container and records each test's
outcome, so that a reward can name the tests that pass or fail instead of reading text.

The host runs this file as ``python3 -c SOURCE START_DIR [TEST_ID ...]`` from the project's
root (:data:`sandboxes.swe.RUNNER_SOURCE`): with no ids it discovers the tests under
START_DIR like ``python3 -m unittest discover -s START_DIR -t .``; with ids it runs those
(a module, a class or one test). unittest's usual report goes to stderr; the outcomes go as
JSON to the file named by ``$SUMMIT_RESULTS``: ``{"outcomes": {id: pass|fail|error|skip},
"failures": {id: report}}``. A failure's report holds the frames of the test files only and
the exception, never a line of the code under test (an issue written from it must not
quote the bug). It is never imported on the host.
"""

import json
import os
import sys
import traceback
import unittest

REPORT_CHARS = 2000


class Recording(unittest.TextTestResult):
    """unittest's text result that also keeps each test's outcome by id."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.outcomes = {}
        self.failures_by_id = {}

    def mark(self, test, outcome, err=None):
        test_id = test.id()
        if self.outcomes.get(test_id) in ("fail", "error"):
            return  # a failed subtest fails its test for good
        self.outcomes[test_id] = outcome
        if err is not None:
            self.failures_by_id[test_id] = report(err)

    def addSuccess(self, test):
        super().addSuccess(test)
        self.mark(test, "pass")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.mark(test, "fail", err)

    def addError(self, test, err):
        super().addError(test, err)
        self.mark(test, "error", err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.mark(test, "skip")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.mark(test, "pass")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.mark(test, "fail")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            self.mark(test, "fail" if failed else "error", err)


TESTS_ROOT = ""


def report(err):
    """The failure as the test files see it: their frames and the exception."""
    kind, value, tb = err
    frames = [
        f for f in traceback.extract_tb(tb) if os.path.abspath(f.filename).startswith(TESTS_ROOT)
    ]
    lines = ["Traceback (most recent call last):\n"] if frames else []
    lines += traceback.format_list(frames)
    lines += traceback.format_exception_only(kind, value)
    return "".join(lines)[-REPORT_CHARS:]


def main():
    global TESTS_ROOT
    start, ids = sys.argv[1], sys.argv[2:]
    TESTS_ROOT = os.path.abspath(start) + os.sep
    sys.path.insert(0, os.getcwd())
    loader = unittest.TestLoader()
    suite = loader.loadTestsFromNames(ids) if ids else loader.discover(start, top_level_dir=".")
    runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=1, resultclass=Recording)
    result = runner.run(suite)
    assert isinstance(result, Recording)
    with open(os.environ["SUMMIT_RESULTS"], "w") as handle:
        json.dump({"outcomes": result.outcomes, "failures": result.failures_by_id}, handle)
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
