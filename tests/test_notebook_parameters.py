"""Every notebook parameter is used: each name its cell tagged ``parameters`` assigns is read by
a later cell of the same notebook, and every parameter a profile sets for a notebook is one the
notebook declares (a profile key nobody declares would be dropped without a word). That the
parameters reach the stages after them is tests/test_notebooks.py's
``test_notebook_02_parameters_reach_training_and_evaluation``."""

from __future__ import annotations

import ast
import json

import pytest
import yaml

from wav2kp import config

NOTEBOOKS = sorted(config.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


def _cells(path) -> tuple[str, list[str]]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    tagged = [i for i, c in enumerate(code) if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: one cell tagged 'parameters', found {len(tagged)}"
    i = tagged[0]
    return "".join(code[i]["source"]), ["".join(c["source"]) for c in code[i + 1 :]]


def _assigned(source: str) -> list[str]:
    names = []
    for node in ast.parse(source).body:
        assert isinstance(node, ast.Assign), f"the parameters cell holds plain assignments: {node}"
        names += [t.id for t in node.targets if isinstance(t, ast.Name)]
    return names


def _read(sources: list[str]) -> set[str]:
    out = set()
    for src in sources:
        lines = [ln for ln in src.splitlines() if not ln.lstrip().startswith(("%", "!"))]
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                out.add(node.id)
    return out


def declared() -> dict[str, list[str]]:
    return {p.name[:2]: _assigned(_cells(p)[0]) for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_parameter_is_read_by_a_later_cell(path) -> None:
    params, later = _cells(path)
    names = _assigned(params)
    assert names, f"{path.name} has no parameters"
    unused = [n for n in names if n not in _read(later)]
    assert not unused, f"{path.name}: parameters no cell reads: {unused}"


def test_the_profiles_set_only_declared_parameters() -> None:
    names = declared()
    everything = {n for ns in names.values() for n in ns}
    for profile in config.available_profiles():
        data = yaml.safe_load((config.CONFIGS_DIR / f"{profile}.yaml").read_text()) or {}
        for key in data.get("common") or {}:
            assert key in everything, f"{profile}: common parameter {key!r} no notebook declares"
        for nb, params in (data.get("notebooks") or {}).items():
            for key in params or {}:
                assert key in names[str(nb)], f"{profile}: notebook {nb} declares no {key!r}"


def test_what_each_notebook_takes() -> None:
    """The parameters, listed: notebook 02's are the feature sets' spec (03 and 04 read them
    from its record, so they declare none of them), 04 reads notebook 03's models and
    training settings from its record (no models, epochs or hidden of its own)."""
    names = declared()
    spec = {"mfcc_preset", "n_mfcc", "win_ms", "hop_ms", "deltas", "alignment", "targets"}
    spec |= {"pca_variance", "normalization"}
    assert spec <= set(names["02"])
    assert not spec & (set(names["03"]) | set(names["04"]))
    assert {"past_ms", "future_ms"} & set(names["02"]) == set()  # the context is notebook 03's
    assert {"models", "epochs", "hidden"} <= set(names["03"])
    assert not {"models", "epochs", "hidden"} & set(names["04"])
