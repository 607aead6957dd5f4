"""`requirements.txt` (the install_requires of setup.py) lists exactly the distributions the
package imports: nothing pulled in for a launcher or a test, nothing imported that a plain
`pip install pulsar-app` would lack.  What only an extra needs (kombu, drmaa, Galaxy's
libraries, the `paster` launcher's Paste, PasteDeploy and PasteScript) belongs to
`extras_require` in setup.py."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def canonical(requirement: str) -> str:
    name = re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements() -> set[str]:
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return {canonical(line) for line in lines if line.strip() and not line.lstrip().startswith("#")}


def extras() -> set[str]:
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "extras_require":
            value: dict[str, list[str]] = ast.literal_eval(node.value)
            return {canonical(requirement) for group in value.values() for requirement in group}
    raise AssertionError("setup.py has no extras_require")


def imported_modules() -> dict[str, str]:
    """Top-level third-party module -> one file of pulsar/ that imports it."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "pulsar").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "pulsar" and top not in sys.stdlib_module_names:
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_requirements_are_exactly_what_the_package_imports() -> None:
    distributions = importlib.metadata.packages_distributions()
    required, optional = requirements(), extras()
    imported: set[str] = set()
    for module, where in imported_modules().items():
        providers = {canonical(name) for name in distributions.get(module, [])}
        assert providers, f"{where} imports {module!r}, which no installed distribution provides"
        assert providers & (required | optional), \
            f"{where} imports {module!r} ({', '.join(sorted(providers))}): not in requirements.txt or an extra"
        imported |= providers
    assert required <= imported, f"requirements.txt lists what pulsar/ never imports: {sorted(required - imported)}"
