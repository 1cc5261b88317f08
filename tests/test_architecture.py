"""One owner per concept: the vocabulary, the run directory's file names, the layering.

Read from the source with ``ast``, so a second spelling of a concept fails here instead
of drifting silently.
"""

from __future__ import annotations

import ast
from pathlib import Path

import caalib

PACKAGE = Path(caalib.__file__).resolve().parent
SOURCES = sorted(PACKAGE.rglob("*.py"))

#: The model vocabulary: defined (as a literal) in caalib/spec.py only.
VOCABULARY = {
    "TOPOLOGIES", "POOLINGS", "STRATEGIES", "PAPER_POOLINGS", "VALID_POOLINGS",
    "COND_LAYERS", "CONDITIONED_STRATEGIES", "ATTENTION_VARIANTS", "ATTENTION_POOLINGS",
    "ATTENTION_MODES", "NETWORKS", "LAYERS", "POOLINGS_OF", "CONDITIONED",
    "UNSEEN_SOURCE_POLICIES", "AUGMENTATIONS",
}
RUN_FILES = {"config.json", "metrics.json", "history.csv", "predictions.csv",
             "attention.npz"}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def test_the_model_vocabulary_is_spelled_once():
    literal = (ast.Tuple, ast.List, ast.Dict, ast.Set)
    where = []
    for path in SOURCES:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = {t.id for t in targets if isinstance(t, ast.Name)}
                if names & VOCABULARY and isinstance(node.value, literal):
                    where.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert where and all(w.startswith("spec.py:") for w in where), where


def test_run_directory_file_names_are_spelled_in_rundir_only():
    where = []
    for path in SOURCES:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Constant) and node.value in RUN_FILES:
                where.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert where and all(w.startswith("rundir.py:") for w in where), where


def test_results_and_stats_never_import_training():
    bad = []
    for path in [*(PACKAGE / "results").glob("*.py"), PACKAGE / "stats.py",
                 PACKAGE / "rundir.py", PACKAGE / "spec.py"]:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ImportFrom) and node.module and "training" in node.module:
                bad.append(f"{path.name}:{node.lineno}")
    assert not bad, bad


def test_spec_is_the_one_validator():
    import pytest

    from caalib.errors import ConfigError
    from caalib.models import ModelConfigError, build_model
    from caalib.rundir import RunStoreError  # noqa: F401 - same rule, checked in test_rundir
    from caalib.spec import ModelSpec, ModelSpecError
    from caalib.training import TrainConfig

    # cond_layer for an unconditioned strategy: an error everywhere, never ignored
    with pytest.raises(ModelSpecError, match="cond_layer"):
        ModelSpec("atrous", "att", "joint", 2)
    with pytest.raises(ModelConfigError, match="cond_layer"):
        build_model("atrous", "att", "joint", 2)
    with pytest.raises(ConfigError, match="cond_layer"):
        TrainConfig.from_profile("tiny", strategy="joint", cond_layer=2)
    spec = TrainConfig.from_profile("tiny", strategy="multi_task", cond_layer=3).model_spec
    assert spec == ModelSpec("atrous", "att", "multi_task", 3, "released")


def test_no_config_field_named_device():
    """The recording device is ``train_source``, the torch device ``accelerator``: no
    TrainConfig field (so no config.json field) is called ``device`` or ``train_device``."""
    from dataclasses import fields

    from caalib.models.net import ModelOutput
    from caalib.training import TrainConfig
    from caalib.training.data import Split

    names = {f.name for f in fields(TrainConfig)}
    assert not names & {"device", "train_device"}, names
    assert {"train_source", "accelerator"} <= names
    assert "device" not in {f.name for f in fields(ModelOutput)}
    assert "device" not in {f.name for f in fields(Split)}


def _module_graph() -> dict[str, set[str]]:
    """caalib's import graph from the source: every import, lazy ones in functions too;
    ``from . import sub`` counts as an edge to the submodule, not to the package."""
    mods = {}
    for path in SOURCES:
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path

    def resolve(mod: str, node: ast.ImportFrom) -> str:
        if node.level == 0:
            return node.module or ""
        base = mod.split(".")
        if mods[mod].name != "__init__.py":
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        for node in ast.walk(_tree(path)):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = resolve(mod, node)
                subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in mods]
                targets += subs
                if len(subs) < len(node.names):
                    targets.append(base)
            elif isinstance(node, ast.Import):
                targets += [a.name for a in node.names]
            for target in targets:
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target and target != mod:
                    graph[mod].add(target)
    return graph


def test_no_import_cycle_lazy_imports_counted():
    graph = _module_graph()
    state: dict[str, int] = {}  # 1 visiting, 2 done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not cycles, cycles[:3]
