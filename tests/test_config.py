"""Config validation: defaults filled, and one clear message naming the key for each mistake."""

import copy
import datetime
import json
import math
from pathlib import Path

import pytest
import yaml

from salbench.config import ConfigError, load_config, validate_config, workflow_config

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def _with(change) -> dict:
    config = copy.deepcopy(DEFAULT)
    change(config)
    return config


def test_default_config_is_valid_and_filled():
    config = load_config(ROOT / "config" / "config.yaml")
    assert config["methods"]["gradcam"]["method"] == "gradcam"
    assert config["methods"]["gradcam"]["params"] == {}
    assert config["report"]["bootstrap"] == 1000
    assert config["models"]["cnn"]["train"]["epochs"] == 12
    minimal = {"datasets": {"shapes": {"source": "shapes"}}, "models": {"m": {"arch": "small_cnn"}},
               "methods": {"gradient": {}}, "metrics": {"pointing_game": {}}}
    assert validate_config(minimal)["models"]["m"]["train"]["weight_decay"] == 0.0001


def test_input_is_not_modified():
    config = copy.deepcopy(DEFAULT)
    validate_config(config)
    assert config == DEFAULT


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c["methods"].update(gradcamm={}), ["methods.gradcamm.method", "'gradcamm'", "allowed values", "gradcam"]),
        (lambda c: c["metrics"].update(pointing={}), ["metrics.pointing.metric", "pointing_game"]),
        (lambda c: c["models"]["cnn"].update(arch="vgg99"), ["models.cnn.arch", "small_cnn"]),
        (lambda c: c["datasets"]["shapes"].update(source="cifar"), ["datasets.shapes.source", "shapes"]),
        (lambda c: c.update(devcie="cpu"), ["'devcie' is not allowed", "allowed keys", "device"]),
        (lambda c: c.update(device="tpu"), ["'device'", "'tpu'", "auto, cpu, cuda"]),
        (lambda c: c.update(seed="zero"), ["'seed'", "'zero'"]),
        (lambda c: c.update(batch_size=0), ["'batch_size'"]),
        (lambda c: c["models"]["cnn"]["train"].update(epochs=2.5), ["models.cnn.train.epochs"]),
        (lambda c: c["models"]["cnn"]["train"].update(momentum=0.9), ["models.cnn.train.momentum", "allowed keys"]),
        (lambda c: c["methods"]["gradcam"].update(params={"layr": "x"}), ["methods.gradcam.params.layr", "allowed keys"]),
        (lambda c: c["metrics"]["deletion"].update(params={"steps": "many"}), ["metrics.deletion.params.steps", "wrong type"]),
        (lambda c: c["datasets"]["shapes_pair"].update(models_from="nowhere"), ["models_from", "'nowhere'", "shapes"]),
        (lambda c: c.pop("methods"), ["'methods' is a required property"]),
        (lambda c: c["methods"].update({"bad/name": {}}), ["methods", "bad/name"]),
        (lambda c: c.update(study="my study"), ["'study'"]),
        (lambda c: c.update(references=[{"metric": "pointing_gam", "method": "gradcam", "value": 0.9, "source": "x"}]),
         ["references.0.metric", "'pointing_gam'", "pointing_game"]),
        (lambda c: c.update(references=[{"metric": "grid_localisation_2x2", "method": "gradcan", "value": 0.9,
                                         "source": "x"}]), ["references.0.method", "gradcam"]),
        (lambda c: c["models"]["cnn"].update(permuted_train={"momentum": 0.9}), ["models.cnn.permuted_train.momentum"]),
        (lambda c: c["methods"]["gradcam"].update(models=["cnn", "vgg"]), ["methods.gradcam.models", "'vgg'",
                                                                            "allowed values", "cnn, coda, resnet"]),
        (lambda c: c["methods"]["gradcam"].update(models=[]), ["methods.gradcam.models"]),
        (lambda c: c["datasets"]["shapes_pair"].update(models=["cnn", "rsnet"]), ["datasets.shapes_pair.models", "'rsnet'"]),
        (lambda c: c["datasets"]["shapes"].update(methods=["gradcm"]), ["datasets.shapes.methods", "'gradcm'", "gradcam"]),
    ],
)
def test_bad_config_names_the_key(change, expected):
    with pytest.raises(ConfigError) as info:
        validate_config(_with(change))
    message = str(info.value)
    assert "\n" not in message
    for fragment in expected:
        assert fragment in message, message


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_catalog_matches_live_registries():
    from salbench.catalog import render_catalog
    from salbench.config import CATALOG_PATH

    assert CATALOG_PATH.read_text() == render_catalog(), "run `salbench catalog --write` after changing a registry"


