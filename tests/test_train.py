"""Training: seeded and deterministic, learns, records its settings, handles permuted labels."""

import json
import math
import subprocess
import sys

import pytest
import torch

from salbench.cli import main
from salbench.data import create_dataset
from salbench.jobs import fetch_dataset, train
from salbench.models import build_model
from salbench.params import ConfigError, ParamError
from salbench.train import (TIMING_KEYS, TrainingDiverged, classification_loss, make_scheduler, random_dihedral,
                            random_flip_crop, train_classifier)
from trained import trained_default

SETTINGS = {"lr": 0.01, "batch_size": 32, "weight_decay": 0.0, "seed": 5, "progress": False}


@pytest.fixture(scope="module")
def tiny():
    source = create_dataset("shapes", n_train=96, n_val=48, n_eval=0, seed=1)
    return source.generate("train"), source.generate("val")


def _train(tiny, epochs=1, **overrides):
    torch.manual_seed(0)
    model = build_model("small_cnn", 6)
    metrics = train_classifier(model, *tiny, epochs=epochs, **{**SETTINGS, **overrides})
    return model, metrics


def test_same_seed_gives_identical_weights(tiny):
    (first, metrics), (second, _) = _train(tiny), _train(tiny)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name
    assert not first.training
    assert metrics["seed"] == 5 and metrics["epochs"] == 1 and metrics["n_train"] == 96 and metrics["n_val"] == 48
    assert len(metrics["train_accuracy"]) == len(metrics["val_accuracy"]) == 1
    other, _ = _train(tiny, seed=6)
    assert not torch.equal(other.net.fc.weight, first.net.fc.weight)


def test_the_thread_count_is_recorded_because_the_weights_depend_on_it(tiny):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workflow's training jobs run with one thread (workflow/rules/models.smk)
    try:
        _, metrics = _train(tiny)
    finally:
        torch.set_num_threads(threads)
    assert metrics["torch_threads"] == 1


def test_loss_falls_and_training_accuracy_beats_chance(tiny):
    _, metrics = _train(tiny, epochs=12, augment=False)
    assert metrics["train_loss"][-1] < 0.6 * metrics["train_loss"][0]
    assert metrics["train_accuracy"][-1] > 3 / 6 and metrics["augment"] is False


def test_training_leaves_global_determinism_setting_alone(tiny):
    assert not torch.are_deterministic_algorithms_enabled()
    _train(tiny)
    assert not torch.are_deterministic_algorithms_enabled()


