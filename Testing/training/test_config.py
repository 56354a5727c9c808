"""Typed YAML configs with command-line overrides."""
from __future__ import annotations

from pathlib import Path

import pytest

from Training.config import Config, load_config, save_config

CONFIGS = Path(__file__).resolve().parents[2] / "Training" / "configs"


@pytest.mark.parametrize("name", ["liver", "tumor"])
def test_shipped_configs_load_into_typed_dataclasses(name: str) -> None:
    cfg = load_config(CONFIGS / f"{name}.yaml")
    assert isinstance(cfg, Config) and cfg.stage.stage == name
    assert isinstance(cfg.stage.spacing, tuple) and all(isinstance(s, float) for s in cfg.stage.spacing)
    assert all(p % 2**cfg.network.depth == 0 for p in cfg.stage.patch_size + cfg.stage.train_patch_size)


def test_overrides_reach_nested_fields_with_their_types() -> None:
    cfg = load_config(CONFIGS / "liver.yaml", ["train.epochs=3", "optim.lr=3e-4", "stage.spacing=[2.5,2.5,2.5]",
                                               "data.val_cases=[chaos_ct3]", "network.residual=false"])
    assert cfg.train.epochs == 3 and cfg.optim.lr == pytest.approx(3e-4)
    assert cfg.stage.spacing == (2.5, 2.5, 2.5) and cfg.data.val_cases == ["chaos_ct3"]
    assert cfg.network.residual is False


@pytest.mark.parametrize("bad", ["train.epochz=3", "train.epochs=2.5", "network.residual=maybe", "stage.spacing=[1,2]", "noequals"])
def test_bad_overrides_are_rejected_with_a_message(bad: str) -> None:
    with pytest.raises(ValueError):
        load_config(CONFIGS / "liver.yaml", [bad])


def test_saved_config_reloads_identically(tmp_path: Path) -> None:
    cfg = load_config(CONFIGS / "tumor.yaml", ["synthetic.max_tumors=5"])
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg


def test_liver_configs_carry_the_midline_gate_into_the_manifest_and_tumor_ones_do_not() -> None:
    from Training.stage import stage_manifest

    for name, gate in (("liver", 0.65), ("liver_student", 0.65), ("tumor", 0.0)):
        cfg = load_config(CONFIGS / f"{name}.yaml")
        assert stage_manifest(cfg.stage).min_right_fraction == gate, name
    off = load_config(CONFIGS / "liver.yaml", ["stage.min_right_fraction=0"])
    assert stage_manifest(off.stage).min_right_fraction == 0.0