def test_source_hash_follows_imports_of_one_method_only():
    from salbench.config import source_closure, source_hash

    closure = source_closure("methods/gradient.py")
    assert {"methods/gradient.py", "methods/base.py", "params.py"} <= closure
    assert "methods/cam.py" not in closure
    # nor, through a lazy import of the config's error class, the config module and every registry with it
    assert not {f for f in closure if f == "config.py" or f.startswith(("data/shapes", "metrics/", "sanity/"))}
    assert source_hash(["methods/gradient.py"]) != source_hash(["methods/cam.py"])
    assert source_hash(["methods/gradient.py"]) == source_hash(["methods/gradient.py"])
    # a parenthesised import list over several lines, with a comment, is followed too
    assert {"methods/cam.py", "methods/gradient.py", "methods/variants.py"} <= source_closure("methods/__init__.py")


def _set_in(path: tuple, value):
    """A change that sets the config entry at ``path`` (keys of nested mappings, created on the way)."""
    def change(config):
        node = config
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return change


@pytest.mark.parametrize(
    ("change", "key", "hint"),
    [
        # non-finite numbers: JSON Schema's `number` (and the parameters' type check) let .inf and .nan through
        (_set_in(("models", "cnn", "train", "lr"), math.inf), "models.cnn.train.lr", "inf is not a finite number"),
        (_set_in(("models", "cnn", "train", "lr"), math.nan), "models.cnn.train.lr", "nan is not a finite number"),
        (_set_in(("methods", "centre", "params", "sigma"), -math.inf), "methods.centre.params.sigma", "finite"),
        (_set_in(("sanity", "thresholds", "model_sensitivity"), math.nan), "sanity.thresholds.model_sensitivity",
         "finite"),
        (_set_in(("sanity", "measures"), [math.inf]), "sanity.measures.0", "finite"),
        # names that are not strings: YAML reads `1:`, `yes:` and `~:` as an int, a bool and null
        (_set_in(("methods", 1), {"method": "gradient"}), "methods.1", "not a string"),
        (_set_in(("datasets", True), {"source": "shapes"}), "datasets.True", "not a string"),
        (_set_in(("metrics", "deletion", "params", 4), 1), "metrics.deletion.params.4", "not a string"),
        (_set_in((None,), 1), "None", "not a string"),
        # values YAML reads as something no JSON document holds (a date)
        (_set_in(("study",), datetime.date(2024, 1, 2)), "study", "quote it"),
        # seeds: non-negative 32-bit integers everywhere
        (_set_in(("datasets", "shapes", "params", "seed"), -1), "datasets.shapes.params.seed", "0 to 4294967295"),
        (_set_in(("datasets", "shapes", "params", "seed"), 2**32), "datasets.shapes.params.seed", "0 to 4294967295"),
        (_set_in(("methods", "rise", "params", "seed"), -3), "methods.rise.params.seed", "0 to 4294967295"),
        (_set_in(("metrics", "max_sensitivity", "params", "seed"), -1), "metrics.max_sensitivity.params.seed",
         "0 to 4294967295"),
        (_set_in(("seed",), 2**32), "seed", "maximum"),
        (_set_in(("grid", "seed"), 2**40), "grid.seed", "maximum"),
        (_set_in(("layerwise", "seed"), -1), "layerwise.seed", "minimum"),
        # names that are not safe file names (they become path parts and command-line values)
        (_set_in(("methods", "."), {"method": "gradient"}), "methods", "'.' is not allowed"),
        (_set_in(("methods", ".."), {"method": "gradient"}), "methods", "'..' is not allowed"),
        (_set_in(("methods", "-x"), {"method": "gradient"}), "methods", "not starting with"),
        (_set_in(("methods", ".hidden"), {"method": "gradient"}), "methods", "not starting with"),
        (_set_in(("metrics", ".."), {"metric": "deletion"}), "metrics", "'..' is not allowed"),
        (_set_in(("models", "m" * 101), {"arch": "small_cnn"}), "models", "at most 100"),
        (_set_in(("methods", "Gradient"), {"method": "gradient"}), "methods", "differ only in case"),
        # a whole-number float where the schema says integer would reach range() and friends as a float
        (_set_in(("models", "cnn", "train", "epochs"), 2.0), "models.cnn.train.epochs", "integer"),
    ],
)
def test_values_and_names_the_jobs_cannot_take_are_refused_naming_the_key(change, key, hint):
    with pytest.raises(ConfigError) as info:
        validate_config(_with(change))
    message = str(info.value)
    assert "\n" not in message and f"config key '{key}'" in message and hint in message, message


