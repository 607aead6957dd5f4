"""Helpers shared by the test suites: reference venvs, free ports, server processes."""
