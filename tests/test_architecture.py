"""The layering rules of DESIGN.md and CONVENTIONS.md, checked on every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "digest"
MODULES = sorted(PACKAGE.rglob("*.py"))

# Third-party libraries and the only modules that may import them.
HOMES = {
    "typer": {"cli"},
    "rich": {"cli"},
    "starlette": {"web"},
    "uvicorn": {"web", "cli"},
    "aiosmtplib": {"send"},
    "jinja2": {"render", "pages"},
    "premailer": {"render"},
    "sqlite_utils": {"store"},
    "sqlite3": {"store"},
    "feedparser": {"sources"},
    "httpx": {"sources", "collect"},
    "itsdangerous": {"tokens"},
    "email_validator": {"subscribers"},
}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def owner(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_imports_follow_the_layering(path: Path) -> None:
    me = owner(module_name(path))
    for name in imports(path):
        top = name.split(".")[0]
        if top in HOMES:
            assert me in HOMES[top], f"{module_name(path)} imports {top}; only {HOMES[top]} may"
        if top == "digest" and me not in ("cli", "__main__") and owner(name) != me:
            assert owner(name) not in ("cli", "web"), f"{module_name(path)} imports {name}"
        if me == "models":
            assert top != "digest" or name == "digest", "models imports nothing of the project"


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_only_config_reads_the_environment_and_the_core_never_prints(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    me = owner(module_name(path))
    if me != "config":
        assert "os.environ" not in source and "getenv" not in source
    if me not in ("cli", "__main__"):
        tree = ast.parse(source)
        calls = {
            n.func.id
            for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        }
        assert "print" not in calls, f"{module_name(path)} prints"
        assert "sys.exit" not in source


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_no_sql_outside_the_store(path: Path) -> None:
    if owner(module_name(path)) == "store":
        return
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert node.func.attr not in ("execute", "executemany", "query"), (
                f"{module_name(path)}:{node.lineno} runs SQL; put it in digest/store/"
            )
