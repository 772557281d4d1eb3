"""The layout holds: each operation lives in the home of its family, the layers import only
downwards (faces -> operations -> engine, store, drivers), and no module imports itself back
through others."""

from __future__ import annotations

import ast
from pathlib import Path

from launchbay.operations import CATALOG, HOMES

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """The launchbay modules `path` imports, at the top or inside functions
    (`from package import module` counts as the module)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in MODULES else node.module)
    return {m for m in out if m in MODULES}


GRAPH = {name: _imports(path) - {name} for name, path in MODULES.items()}


def test_every_operation_lives_in_the_home_of_its_family():
    assert len(CATALOG) > 150
    for key, op in CATALOG.items():
        prefix = max((p for p in HOMES if key == p or key.startswith(p + ".")), key=len,
                     default=None)
        assert prefix is not None, f"{key}: no home in operations.HOMES"
        home = f"launchbay.operations.{HOMES[prefix]}"
        module = op.handler.__module__
        assert module == home or module.startswith(home + "."), (key, module, home)


def test_no_module_imports_itself_back():
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = path[path.index(name):] + [name]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        for imported in sorted(GRAPH[name]):
            visit(imported, [*path, name])
        done.add(name)

    for name in sorted(GRAPH):
        visit(name, [])


def test_layers_import_only_downwards():
    def reaches(prefix: str, forbidden: tuple[str, ...]) -> list[tuple[str, str]]:
        return [(name, imported) for name, imports in GRAPH.items()
                if name.startswith(prefix) for imported in imports
                if imported.startswith(forbidden)]

    # Drivers (Docker, Caddy, git, DNS, TLS, OIDC...) know nothing of launchbay's model.
    assert not reaches("launchbay.drivers", (
        "launchbay.http", "launchbay.operations", "launchbay.engine", "launchbay.store",
        "launchbay.control_plane", "launchbay.cli"))
    # A face never touches the store: it runs operations.
    assert not reaches("launchbay.http", ("launchbay.store",))
    # The engine acts on the store and the runtime, never through operations or faces.
    assert not reaches("launchbay.engine", ("launchbay.operations", "launchbay.http"))
    assert not reaches("launchbay.operations", ("launchbay.http", "launchbay.cli"))
    # Everything runs containers through the Runtime interface (engine/runtime), never
    # through the Docker driver: remote and Swarm runtimes slot in behind it (the engine of a
    # server over SSH, or a Swarm manager, is the same driver through a tunnel).
    assert {name for name, imports in GRAPH.items()
            if "launchbay.drivers.docker_engine" in imports} == {
        "launchbay.engine.runtime", "launchbay.drivers.remote_docker",
        "launchbay.drivers.swarm"}
    assert not reaches("launchbay.store", ("launchbay.operations", "launchbay.http",
                                           "launchbay.engine"))
    # The CLI talks to the API over HTTP (serve and db commands start the server); it reads
    # a folder with the pure runtime detection to tell its port.
    assert [imported for _, imported in reaches(
        "launchbay.cli", ("launchbay.operations", "launchbay.engine"))] == [
        "launchbay.engine.build.runtime_detection"]
