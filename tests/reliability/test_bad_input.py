"""Bad input fails before any job starts with one clear message naming the key (configs) or the file
(checkpoints, stores). A download with the wrong hash is covered by
tests/data/test_download.py::test_a_wrong_hash_names_the_file_and_both_hashes_and_leaves_nothing."""

from __future__ import annotations

import copy
import math
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
import yaml

from salbench.cli import main
from salbench.config import ConfigError, check_registry_params, load_config, read_config_file, validate_config
from salbench.jobs import saliency
from salbench.models.base import CheckpointError
from salbench.store import StoreError

from .helpers import snakemake
from workflow_runs import TINY  # noqa: E402 (on the path through .helpers)

BASE = yaml.safe_load(TINY.read_text())


def _set(path: str, value):
    """A change that sets the dotted ``path`` (creating mappings on the way) to ``value``."""
    def change(config):
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return change


def _drop(path: str):
    def change(config):
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[key]
        del node[last]
    return change


ROWS = {
    # unknown names
    "method name": (_set("methods.gc", {"method": "grad_cam"}), "methods.gc.method", "gradcam"),
    "metric name": (_set("metrics.del", {"metric": "delete"}), "metrics.del.metric", "deletion"),
    "sanity mode": (_set("sanity.modes", ["cascade"]), "sanity.modes.0", "cascading"),
    "sanity measure": (_set("sanity.measure", "pearson"), "sanity.measure", "spearman_abs"),
    "verdict threshold": (_set("sanity.thresholds", {"model_sensitivty": 0.5}), "sanity.thresholds",
                          "model_sensitivity"),
    "report key": (_set("report.exmaples", 6), "report.exmaples", "examples"),
    "data-set param": (_set("datasets.shapes.params.n_evl", 8), "datasets.shapes.params.n_evl", "n_eval"),
    "train loss": (_set("models.cnn.train.loss", "mse"), "models.cnn.train.loss", "cross_entropy"),
    "grid key": (_set("grid.size", 3), "grid.size", "n_grids"),
    "reference model": (_set("references", [{"metric": "deletion", "method": "gradient", "model": "vgg", "value": 0.1,
                                             "source": "x"}]), "references.0.model", "cnn"),
    # wrong types
    "datasets list": (_set("datasets", []), "datasets", "not of type 'object'"),
    "lr string": (_set("models.cnn.train.lr", "fast"), "models.cnn.train.lr", "not of type 'number'"),
    "grid flag string": (_set("grid.enabled", "yes"), "grid.enabled", "boolean"),
    "items float": (_set("sanity.items", 4.5), "sanity.items", "integer"),
    "method param type": (_set("methods.gradcam.params", {"upsample": 2}), "methods.gradcam.params.upsample",
                          "wrong type"),
    "method entry null": (_set("methods.gradient", None), "methods.gradient", "not of type 'object'"),
    "bootstrap bool": (_set("report.bootstrap", True), "report.bootstrap", "integer"),
    "references mapping": (_set("references", {}), "references", "array"),
    # out of range
    "negative seed": (_set("seed", -1), "seed", "minimum"),
    "zero lr": (_set("models.cnn.train.lr", 0), "models.cnn.train.lr", "less than or equal"),
    "top fraction": (_set("sanity.top_fraction", 1.5), "sanity.top_fraction", "maximum"),
    "grid probability": (_set("grid.min_probability", 1.0), "grid.min_probability", "maximum"),
    "report examples": (_set("report.examples", 100), "report.examples", "maximum"),
    "permuted epochs": (_set("sanity.data_randomisation.epochs", 0), "sanity.data_randomisation.epochs", "minimum"),
    "study name": (_set("study", ""), "study", "does not match"),
    # conflicting options
    "lr_step without step": (_set("models.cnn.train.lr_step", 5), "models.cnn.train.lr_step", "schedule: step"),
    "crop without flip_crop": (_set("models.cnn.train.crop_padding", 4), "models.cnn.train.crop_padding", "flip_crop"),
    "models from an evaluation set": (_set("datasets.copy", {"source": "shapes", "models_from": "shapes_pair"}),
                                      "datasets.copy.models_from", "allowed values: shapes"),
    "grid larger than classes": (_set("grid.n", 3), "grid.n", "6"),
    "shard not whole batches": (_set("datasets.shapes.shard_size", 10), "datasets.shapes.shard_size", "batch_size"),
    "required section": (_drop("metrics"), "(top level)", "'metrics' is a required property"),
    # issue 25: what the workflow used to take (or crash on) while the jobs cannot
    "infinite lr": (_set("models.cnn.train.lr", math.inf), "models.cnn.train.lr", "not a finite number"),
    "nan lr": (_set("models.cnn.train.lr", math.nan), "models.cnn.train.lr", "not a finite number"),
    "empty config": (lambda config: config.clear(), "(top level)", "the config is empty"),
    "integer method id": (lambda config: config["methods"].update({1: {"method": "gradient"}}), "methods.1",
                          "not a string"),
    "negative data-set seed": (_set("datasets.shapes.params.seed", -1), "datasets.shapes.params.seed",
                               "allowed values: integers 0 to 4294967295"),
    "method id ..": (lambda config: config["methods"].update({"..": {"method": "gradient"}}), "methods",
                     "'..' is not allowed"),
}