@pytest.mark.parametrize(("document", "hint"), [({}, "the config is empty"), ([], "mapping"), ("demo", "mapping"),
                                                (None, "mapping")])
def test_an_empty_or_non_mapping_config_is_refused(document, hint):
    with pytest.raises(ConfigError) as info:
        validate_config(document)
    message = str(info.value)
    assert message.startswith("config key '(top level)'") and hint in message and "\n" not in message, message


def test_empty_config_file_is_refused_not_replaced_by_the_default(tmp_path):
    for text in ("", "{}\n", "# nothing\n"):
        (tmp_path / "empty.yaml").write_text(text)
        with pytest.raises(ConfigError, match="the config is empty"):
            load_config(tmp_path / "empty.yaml")


def test_safe_names_and_large_valid_seeds_are_accepted():
    config = _with(_set_in(("methods", "gradient@captum"), {"method": "gradient"}))
    config["methods"]["a.b-c_d"] = {"method": "gradient"}
    config["datasets"]["shapes"]["params"]["seed"] = 2**32 - 1
    config["seed"] = 2**32 - 1
    validated = validate_config(config)
    assert {"gradient@captum", "a.b-c_d"} <= set(validated["methods"])


def test_json_config_files_are_read_as_snakemake_reads_them_but_refuse_repeated_keys_and_nan(tmp_path):
    path = tmp_path / "study.json"
    path.write_text(json.dumps(DEFAULT, indent="\t"))  # tab-indented JSON, which YAML cannot read
    assert load_config(path)["study"] == DEFAULT["study"]
    path.write_text('{"seed": 1, "seed": 2}')
    with pytest.raises(ConfigError, match=r"config key 'seed' is given twice"):
        load_config(path)
    path.write_text(json.dumps({**DEFAULT, "seed": 0}).replace('"seed": 0', '"seed": NaN', 1))
    with pytest.raises(ConfigError, match=r"config key 'seed': nan is not a finite number"):
        load_config(path)


def test_the_workflow_config_is_the_default_only_without_a_config_file(tmp_path):
    default = ROOT / "config" / "config.yaml"
    assert workflow_config({}, [], default)["study"] == DEFAULT["study"]
    (tmp_path / "empty.yaml").write_text("{}\n")
    with pytest.raises(ConfigError, match="the config is empty"):  # Snakemake read it as {}
        workflow_config({}, [tmp_path / "empty.yaml"], default)
    (tmp_path / "twice.yaml").write_text((ROOT / "config" / "config.yaml").read_text() + "seed: 3\n")
    with pytest.raises(ConfigError, match=r"twice.yaml: config key 'seed' is given twice"):  # Snakemake kept seed: 3
        workflow_config({**DEFAULT, "seed": 3}, [tmp_path / "twice.yaml"], default)