def test_deterministic_switch_is_on_during_training_without_importing_the_compiler():
    """The eager switch alone: ``torch.use_deterministic_algorithms`` would import torch._inductor (~1.3 s a job)."""
    code = (
        "import sys, torch\n"
        "from salbench.train import deterministic_algorithms\n"
        "with deterministic_algorithms():\n"
        "    inside = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())\n"
        "print(inside, torch.are_deterministic_algorithms_enabled(), 'torch._inductor' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["(True,", "True)", "False", "False"]


def test_permuted_labels_are_seeded_and_recorded(tiny):
    model, metrics = _train(tiny, permute_labels=True)
    again, _ = _train(tiny, permute_labels=True)
    plain, _ = _train(tiny)
    assert metrics["permute_labels"] is True
    assert torch.equal(model.net.fc.weight, again.net.fc.weight)
    assert not torch.equal(model.net.fc.weight, plain.net.fc.weight)


def test_permuted_model_memorises_a_small_training_set(tiny):
    """Data randomisation's model (Adebayo et al. 2018): random labels, learnt by heart, nothing general."""
    _, metrics = _train(tiny, epochs=40, permute_labels=True, augment=False, max_train=24, lr=0.02)
    assert metrics["n_train"] == 24 and metrics["final_train_accuracy"] >= 0.9
    assert metrics["final_val_accuracy"] < 0.5
    with pytest.raises(ValueError, match="max_train"):
        _train(tiny, max_train=0)


def test_random_dihedral_draws_each_symmetry_of_the_square():
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(400, 1, 1, 1)
    out = random_dihedral(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, random_dihedral(x, torch.Generator().manual_seed(0)))
    assert torch.equal(out.flatten(1).sort(1).values, x.flatten(1).sort(1).values)
    assert len({tuple(o.flatten().tolist()) for o in out}) == 8


@pytest.mark.slow
def test_default_training_reaches_the_target_accuracy():
    """The embedded default's CNN recipe (its data set and training settings) gives >= 90% validation accuracy.
    (The CNN is trained once for the session's tests on trained models; the ResNet's, CoDA-Net's and ViT's
    recipes, about 3 CPU-minutes each, are left to the demo, which records each model's accuracies in
    ``results/shapes/models/<model>.train.json``.)"""
    assert trained_default("small_cnn").metrics["final_val_accuracy"] >= 0.9


# The CoDA-Net recipe options (Böhle et al. 2021): loss, optimizer, schedule, augmentation


@pytest.mark.parametrize("key, value", [("loss", "mse"), ("optimizer", "sgd"), ("schedule", "cosine"),
                                        ("augmentation", "mixup"), ("lr_step", 0), ("lr_step", 2.5),
                                        ("lr_decay", 0.5), ("crop_padding", -1), ("crop_padding", True)])
def test_recipe_options_are_validated_naming_the_key(tiny, key, value):
    with pytest.raises(ParamError, match=f"train 'small_cnn': {key}"):
        _train(tiny, **{key: value})


def test_bce_is_binary_cross_entropy_against_one_hot_targets():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]])
    targets = torch.tensor([0, 2])
    one_hot = torch.tensor([[1.0, 0, 0], [0, 0, 1.0]])
    p = torch.sigmoid(logits)
    expected = -(one_hot * p.log() + (1 - one_hot) * (1 - p).log()).mean()
    torch.testing.assert_close(classification_loss(logits, targets, "bce"), expected)
    torch.testing.assert_close(classification_loss(logits, targets, "cross_entropy"),
                               -torch.log_softmax(logits, 1)[[0, 1], [0, 2]].mean())


def test_step_schedule_divides_the_rate_every_lr_step_epochs():
    """lr * 1.5 ** -floor(epoch / 30) in the paper; here 2 steps per epoch, a step every 2 epochs."""
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.3)
    schedule = make_scheduler(optimizer, "step", 0.3, epochs=6, steps=2, lr_step=2, lr_decay=1.5)
    rates = []
    for _ in range(12):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates == pytest.approx([0.3] * 4 + [0.2] * 4 + [0.3 / 2.25] * 4)


def test_random_flip_crop_is_a_seeded_flip_and_shift_of_the_padded_image():
    x = torch.arange(1, 2 * 36 + 1, dtype=torch.float32).view(1, 2, 6, 6).repeat(300, 1, 1, 1)
    out = random_flip_crop(x, torch.Generator().manual_seed(0), padding=2)
    assert out.shape == x.shape
    assert torch.equal(out, random_flip_crop(x, torch.Generator().manual_seed(0), padding=2))
    padded = {flip: torch.nn.functional.pad(x[0].flip(-1) if flip else x[0], (2, 2, 2, 2)) for flip in (0, 1)}
    windows = {(flip, dy, dx): padded[flip][:, dy:dy + 6, dx:dx + 6] for flip in (0, 1)
               for dy in range(5) for dx in range(5)}
    seen = set()
    for image in out:
        match = [key for key, window in windows.items() if torch.equal(image, window)]
        assert len(match) == 1
        seen.add(match[0])
    assert len(seen) == len(windows)  # every flip and offset is drawn
    flips_only = random_flip_crop(x, torch.Generator().manual_seed(1), padding=0)
    assert {tuple(f.flatten().tolist()) for f in flips_only} == {tuple(x[0].flatten().tolist()),
                                                               tuple(x[0].flip(-1).flatten().tolist())}


def test_bce_adam_step_recipe_trains_and_is_recorded(tiny):
    recipe = {"loss": "bce", "optimizer": "adam", "schedule": "step", "lr_step": 4, "lr_decay": 1.5,
              "augmentation": "flip_crop", "crop_padding": 4}
    _, metrics = _train(tiny, epochs=12, lr=0.003, augment=False, **recipe)
    assert metrics["train_loss"][-1] < 0.6 * metrics["train_loss"][0]
    assert {key: metrics[key] for key in recipe} == recipe
    assert metrics["cpu_seconds"] > 0