#: parameter values the registry entries refuse (ranges, choices): caught by the pre-run check
DEEP_ROWS = {
    "method samples": (_set("methods.smoothgrad", {"params": {"n_samples": 0}}), "methods.smoothgrad.params",
                       "n_samples"),
    "metric choice": (_set("metrics.pixel_removal", {"params": {"readout": "logits"}}), "metrics.pixel_removal.params",
                      "readout"),
    "metric range": (_set("metrics.road_morf", {"params": {"percentages": [150]}}), "metrics.road_morf.params",
                     "percentages"),
    "data-set count": (_set("datasets.shapes.params.n_eval", -5), "datasets.shapes.params", "non-negative"),
}


def _bad(change) -> dict:
    config = copy.deepcopy(BASE)
    change(config)
    return config


def _assert_names(message: str, key: str, hint: str) -> None:
    assert "\n" not in message, message
    assert f"config key '{key}" in message and hint in message, message


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
def test_malformed_config_fails_with_one_message_naming_the_key(row):
    change, key, hint = row
    with pytest.raises(ConfigError) as raised:
        validate_config(_bad(change))
    _assert_names(str(raised.value), key, hint)


@pytest.mark.parametrize("row", DEEP_ROWS.values(), ids=DEEP_ROWS.keys())
def test_refused_parameter_values_fail_the_pre_run_check_naming_the_key(row, tmp_path, capsys):
    change, key, hint = row
    config = _bad(change)
    validate_config(config)  # the cheap check (every cluster job) lets it through ...
    with pytest.raises(ConfigError) as raised:  # ... the pre-run check does not
        check_registry_params(config)
    _assert_names(str(raised.value), key, hint)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["check-config", str(path)]) == 2
    assert f"config key '{key}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (None, "does not exist"),
        ("", "the config is empty"),
        ("datasets: [unclosed", "is not valid YAML"),
        (TINY.read_text() + "seed: 1\n", "config key 'seed' is given twice in one mapping (line"),
    ],
    ids=["missing file", "empty file", "malformed yaml", "duplicate key"],
)
def test_config_files_that_cannot_be_read_name_the_file(tmp_path, text, fragment):
    path = tmp_path / "study.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert fragment in message and ("\n" not in message)
    assert str(path) in message or text == ""


def test_yaml_merge_keys_may_be_overridden_without_a_duplicate_key_error(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("a: &base {p: 1, q: 2}\nb:\n  <<: *base\n  q: 3\n")
    assert read_config_file(path) == {"a": {"p": 1, "q": 2}, "b": {"p": 1, "q": 3}}


def test_snakemake_dry_run_refuses_a_bad_config_before_any_job(tmp_path):
    for name, change in {"unknown": ROWS["method name"][0], "conflict": ROWS["lr_step without step"][0]}.items():
        config = tmp_path / f"{name}.yaml"
        config.write_text(yaml.safe_dump(_bad(change)))
        result = snakemake(tmp_path / name, config, "-n")
        assert result.returncode != 0
        assert "salbench: config key '" in result.stderr, result.stderr[-2000:]
        assert "Job stats" not in result.stdout + result.stderr and not (tmp_path / name / "results").exists()


def _names_a_key(message: str) -> None:
    assert "\n" not in message and ": config key '" in message, message


#: issue 25, cases 2 to 7: config files the workflow took (or crashed on) while check-config passed (or not)
FILES = {
    "infinite lr": TINY.read_text().replace("train: {epochs: 1,", "train: {lr: .inf, epochs: 1,"),
    "duplicate key": TINY.read_text() + "seed: 1\n",
    "empty config": "{}\n",
    "integer method id": TINY.read_text().replace("  gradient: {}", "  gradient: {}\n  1: {method: gradient}"),
    "negative data-set seed": TINY.read_text().replace("n_eval: 8, seed: 0", "n_eval: 8, seed: -1"),
    "method id ..": TINY.read_text().replace("  gradient: {}", "  gradient: {}\n  '..': {method: gradient}"),
}


@pytest.mark.slow
def test_snakemake_and_check_config_refuse_the_same_files_with_the_same_line(tmp_path, capsys):
    paths = {}
    for name, text in FILES.items():
        paths[name] = tmp_path / f"{name.replace(' ', '_')}.yaml"
        paths[name].write_text(text)
    with ThreadPoolExecutor(2) as pool:  # a dry run is mostly start-up: two at a time
        runs = dict(zip(FILES, pool.map(lambda name: snakemake(tmp_path / f"w{list(FILES).index(name)}",
                                                                 paths[name], "-n"), FILES)))
    for name, result in runs.items():
        assert main(["check-config", str(paths[name])]) == 2, name
        line = capsys.readouterr().err.strip()
        _names_a_key(line)
        assert result.returncode != 0, (name, result.stdout[-1000:])
        assert line in result.stderr.splitlines(), (name, line, result.stderr[-2000:])
        assert "Traceback" not in result.stderr and "Job stats" not in result.stdout + result.stderr, name


def _image_folder_study(tmp_path, root, grid: bool) -> dict:
    config = copy.deepcopy(BASE)
    config["datasets"]["mine"] = {"source": "image_folder", "params": {"root": str(root), "image_size": 16},
                                  "models_from": "shapes"}
    if not grid:
        del config["grid"]
    return config


def _write_images(root, classes: int) -> None:
    from PIL import Image

    for k in range(classes):
        (root / f"class{k}").mkdir(parents=True)
        Image.new("RGB", (8, 8), (40 * k, 0, 0)).save(root / f"class{k}" / "a.png")


@pytest.mark.parametrize("grid", [True, False], ids=["grid on", "grid off"])
def test_a_missing_image_folder_names_the_data_set_and_its_root_key(tmp_path, capsys, grid):
    config = _image_folder_study(tmp_path, tmp_path / "nowhere", grid)
    validate_config(config)  # the cheap check (every cluster job) does not look at the disk ...
    with pytest.raises(ConfigError) as raised:  # ... the pre-run check does
        check_registry_params(config)
    message = str(raised.value)
    _assert_names(message, "datasets.mine.params.root", str(tmp_path / "nowhere"))
    assert "grid.n" not in message and "data set 'mine'" in message
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["check-config", str(path)]) == 2
    assert capsys.readouterr().err.strip() == f"salbench: {message}"

    check_registry_params(config, fetched=["mine"])  # a data set fetched already does not read its images again

    (tmp_path / "empty").mkdir()  # a folder without class sub-folders holding images
    with pytest.raises(ConfigError, match=r"config key 'datasets.mine.params.root': .* no sub-folder holding images"):
        check_registry_params(_image_folder_study(tmp_path, tmp_path / "empty", grid))


