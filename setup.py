"""Packaging for the `pulsar-app` distribution.

Metadata lives here (not in pyproject.toml) so the version can be read from
`pulsar/__init__.py` without importing the package; pyproject.toml holds tool settings.
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent


def read_version() -> str:
    text = (HERE / "pulsar" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__\s*=\s*"([^"]+)"', text, re.MULTILINE)
    if match is None:
        raise RuntimeError("no __version__ in pulsar/__init__.py")
    return match.group(1)


def read_requirements(name: str) -> list[str]:
    lines = (HERE / name).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


setup(
    name="pulsar-app",
    version=read_version(),
    description="Run Galaxy jobs on a remote machine that shares no file system with Galaxy",
    long_description=(HERE / "README.rst").read_text(encoding="utf-8"),
    long_description_content_type="text/x-rst",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["pulsar", "pulsar.*"]),
    package_data={"pulsar": ["py.typed"]},
    include_package_data=True,
    zip_safe=False,
    install_requires=read_requirements("requirements.txt"),
    extras_require={
        "drmaa": ["drmaa"],
        "amqp": ["kombu"],
        # `paster serve server.ini`: PasteScript's launcher, PasteDeploy's INI loading (also what
        # `gunicorn --paste` uses) and Paste's own httpserver for `use = egg:Paste#http`.  The
        # package imports none of them; it only offers the entry points they look up.
        "paster": ["pastescript", "pastedeploy", "paste"],
        # Galaxy's job-metrics plugins instrument the job script (pulsar/jobs/metrics.py).
        "metrics": ["galaxy-job-metrics"],
        # Galaxy's tool dependency resolvers (pulsar/jobs/dependencies.py).
        "deps": ["galaxy-tool-util"],
        # JWT verification for the oidc plugin of user_auth (pulsar/jobs/oidc.py).
        "oidc": ["pyjwt[crypto]"],
    },
    entry_points={
        "console_scripts": [
            "pulsar=pulsar.main:main",
            "pulsar-main=pulsar.main:main_webless",
            "pulsar-config=pulsar.scripts.config:main",
            "pulsar-check=pulsar.scripts.check:main",
            "pulsar-drmaa-launch=pulsar.scripts.drmaa_launch:main",
            "pulsar-drmaa-kill=pulsar.scripts.drmaa_kill:main",
            "pulsar-chown-working-directory=pulsar.scripts.chown_working_directory:main",
        ],
        # for INI files that say `use = egg:pulsar-app` instead of naming the callables
        "paste.app_factory": ["main = pulsar.web.wsgi:app_factory"],
        "paste.server_runner": ["main = pulsar.web.server:server_runner"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Operating System :: POSIX",
        "Topic :: Scientific/Engineering :: Bio-Informatics",
    ],
)
