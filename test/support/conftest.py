"""Fixtures for the tests of the test helpers themselves."""

from test.support.galaxy_files import fake_galaxy  # noqa: F401  (fixture)
