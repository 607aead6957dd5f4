"""Pulsar: run Galaxy jobs on a remote machine that shares no file system with Galaxy.

The version is a PEP 440 string because Galaxy parses it to pick its code path
(anything at or above 0.15.13 gets the modern protocol).
"""

__version__ = "0.17.0.dev0"