def test_an_image_folder_with_enough_classes_passes_the_grid_check_and_one_with_too_few_names_grid_n(tmp_path):
    _write_images(tmp_path / "four", 4)
    check_registry_params(_image_folder_study(tmp_path, tmp_path / "four", grid=True))  # 2 x 2 grids fit 4 classes
    _write_images(tmp_path / "three", 3)
    with pytest.raises(ConfigError) as raised:
        check_registry_params(_image_folder_study(tmp_path, tmp_path / "three", grid=True))
    _assert_names(str(raised.value), "grid.n", "data set 'mine' has 3")


@pytest.mark.slow
@pytest.mark.parametrize("grid", [True, False], ids=["grid on", "grid off"])
def test_snakemake_run_refuses_a_missing_image_folder_before_any_job(tmp_path, grid):
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(_image_folder_study(tmp_path, tmp_path / "nowhere", grid)))
    result = snakemake(tmp_path / "work", config)
    assert result.returncode != 0
    assert "salbench: config key 'datasets.mine.params.root'" in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "work" / "results").exists() and not (tmp_path / "work" / "resources").exists()


@pytest.mark.slow
def test_snakemake_run_refuses_a_refused_parameter_before_any_job(tmp_path):
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(_bad(DEEP_ROWS["method samples"][0])))
    result = snakemake(tmp_path / "work", config)
    assert result.returncode != 0
    assert "salbench: config key 'methods.smoothgrad.params'" in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "work" / "results").exists() and not (tmp_path / "work" / "resources").exists()


def test_a_corrupted_checkpoint_names_the_file(study, tmp_path):
    bodies = {"truncated.pt": (study / "cnn.pt").read_bytes()[:1000], "garbage.pt": b"not a checkpoint"}
    for name, body in bodies.items():
        (tmp_path / name).write_bytes(body)
        with pytest.raises(CheckpointError, match=f"checkpoint {tmp_path / name} cannot be loaded"):
            saliency("shapes", "cnn", "gradient", "gradient", {}, study / "data.zarr", tmp_path / name, 0, "cpu", 4,
                     tmp_path / "out.zarr")
    torch.save({"arch": "no_such_arch", "num_classes": 6, "state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="foreign.pt cannot be loaded.*no_such_arch"):
        saliency("shapes", "cnn", "gradient", "gradient", {}, study / "data.zarr", tmp_path / "foreign.pt", 0, "cpu", 4,
                 tmp_path / "out.zarr")
    assert not (tmp_path / "out.zarr").exists()


def test_a_truncated_data_store_names_the_file(study, tmp_path):
    import shutil

    data = tmp_path / "data.zarr"
    shutil.copytree(study / "data.zarr", data)
    next(p for p in (data / "target").rglob("*") if p.is_file() and "/c/" in p.as_posix()).unlink()
    with pytest.raises(StoreError, match=rf"store {data} fails its checksum.*chunks missing: target 1 of 1"):
        saliency("shapes", "cnn", "gradient", "gradient", {}, data, study / "cnn.pt", 0, "cpu", 4,
                 tmp_path / "out.zarr")
    assert not (tmp_path / "out.zarr").exists()
