"""Training: seeded and deterministic, learns, records its settings, handles permuted labels."""


import pytest
import torch

from salbench.data import create_dataset
from salbench.models import build_model
from salbench.train import random_dihedral, train_classifier
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


def test_loss_falls_and_training_accuracy_beats_chance(tiny):
    _, metrics = _train(tiny, epochs=12, augment=False)
    assert metrics["train_loss"][-1] < 0.6 * metrics["train_loss"][0]
    assert metrics["train_accuracy"][-1] > 3 / 6 and metrics["augment"] is False


def test_training_leaves_global_determinism_setting_alone(tiny):
    assert not torch.are_deterministic_algorithms_enabled()
    _train(tiny)
    assert not torch.are_deterministic_algorithms_enabled()


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
@pytest.mark.parametrize("arch", ["small_cnn", "small_resnet"])
def test_default_training_reaches_the_target_accuracy(arch):
    """The embedded default's recipe (its data set and training settings) gives >= 90% validation accuracy."""
    assert trained_default(arch).metrics["final_val_accuracy"] >= 0.9
