"""The Python API: its maps, scores, sanity tables and verdicts equal the workflow jobs' for the same items."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest
import torch

import salbench
from salbench import api
from salbench.jobs import fetch_dataset, metric_info, prepare_dataset, saliency, sanity, score
from salbench.models import build_model, load_checkpoint, save_checkpoint
from salbench.report.sanity import verdict_table
from salbench.report.tables import summarise
from salbench.sanity.checks import list_checks
from salbench.store import open_store, read_table

SHAPES = {"image_size": 16, "n_train": 0, "n_val": 0, "n_eval": 4, "seed": 0}
METHODS = {"gradient": {"method": "gradient", "params": {}},
           "gradcam": {"method": "gradcam", "params": {}},
           "sg": {"method": "smoothgrad", "params": {"n_samples": 3}}}
METRICS = {"deletion": {"metric": "deletion", "params": {"steps": 4}},
           "pointing_game": {"metric": "pointing_game", "params": {}},
           "max_sensitivity": {"metric": "max_sensitivity", "params": {"n_samples": 2}},
           "sparseness": {"metric": "sparseness", "params": {}}}
SANITY = {"items": 2, "modes": ["cascading"], "measures": ["spearman_abs"], "figure_items": 1}
SEED, BATCH = 7, 2
#: the methods the sanity checks run for
CHECKED = ["gradcam"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A tiny data store, a checkpoint and a permuted-label one, every job's output for them, and the API's."""
    root = tmp_path_factory.mktemp("api")
    fetch_dataset("shapes", SHAPES, root / "raw")
    prepare_dataset("shapes", "shapes", SHAPES, root / "raw", root / "data.zarr")
    for name, seed in (("cnn", 0), ("permuted", 1)):
        torch.manual_seed(seed)
        save_checkpoint(build_model("small_cnn", 6).eval(), root / f"{name}.pt", {"num_classes": 6})
    for method_id, spec in METHODS.items():
        saliency("shapes", "cnn", method_id, spec["method"], spec["params"], root / "data.zarr", root / "cnn.pt", SEED,
                 "cpu", BATCH, root / f"{method_id}.zarr")
        score("shapes", "cnn", method_id, METRICS, root / "data.zarr", root / "cnn.pt", root / f"{method_id}.zarr",
              "cpu", BATCH, root / f"{method_id}.parquet", method_name=spec["method"], method_params=spec["params"],
              seed=SEED, curves_out=root / f"{method_id}.curves.parquet")
    for method_id in CHECKED:
        sanity("shapes", "cnn", method_id, METHODS[method_id]["method"], METHODS[method_id]["params"],
               root / "data.zarr", root / "cnn.pt", SANITY, SEED, "cpu", BATCH, root / f"{method_id}.sanity.parquet",
               permuted_checkpoint=root / "permuted.pt")
    data = open_store(root / "data.zarr").load()
    inputs = (root / "cnn.pt", data["image"].values, data["target"].values, data["mask"].values)
    settings = {"seed": SEED, "device": "cpu", "batch_size": BATCH, "items": data["item"].values, "dataset": "shapes",
                "model_name": "cnn"}
    result = salbench.evaluate(*inputs, methods=METHODS, metrics=METRICS, **settings)
    checked = salbench.evaluate(*inputs, methods={m: METHODS[m] for m in CHECKED},
                                checks=list_checks(applies_to="single_object"), sanity=SANITY,
                                permuted=root / "permuted.pt", **settings)
    return root, data, result, checked


def _jobs_table(root, suffix: str, methods=METHODS) -> pd.DataFrame:
    return pd.concat([read_table(root / f"{m}{suffix}.parquet") for m in methods], ignore_index=True)


def assert_same(api_table: pd.DataFrame, jobs_table: pd.DataFrame) -> None:
    """Exactly equal, text columns compared as object (pandas infers a string dtype for some, parquet for others)."""
    def text_as_object(table: pd.DataFrame) -> pd.DataFrame:
        return table.astype({c: object for c, dtype in table.dtypes.items() if isinstance(dtype, pd.StringDtype)})

    pd.testing.assert_frame_equal(text_as_object(api_table), text_as_object(jobs_table), check_exact=True)


def test_maps_equal_the_saliency_jobs_bitwise(study):
    root, _, result, _ = study
    for method_id, spec in METHODS.items():
        stored, maps = open_store(root / f"{method_id}.zarr"), result.maps[method_id]
        assert maps.dims == ("item", "y", "x") and maps.dtype == np.float32
        np.testing.assert_array_equal(maps.values, stored["saliency"].values)
        assert list(maps["item"].values) == list(stored["item"].values)
        np.testing.assert_array_equal(maps["target"].values, stored["target"].values)
        for key in ("dataset", "model", "method", "method_name", "method_params", "citation", "seed", "maps_dtype"):
            assert maps.attrs[key] == stored.attrs[key], key
        assert maps.attrs["method_params"] == {**maps.attrs["method_params"], **spec["params"]}


def test_scores_and_curves_equal_the_score_jobs(study):
    root, _, result, _ = study
    assert_same(result.scores, _jobs_table(root, ""))
    assert_same(result.curves, _jobs_table(root, ".curves"))
    assert set(result.scores["metric"]) == set(METRICS) and result.scores["value"].notna().any()
    summary = result.summary(n_boot=50)
    expected = summarise(_jobs_table(root, ""), metric_info(METRICS), n_boot=50, seed=SEED)
    assert len(summary) == len(METHODS) * len(METRICS)
    assert_same(summary, expected)


