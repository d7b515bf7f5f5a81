"""Plugins from the user's own code: import paths and entry points, their contract, hashes and provenance."""

from __future__ import annotations

import itertools
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from salbench import plugins, sources
from salbench.catalog import study_catalog
from salbench.config import ConfigError, validate_config
from salbench.methods import METHODS, create_method
from salbench.metrics import METRICS
from salbench.models import ARCHS, build_model, load_checkpoint, save_checkpoint
from salbench.provenance import provenance
from salbench.sanity.checks import CHECKS
from salbench.sources import source_closure, source_hash

METHOD = '''
import torch
from salbench.methods import Method


class Mine(Method):
    """Input times one (a test plugin)."""

    defaults = {"scale": 1.0}

    def attribute(self, model, inputs, target):
        return inputs.sum(dim=1) * self.params["scale"]
'''
METRIC = '''
import numpy as np
from salbench.metrics import Metric


class MeanMap(Metric):
    """Mean of each map (a test plugin)."""

    def score(self, batch):
        return batch.maps.mean(dim=(1, 2)).double().numpy()
'''
ARCH = '''
from torch import nn
from salbench.models import Arch, ModelSpec

def build(num_classes):
    """A one-layer test CNN."""
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, num_classes))

TINY = Arch(build, ModelSpec(arch="tiny", input_size=16, mean=(0.5,) * 3, std=(0.5,) * 3, target_layer="net.1"))
'''
_COUNTER = itertools.count()


@pytest.fixture(autouse=True)
def _clean(tmp_path, monkeypatch):
    """A private plugin cache, and registries and caches without this test's plugins afterwards."""
    monkeypatch.setenv("SALBENCH_PLUGIN_CACHE", str(tmp_path / "cache"))
    yield
    for registry in (METHODS, METRICS, ARCHS, CHECKS):
        registry.forget_plugins()
    for cached in (sources.plugin_location, sources.plugin_version, sources.plugin_hash, sources._closure_hash,
                   sources.source_closure, sources.imported_files, plugins.installed_names):
        cached.cache_clear()


def _package(tmp_path: Path, monkeypatch, **modules: str) -> str:
    """A fresh package on sys.path holding ``modules`` (name -> source); its (unique) name."""
    name = f"plug{next(_COUNTER)}_{tmp_path.name[-8:].replace('-', '_')}"
    folder = tmp_path / "code" / name
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    for module, text in modules.items():
        (folder / f"{module}.py").write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    return name


def _study(methods=None, metrics=None, arch="small_cnn") -> dict:
    return {"datasets": {"shapes": {"source": "shapes"}}, "models": {"m": {"arch": arch}},
            "methods": methods or {"gradient": {}}, "metrics": metrics or {"pointing_game": {}}}


def test_import_path_method_and_metric_validate_and_reach_the_catalog(tmp_path, monkeypatch):
    pkg = _package(tmp_path, monkeypatch, attribution=METHOD, metric=METRIC)
    config = validate_config(_study({"mine": {"method": f"{pkg}.attribution:Mine", "params": {"scale": 2.0}}},
                                    {"mean": {"metric": f"{pkg}.metric:MeanMap"}}))
    catalog = study_catalog(config)
    entry = catalog["methods"][f"{pkg}.attribution:Mine"]
    assert entry["module"] == f"plugin:{pkg}.attribution" and entry["params"] == {"scale": 1.0}
    assert entry["plugin"]["package"] == pkg and len(entry["plugin"]["source_hash"]) == 16
    assert catalog["metrics"][f"{pkg}.metric:MeanMap"]["higher_is_better"] is True
    assert "gradient" in catalog["methods"]  # the snapshot's entries stay
    method = create_method(f"{pkg}.attribution:Mine", scale=2.0)
    assert torch.equal(method.attribute(None, torch.ones(1, 3, 2, 2), torch.zeros(1)), torch.full((1, 2, 2), 6.0))
    assert dict(METHODS.describe())[f"{pkg}.attribution:Mine"].startswith(f"[plugin {pkg} ")
    # every job's store records the plugins it loaded: package, version and source hash
    assert provenance("cpu")["plugins"][f"method:{pkg}.attribution:Mine"] == entry["plugin"]
    # the cached fragment: a second validation imports nothing new (the cache file is read)
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1


def _installed(tmp_path: Path, pkg: str, entry_points: str) -> None:
    """A dist-info folder for ``pkg`` 0.3.1 beside it on sys.path: what `pip install` writes, without installing."""
    dist = tmp_path / "code" / f"{pkg}-0.3.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {pkg}\nVersion: 0.3.1\n")
    (dist / "top_level.txt").write_text(f"{pkg}\n")
    (dist / "entry_points.txt").write_text(entry_points)


