"""Where Galaxy imports `RetryActionExecutor` from (`galaxy.jobs.runners.util.cli.shell.rsh`):
the class lives in `pulsar.util.retry`, which the client and the server share."""

from pulsar.util.retry import RetryActionExecutor

__all__ = ["RetryActionExecutor"]