def test_sanity_tables_and_verdicts_equal_the_sanity_jobs_and_the_reports(study):
    root, _, _, result = study
    jobs = _jobs_table(root, ".sanity", CHECKED)
    assert_same(result.sanity, jobs)
    assert {"model_sensitivity", "data_randomisation", "input_sensitivity"} <= set(jobs["check"])
    expected = verdict_table(jobs, {"sanity": SANITY, "methods": METHODS}, 2000, SEED)
    assert len(expected) >= 4
    assert_same(result.verdicts, expected)


def test_explain_of_a_loaded_model_equals_evaluates_maps(study):
    root, data, result, _ = study
    model = load_checkpoint(root / "cnn.pt")
    maps = salbench.explain(model, torch.from_numpy(data["image"].values), data["target"].values, "smoothgrad",
                            n_samples=3, seed=SEED, device="cpu", batch_size=BATCH, items=data["item"].values)
    np.testing.assert_array_equal(maps.values, result.maps["sg"].values)
    assert maps.attrs["method_params"]["n_samples"] == 3


def test_a_selected_check_runs_alone_and_gets_its_verdict_only(study):
    root, data, _, _ = study
    result = salbench.evaluate(root / "cnn.pt", data["image"].values, data["target"].values, methods="gradient",
                               checks=["input_sensitivity"], device="cpu", sanity={"items": 2})
    assert set(result.sanity["check"]) == {"input_sensitivity"} and result.sanity["item"].nunique() == 2
    assert list(result.verdicts["check"]) == ["input_sensitivity"]
    assert result.scores.empty and list(result.scores.columns[:7]) == list(salbench.jobs.SCORE_COLUMNS)
    assert result.summary().empty


def test_a_bare_module_is_wrapped_without_normalisation_and_float_images_work():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(4, 3))
    images = torch.rand(3, 3, 8, 8)
    maps = salbench.explain(net, images, 1, method="gradient", device="cpu")
    x = images.clone().requires_grad_()
    net(x)[:, 1].sum().backward()
    torch.testing.assert_close(torch.from_numpy(maps.values), x.grad.abs().amax(dim=1))
    with pytest.raises(ValueError, match=r"cannot explain model 'model'.*wrap_model\(net, target_layer="):
        salbench.explain(net, images, 1, method="gradcam", device="cpu")
    layered = api.wrap_model(net, target_layer="0")
    assert salbench.explain(layered, images, 1, method="gradcam", device="cpu").shape == (3, 8, 8)


def test_methods_and_metrics_in_every_form_become_config_entries():
    assert api.entries(["gradient", ("smoothgrad", {"n_samples": 2}), {"method": "gradient", "id": "g2"}],
                       "method") == {"gradient": {"method": "gradient", "params": {}},
                                     "smoothgrad": {"method": "smoothgrad", "params": {"n_samples": 2}},
                                     "g2": {"method": "gradient", "params": {}}}
    assert api.entries({"gradient": {}, "sg": {"method": "smoothgrad"}, "c": "centre"}, "method") == {
        "gradient": {"method": "gradient", "params": {}}, "sg": {"method": "smoothgrad", "params": {}},
        "c": {"method": "centre", "params": {}}}
    assert api.entries(("deletion", {"steps": 4}), "metric") == {"deletion": {"metric": "deletion",
                                                                              "params": {"steps": 4}}}


@pytest.mark.parametrize("call, message", [
    (lambda x, t: salbench.explain(None, x, t, method="gradcamm"), "method: unknown method 'gradcamm'; allowed: "),
    (lambda x, t: salbench.evaluate(None, x, t, metrics=["insertion", "delition"]),
     "metric: unknown metric 'delition'; allowed: "),
    (lambda x, t: salbench.evaluate(None, x, t, checks=["model_sensitivty"]),
     "check: unknown check 'model_sensitivty'; allowed: "),
    (lambda x, t: salbench.evaluate(None, x, t, checks=["random_logit"]), "checks: 'random_logit' is a class check"),
    (lambda x, t: salbench.evaluate(None, x, t, methods=["gradient", ("gradient", {})]),
     "methods: 'gradient' is given twice"),
])
def test_wrong_names_are_one_line_errors_naming_them_before_the_model_is_read(call, message):
    with pytest.raises(ValueError) as err:
        call(np.zeros((2, 3, 8, 8), np.uint8), [0, 1])
    text = str(err.value)
    assert text.startswith(message) and "\n" not in text
    if "allowed" in message:
        assert "gradient" in text or "deletion" in text or "model_sensitivity" in text


@pytest.mark.parametrize("images, targets, message", [
    (np.zeros((2, 8, 8)), [0, 1], r"images: expected \[N,C,H,W\]"),
    (np.full((2, 3, 8, 8), 2.0), [0, 1], r"images: floats must lie in \[0, 1\]"),
    (np.zeros((2, 3, 8, 8), np.uint8), [0, 1, 2], "targets: expected 2 classes"),
])
def test_wrong_inputs_name_the_argument(images, targets, message):
    with pytest.raises(ValueError, match=message):
        salbench.explain(torch.nn.Identity(), images, targets, method="centre", device="cpu")


def test_the_api_docstring_examples_run():
    assert doctest.testmod(api, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE).failed == 0


def test_a_path_that_is_no_model_is_named_as_the_argument(tmp_path):
    with pytest.raises(ValueError, match=r"^model 'nothing.pt' is neither a file nor a registered architecture"):
        salbench.explain("nothing.pt", np.zeros((1, 3, 8, 8), np.uint8), 0, method="centre", device="cpu")


def test_explain_is_the_api_function_beside_the_explain_commands_module():
    from salbench.overlays import overlay  # noqa: F401  (the `salbench explain` command's module)

    assert salbench.explain is api.explain and salbench.evaluate is api.evaluate


def test_importing_salbench_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, salbench; assert 'torch' not in sys.modules and 'pandas' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
