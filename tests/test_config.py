"""Config validation: defaults filled, and one clear message naming the key for each mistake."""

import copy
from pathlib import Path

import pytest
import yaml

from salbench.config import ConfigError, load_config, validate_config

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