def test_coda_net_trains_with_the_recipe_seeded():
    source = create_dataset("shapes", n_train=16, n_val=8, n_eval=0, seed=2)
    items = source.generate("train"), source.generate("val")
    recipe = {"loss": "bce", "optimizer": "adam", "schedule": "step", "augmentation": "flip_crop", "epochs": 1,
              "lr": 0.001, "batch_size": 8, "weight_decay": 0.0, "seed": 3, "progress": False}
    weights = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_model("small_coda", 6)
        before = model.net.layers[0].weight.detach().clone()
        metrics = train_classifier(model, *items, **recipe)
        weights.append(model.net.layers[0].weight.detach())
    assert not torch.equal(before, weights[0]) and torch.equal(*weights)
    assert metrics["loss"] == "bce" and 0 < metrics["train_loss"][0] < 1


# A diverging run (lr: .inf) stops at once, naming model, step and config key, and writes nothing


def test_infinite_learning_rate_stops_at_the_first_non_finite_loss(tiny):
    torch.manual_seed(0)
    with pytest.raises(TrainingDiverged) as caught:
        train_classifier(build_model("small_cnn", 6), *tiny, epochs=2, **{**SETTINGS, "lr": math.inf}, name="cnn")
    message = str(caught.value)
    assert isinstance(caught.value, ConfigError) and "\n" not in message
    assert "model 'cnn' (small_cnn)" in message and "the loss is nan at epoch 1/2, step 2/3" in message
    assert "'models.cnn.train.lr' (now inf)" in message


def test_weights_that_diverge_in_an_epoch_of_one_step_are_caught(tiny):
    """One batch per epoch: the only loss is computed before the step that breaks the weights."""
    torch.manual_seed(0)
    with pytest.raises(TrainingDiverged, match=r"the weights \(net\.\S+\) are not finite after epoch 1/1.*"
                                               r"'models.<model>.permuted_train.lr'"):
        train_classifier(build_model("small_cnn", 6), *tiny, epochs=1, **{**SETTINGS, "lr": math.inf, "batch_size": 96},
                         permute_labels=True)


#: the smallest training job: 32 items of 16 px, one epoch of two batches
JOB_DATA = {"image_size": 16, "n_train": 32, "n_val": 8, "n_eval": 0, "seed": 0}
JOB_TRAIN = {"epochs": 1, "lr": 0.01, "batch_size": 16, "weight_decay": 0.0, "progress": False}


@pytest.fixture(scope="module")
def job_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    fetch_dataset("shapes", JOB_DATA, root / "data")
    return root / "data"


def test_same_seed_gives_byte_identical_checkpoints(job_root, tmp_path):
    """Timings go to the .train.json only: the checkpoint (and its recorded sha256) is the same between runs."""
    records = [train("shapes", JOB_DATA, job_root, "small_cnn", JOB_TRAIN, 0, "cpu", tmp_path / f"{run}/cnn.pt",
                     tmp_path / f"{run}/cnn.train.json") for run in ("a", "b")]
    assert (tmp_path / "a/cnn.pt").read_bytes() == (tmp_path / "b/cnn.pt").read_bytes()
    assert records[0]["checkpoint_sha256"] == records[1]["checkpoint_sha256"]
    saved = json.loads((tmp_path / "a/cnn.train.json").read_text())
    assert saved["checkpoint_sha256"] == records[0]["checkpoint_sha256"] and saved["seconds"] > 0
    meta = torch.load(tmp_path / "a/cnn.pt", weights_only=False)["meta"]
    assert not set(TIMING_KEYS) & set(meta["metrics"]) and meta["metrics"]["final_val_accuracy"] >= 0


def test_diverging_training_job_writes_nothing_and_says_so_in_one_line(job_root, tmp_path, capsys):
    out = tmp_path / "models"
    argv = ["train", "--source", "shapes", "--params", json.dumps(JOB_DATA), "--root", str(job_root), "--arch",
            "small_cnn", "--train", json.dumps({**JOB_TRAIN, "lr": math.inf}), "--device", "cpu",
            "--out", str(out / "cnn.pt"), "--metrics", str(out / "cnn.train.json")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("salbench: training model 'cnn' (small_cnn) diverged")
    assert "'models.cnn.train.lr' (now inf)" in err
    assert not out.exists() or not any(out.iterdir())