def test_entry_point_plugin_from_an_installed_distribution(tmp_path, monkeypatch):
    pkg = _package(tmp_path, monkeypatch, attribution=METHOD)
    _installed(tmp_path, pkg, f"[salbench.methods]\nmine_ep = {pkg}.attribution:Mine\n")
    config = validate_config(_study({"m1": {"method": "mine_ep"}}))
    record = study_catalog(config)["methods"]["mine_ep"]["plugin"]
    assert record["package"] == pkg and record["version"] == "0.3.1"
    assert METHODS.get("mine_ep").name == "mine_ep"
    METHODS.forget_plugins()
    assert "mine_ep" in METHODS.load_installed_plugins()  # what `salbench list methods` shows
    assert dict(METHODS.describe())["mine_ep"].startswith(f"[plugin {pkg} 0.3.1]")


BROKEN = {
    "missing module": ("{pkg}_nowhere.mod:Mine", {}, "cannot import"),
    "import error": ("{pkg}.boom:Mine", {"boom": "raise RuntimeError('no GPU here')\n"}, "RuntimeError: no GPU here"),
    "missing attribute": ("{pkg}.attribution:Nope", {"attribution": METHOD}, "has no attribute 'Nope'"),
    "not a method": ("{pkg}.attribution:thing", {"attribution": "thing = 3\n"}, "not a subclass of"),
    "wrong signature": ("{pkg}.attribution:Mine", {"attribution": METHOD.replace("model, inputs, target", "x")},
                        "the contract is attribute(self, model, inputs, target)"),
    "wrong flag type": ("{pkg}.attribution:Mine", {"attribution": METHOD + "    needs_layer = 'yes'\n"},
                        "needs_layer must be a bool"),
    "wrong output shape": ("{pkg}.attribution:Mine", {"attribution": METHOD.replace(".sum(dim=1)", "")},
                           "returns shape (2, 3, 64, 64) on a probe call; the contract is (2, 64, 64)"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_method_plugin_is_one_line_naming_the_config_key(case, tmp_path, monkeypatch):
    target, modules, message = BROKEN[case]
    pkg = _package(tmp_path, monkeypatch, **modules)
    with pytest.raises(ConfigError) as err:
        validate_config(_study({"mine": {"method": target.format(pkg=pkg)}}))
    text = str(err.value)
    assert text.startswith("config key 'methods.mine.method': method plugin ") and "\n" not in text
    assert message in text
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())  # failures are not cached


def test_a_metric_returning_the_wrong_shape_is_rejected(tmp_path, monkeypatch):
    pkg = _package(tmp_path, monkeypatch, metric=METRIC.replace("mean(dim=(1, 2))", "mean(dim=1)"))
    with pytest.raises(ConfigError, match=r"^config key 'metrics.mean.metric': metric plugin .* returns shape "
                                          r"\(2, 64\) on a probe call; the contract is \(2,\)$"):
        validate_config(_study(metrics={"mean": {"metric": f"{pkg}.metric:MeanMap"}}))


def test_model_plugin_registers_like_an_architecture_and_its_checkpoint_loads(tmp_path, monkeypatch):
    pkg = _package(tmp_path, monkeypatch, arch=ARCH)
    name = f"{pkg}.arch:TINY"
    config = validate_config(_study(arch=name))
    entry = study_catalog(config)["archs"][name]
    assert entry["spec"]["arch"] == name and entry["spec"]["input_size"] == 16
    assert entry["description"] == "A one-layer test CNN." and entry["module"] == f"plugin:{pkg}.arch"
    model = build_model(name, 3)
    save_checkpoint(model, tmp_path / "m.pt", {"num_classes": 3})
    ARCHS.forget_plugins()  # a job process: the checkpoint's arch names the plugin, loaded on first use
    loaded = load_checkpoint(tmp_path / "m.pt")
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(loaded(x), model.eval()(x))


def test_checkpoint_loading_knows_no_user_models():
    """The cycle models/base -> models/user -> models/pretrained -> models/base is gone."""
    closure = source_closure("models/base.py")
    assert not {"models/user.py", "models/pretrained.py"} & closure
    assert "models/base.py" in source_closure("models/user.py")


def test_plugin_hash_follows_the_plugin_files_it_imports(tmp_path, monkeypatch):
    attribution = METHOD.replace("import torch", "import torch\nfrom . import helper")
    pkg = _package(tmp_path, monkeypatch, attribution=attribution, helper="K = 1\n", other="K = 2\n")
    rule = ["saliency.py", f"plugin:{pkg}.attribution"]
    assert sources.plugin_files(f"{pkg}.attribution")[1] == {"attribution.py", "helper.py"}
    before = source_hash(rule)

    def edited(rel: str, text: str) -> str:
        (tmp_path / "code" / pkg / rel).write_text(text)
        for cached in (sources.plugin_hash, sources._closure_hash, sources.source_closure, sources.imported_files):
            cached.cache_clear()
        return source_hash(rule)

    assert edited("other.py", "K = 3\n") == before  # not imported by the plugin
    assert edited("helper.py", "K = 4\n") != before
    assert source_hash(["saliency.py"]) != before  # the plugin's sources are part of the rule's hash


CHECK = """
from salbench.sanity.checks import Check


def compute(job):
    return []


MINE = Check(name="my_check", description="A test check.", citation="-", compute=compute, statistic="x",
             rule="r", passes_when="below", threshold=0.5)
"""


def test_check_plugins_register_through_entry_points_under_their_own_name(tmp_path, monkeypatch):
    pkg = _package(tmp_path, monkeypatch, checks=CHECK)
    _installed(tmp_path, pkg, f"[salbench.checks]\nmy_check = {pkg}.checks:MINE\nrenamed = {pkg}.checks:MINE\n")
    with pytest.warns(UserWarning, match="check plugin 'renamed'"):  # breaks the contract: left out, said why
        assert CHECKS.load_installed_plugins() == ["my_check"]
    entry = {e.name: e for e in CHECKS.entries()}["my_check"]
    assert entry.plugin["version"] == "0.3.1" and entry.obj.threshold == 0.5
    with pytest.raises(plugins.PluginError, match="the check's name is 'my_check'; name the entry point after it"):
        CHECKS.get("renamed")


PEAK_CHECK = """
from salbench.sanity.checks import Check


def compute(job):
    flat = job.original().flatten(1).abs()
    return [job.rows("peak_share", "peak", flat.amax(1) / flat.sum(1).clamp_min(1e-12))]


PEAK = Check(name="peak_share", description="The map's largest value is a small share of its mass.",
             citation="a test", compute=compute, statistic="peak", rule="largest |value| over total |value|",
             passes_when="below", threshold=0.5, controls=("centre",))
NOT_A_CHECK = 3
"""


def _sanity_study(*checks: str) -> dict:
    return {**_study(), "sanity": {"checks": list(checks)}}


def test_a_config_named_check_plugin_runs_in_the_sanity_job_and_gets_a_verdict(tmp_path, monkeypatch):
    from salbench.report.sanity import verdict_table
    from salbench.sanity.run import SanitySettings, model_checks
    from salbench.sanity.verdicts import verdict_values

    pkg = _package(tmp_path, monkeypatch, checks=PEAK_CHECK)
    path = f"{pkg}.checks:PEAK"
    config = validate_config(_sanity_study(path))
    assert config["sanity"]["checks"] == [path]
    CHECKS.forget_plugins()  # a job process: the job registers the settings' checks itself
    settings = SanitySettings(items=4, measures=("spearman_abs",), checks=tuple(config["sanity"]["checks"]))
    model = build_model("small_cnn", 3).eval()
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    result = model_checks(create_method("gradient"), model, None, images, torch.arange(4) % 3,
                          [f"i{k}" for k in range(4)], settings, 0, None, 4, "cpu", checks=[path, "input_sensitivity"])
    table = result.table
    assert set(table["check"]) == {"peak_share", "input_sensitivity"}
    peak = table[table["check"] == "peak_share"]["value"].to_numpy()
    assert peak.shape == (4,) and ((peak > 0) & (peak <= 1)).all()
    assert set(verdict_values(table, "spearman_abs")) == {path, "input_sensitivity"}
    # the report process registers the config's checks before reading its verdicts, controls included
    CHECKS.forget_plugins()
    table.insert(0, "method", "centre_map")
    table.insert(0, "model", "m")
    table.insert(0, "dataset", "shapes")
    verdicts = verdict_table(table, {**config, "methods": {"centre_map": {"method": "centre"}}}, n_boot=50, seed=0)
    row = verdicts[verdicts["check"] == path].iloc[0]
    assert bool(row["passed"]) == bool(peak.mean() < 0.5) and row["method_name"] == "centre"
    assert set(verdicts["check"]) == {path, "input_sensitivity"}


def test_a_broken_or_unknown_check_in_the_config_is_rejected_naming_the_key(tmp_path, monkeypatch):
    pkg = _package(tmp_path, monkeypatch, checks=PEAK_CHECK)
    with pytest.raises(ConfigError, match=r"^config key 'sanity\.checks': check plugin .*NOT_A_CHECK is int, not a "):
        validate_config(_sanity_study(f"{pkg}.checks:NOT_A_CHECK"))
    with pytest.raises(ConfigError, match=r"^config key 'sanity\.checks': check plugin .*cannot import"):
        validate_config(_sanity_study(f"{pkg}.missing:PEAK"))
    with pytest.raises(ConfigError, match=r"^config key 'sanity\.checks': unknown check 'nope'; allowed: .*emprt"):
        validate_config(_sanity_study("nope"))
    assert validate_config(_sanity_study("emprt"))["sanity"]["checks"] == ["emprt"]  # a built-in: nothing to load


def test_the_sanity_rule_hash_follows_the_study_check_plugins(tmp_path, monkeypatch):
    pkg = _package(tmp_path, monkeypatch, checks=PEAK_CHECK, installed=CHECK)
    _installed(tmp_path, pkg, f"[salbench.checks]\nmy_check = {pkg}.installed:MINE\n")
    config = _sanity_study(f"{pkg}.checks:PEAK", "emprt")
    assert plugins.check_sources(config) == [f"plugin:{pkg}.checks", f"plugin:{pkg}.installed"]
    assert plugins.check_sources({}) == [f"plugin:{pkg}.installed"]  # installed checks run in every study

    def sanity_hash() -> str:  # what the sanity rule's code param (workflow/rules/common.smk) hashes
        for cached in (sources.plugin_hash, sources._closure_hash, sources.source_closure, sources.imported_files):
            cached.cache_clear()
        return source_hash(["sanity/run.py", *plugins.check_sources(config)])

    before = sanity_hash()
    assert before != source_hash(["sanity/run.py"])
    (tmp_path / "code" / pkg / "checks.py").write_text(PEAK_CHECK.replace("0.5", "0.4"))
    edited = sanity_hash()
    assert edited != before
    (tmp_path / "code" / pkg / "installed.py").write_text(CHECK.replace("0.5", "0.4"))
    assert sanity_hash() != edited


def test_installed_check_plugins_register_before_the_verdicts_read_the_registry(tmp_path):
    import subprocess

    code = tmp_path / "code"
    (code / "instchk").mkdir(parents=True)
    (code / "instchk" / "__init__.py").write_text("")
    (code / "instchk" / "checks.py").write_text(textwrap.dedent(CHECK))
    _installed(tmp_path, "instchk", "[salbench.checks]\nmy_check = instchk.checks:MINE\n")
    probe = "from salbench.sanity.verdicts import RULES, VERDICT_STATISTIC; print('my_check' in RULES, VERDICT_STATISTIC)"
    out = subprocess.run([sys.executable, "-c", probe], env={"PYTHONPATH": str(code), "PATH": ""},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "True" and "'my_check': 'x'" in " ".join(out)


def test_list_with_a_config_shows_its_import_path_plugins(tmp_path, monkeypatch, capsys):
    from salbench.cli import main

    pkg = _package(tmp_path, monkeypatch, attribution=METHOD, checks=PEAK_CHECK)
    config = {**_study({"mine": {"method": f"{pkg}.attribution:Mine"}}), "sanity": {"checks": [f"{pkg}.checks:PEAK"]}}
    path = tmp_path / "study.yaml"
    path.write_text(__import__("yaml").safe_dump(config))
    main(["list", "methods", "--config", str(path)])
    methods = capsys.readouterr().out
    assert f"{pkg}.attribution:Mine  [plugin {pkg} (not installed)] Input times one" in methods
    METHODS.forget_plugins()
    main(["list", "methods"])
    assert pkg not in capsys.readouterr().out  # without --config: the registered and installed ones only
    main(["list", "checks", "--config", str(path)])
    assert f"[plugin {pkg} (not installed)] The map's largest value" in capsys.readouterr().out


def test_the_example_check_plugin_fails_a_class_blind_map_and_runs_from_the_example_study(monkeypatch):
    from salbench.sanity.run import SanitySettings, model_checks
    from salbench.sanity.verdicts import check_rules, verdict_values

    example = Path(__file__).resolve().parents[1] / "examples" / "my_method"
    monkeypatch.syspath_prepend(str(example))
    study = __import__("yaml").safe_load((example / "study.yaml").read_text())
    path = "my_method.checks:TARGET_DEPENDENCE"
    assert study["sanity"]["checks"] == [path]
    validate_config({**_study(), "sanity": study["sanity"]})
    settings = SanitySettings(items=4, measures=("spearman_abs",), checks=(path,))
    model = build_model("small_cnn", 3).eval()
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    values = {}
    for method in ("sobel", "gradient"):
        table = model_checks(create_method(method), model, None, images, torch.arange(4) % 3,
                             [f"i{k}" for k in range(4)], settings, 0, None, 4, "cpu", checks=[path]).table
        assert set(table["check"]) == {"target_dependence"} and set(table["statistic"]) == {"spearman_abs"}
        values[method] = verdict_values(table, "spearman_abs")[path]
    rule = check_rules()[path]
    assert not rule.passes(values["sobel"].mean())  # the edge map ignores the class: similarity 1
    assert values["gradient"].mean() < values["sobel"].mean() - 0.05  # the gradient follows the class it explains
