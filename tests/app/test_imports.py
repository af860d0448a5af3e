"""Import directions: only ``biocircuits/__main__.py`` reaches into the commands' wing, and the dataset and model
registries never import the config package (config imports them to validate names)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "biocircuits"


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            names |= {module} | {f"{module}.{alias.name}" for alias in node.names}
    return names


def importers(target: str, paths: list[Path]) -> list[str]:
    return [str(p.relative_to(PACKAGE.parent)) for p in paths
            if any(m == target or m.startswith(target + ".") for m in imported_modules(p))]


def test_only_main_imports_the_app():
    outside = [p for p in PACKAGE.rglob("*.py") if "app" not in p.relative_to(PACKAGE).parts]
    assert importers("biocircuits.app", outside) == ["biocircuits/__main__.py"]


def test_data_and_models_do_not_import_config():
    paths = [*(PACKAGE / "data").rglob("*.py"), *(PACKAGE / "models").rglob("*.py")]
    assert importers("biocircuits.config", paths) == []
