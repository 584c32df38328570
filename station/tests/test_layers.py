"""The layers (docs/architecture.md, "Layering"): what may import what, read from the source itself."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("recorders", "playout", "ingest")
# The composition root: the one part of station that may import every app. Every other module of
# station (models, errors, locks, events, signals, admin and API bases, migrations, …) is the kernel.
COMPOSITION = {
    "station/apps.py", "station/settings.py", "station/urls.py", "station/api/urls.py", "station/asgi.py",
    "station/routing.py", "station/consumers.py", "station/views.py", "station/dashboard.py", "station/agent.py",
    "station/launcher.py", "station/demo.py", "station/management/commands/run_node.py",
    "station/management/commands/run_station.py", "station/management/commands/seed_demo.py",
}


def _modules(package: str) -> list[Path]:
    """The package's source files, its tests left out (they exercise the whole project)."""
    return sorted(path for path in (ROOT / package).rglob("*.py") if "tests" not in path.relative_to(ROOT).parts)


def _dotted(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or in a function (``from a import b``: ``a`` and ``a.b``)."""
    package = path.relative_to(ROOT).parent.parts
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parent = package[:len(package) + 1 - node.level] if node.level else ()
            module = ".".join(part for part in [*parent, node.module] if part)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _offences(paths: list[Path], forbidden) -> dict[str, list[str]]:
    found = {str(path.relative_to(ROOT)): sorted(name for name in _imports(path) if forbidden(name)) for path in paths}
    return {path: names for path, names in found.items() if names}


def _of(*packages: str):
    return lambda name: name.split(".")[0] in packages


def _kernel() -> list[Path]:
    return [path for path in _modules("station") if str(path.relative_to(ROOT)) not in COMPOSITION]


def test_the_kernel_imports_no_app():
    assert _offences(_kernel(), _of(*APPS)) == {}


def test_only_the_composition_root_imports_itself():
    composition = {_dotted(ROOT / path) for path in COMPOSITION}
    assert _offences(_kernel() + [path for app in APPS for path in _modules(app)], composition.__contains__) == {}


def test_ingest_imports_neither_recorders_nor_playout():
    assert _offences(_modules("ingest"), _of("recorders", "playout")) == {}


def test_recorders_and_playout_import_each_other_not():
    assert _offences(_modules("recorders"), _of("playout")) == {}
    assert _offences(_modules("playout"), _of("recorders")) == {}


def test_the_declared_composition_is_there():
    assert sorted(path for path in COMPOSITION if not (ROOT / path).is_file()) == []
