"""Runs the schemathesis CLI (`st`) with one workaround, for CPython 3.11.

To describe a `.filter(lambda …)` in a strategy's repr, Hypothesis parses
the lambda's whole source file with `ast.parse`. On CPython 3.11 that parse
can raise `SystemError: AST constructor recursion depth mismatch` when it
runs deep in a worker thread's stack, and the whole run then stops with a
runtime error while every check passed. The description is cosmetic: here
such a failure describes the lambda as `<unknown>` instead. Nothing that
generates or checks a test case is touched.
"""

import sys

from hypothesis.internal import lambda_sources

_describe = lambda_sources._lambda_description


def _lambda_description(f, *args, **kwargs):
    try:
        return _describe(f, *args, **kwargs)
    except SystemError:
        return "lambda: <unknown>"


lambda_sources._lambda_description = _lambda_description

from schemathesis.cli import schemathesis  # noqa: E402

sys.argv[0] = "st"
sys.exit(schemathesis())
