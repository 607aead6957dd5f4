"""The environment a job inherits from the server, with the server's secrets taken out.

Jobs run code Pulsar did not write, often as another user.  Sites still rely on jobs
inheriting the server's environment (PATH, modules, DRM variables set in `local_env.sh`),
so the environment is passed on -- except:

* every variable whose NAME contains one of the `withheld_environment` words
  (case-insensitive substring; default `DEFAULT_WITHHELD`): admins export secrets under
  names like `AWS_SECRET_ACCESS_KEY` or `DB_PASSWORD`;
* every variable whose VALUE contains one of the server's own secrets (the
  `private_token`, the password of `message_queue_url`), whatever the variable is called;
* the `PULSAR_CONFIG_*` overrides (they may carry any option, the token included).

The same filtered mapping goes to every back-end: local processes get it as their
environment, and scheduler commands (`sbatch`, `qsub`, `condor_submit`, the external DRMAA
helpers) run with it because they export their own environment to the job by default.
It is computed once at start (`JobEnvironment.capture`) and the withheld NAMES are logged
once; values are never logged.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import urllib.parse
from typing import Any, Iterable, Mapping

log = logging.getLogger(__name__)

#: Name fragments that mark a variable as secret (matched case-insensitively, anywhere in the name).
DEFAULT_WITHHELD: tuple[str, ...] = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL")
#: Variables with these prefixes are configuration of the server itself, never the job's.
PRIVATE_PREFIXES: tuple[str, ...] = ("PULSAR_CONFIG_", "PULSAR_PRIVATE")
#: The option naming the fragments (a list, or a string of words separated by commas/spaces).
OPTION = "withheld_environment"


def withheld_words(value: Any) -> tuple[str, ...]:
    """The `withheld_environment` option as upper-case words.

    `None` means the default list; an empty list or string withholds by name nothing but
    the private prefixes (the token is still withheld by value).  Raises ValueError for
    anything but a string or a list of strings."""
    if value is None:
        return DEFAULT_WITHHELD
    if isinstance(value, str):
        items: Iterable[Any] = value.replace(",", " ").split()
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        raise ValueError(f"expected a list of name fragments, got {type(value).__name__}")
    words = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"expected non-empty strings, got {item!r}")
        words.append(item.strip().upper())
    return tuple(words)


def is_withheld(name: str, value: str, words: Iterable[str], secrets: Iterable[str] = ()) -> bool:
    """True if the variable `name=value` must not reach a job."""
    if name.startswith(PRIVATE_PREFIXES):
        return True
    upper = name.upper()
    if any(word in upper for word in words):
        return True
    return any(secret and secret in value for secret in secrets)


@dataclasses.dataclass(frozen=True)
class JobEnvironment:
    """`variables` go to jobs; `withheld` names the variables that were kept back."""

    variables: Mapping[str, str]
    withheld: tuple[str, ...]

    @classmethod
    def capture(cls, source: Mapping[str, str] | None = None, words: Iterable[str] = DEFAULT_WITHHELD,
                secrets: Iterable[str | None] = ()) -> "JobEnvironment":
        """Filter `source` (default: this process's environment) once."""
        environ = dict(os.environ if source is None else source)
        word_list = tuple(words)
        secret_list = tuple(s for s in secrets if s)
        kept: dict[str, str] = {}
        withheld: list[str] = []
        for name, value in environ.items():
            if is_withheld(name, value, word_list, secret_list):
                withheld.append(name)
            else:
                kept[name] = value
        return cls(kept, tuple(sorted(withheld)))

    @classmethod
    def from_options(cls, options: Mapping[str, Any], source: Mapping[str, str] | None = None) -> "JobEnvironment":
        """From the application options: `withheld_environment`, and the server's own
        secrets withheld by value (the `private_token`, the password of `message_queue_url`)."""
        return cls.capture(source, withheld_words(options.get(OPTION)), server_secrets(options))

    def log_withheld(self, logger: logging.Logger = log) -> None:
        """One line naming the withheld variables (names only: values are secrets)."""
        if self.withheld:
            logger.info("jobs do not inherit these server environment variables: %s", ", ".join(self.withheld))
        else:
            logger.info("jobs inherit the server environment; no variable withheld")

    def as_dict(self) -> dict[str, str]:
        """A fresh copy, for `subprocess` `env=` arguments."""
        return dict(self.variables)


def server_secrets(options: Mapping[str, Any]) -> list[str]:
    """Values no job may see whatever variable carries them: the token, and the broker
    password (an admin may export the whole AMQP URL under a name like BROKER_URL)."""
    secrets: list[str] = []
    token = options.get("private_token")
    if token:
        secrets.append(str(token))
    url = options.get("message_queue_url")
    if url:
        try:
            password = urllib.parse.urlsplit(str(url)).password
        except ValueError:
            password = None
        if password:
            secrets.append(urllib.parse.unquote(password))
            secrets.append(password)
    return secrets


def default_environment() -> JobEnvironment:
    """What a manager uses when nobody handed it one (e.g. built directly in a test or by
    an embedding application): this process's environment with the default words."""
    return JobEnvironment.capture()
