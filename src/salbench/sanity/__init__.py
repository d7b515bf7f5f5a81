"""Sanity checks of saliency methods: model and data randomisation, input invariance, input and class
sensitivity, random logit, and control-validated verdicts (see each module for its paper)."""

from .class_sensitivity import class_sensitivity, pair_partners, random_logit, random_other_classes
from .input_sensitivity import input_sensitivity, noisy_images, partners
from .invariance import (
    InvarianceError,
    ShiftPaddedConv2d,
    assert_same_logits,
    input_invariance,
    map_differences,
    mean_shifted_model,
)
from .randomisation import (
    BATCHNORM,
    MODES,
    ORIGINAL,
    randomised_layers,
    randomised_stages,
    stage_maps,
    stage_model,
    stage_names,
    stage_similarities,
)
from .similarity import MEASURES, Similarity, spearman, ssim
from .verdicts import CONTROLS, RULES, Rule, Verdict, bootstrap_interval, check_rules, verdicts

__all__ = [
    "BATCHNORM", "CONTROLS", "InvarianceError", "MEASURES", "MODES", "ORIGINAL", "RULES", "Rule", "ShiftPaddedConv2d",
    "Similarity", "Verdict", "assert_same_logits", "bootstrap_interval", "check_rules", "class_sensitivity",
    "input_invariance", "input_sensitivity", "map_differences", "mean_shifted_model", "noisy_images",
    "pair_partners", "partners", "random_logit", "random_other_classes", "randomised_layers", "randomised_stages",
    "spearman", "ssim", "stage_maps", "stage_model", "stage_names", "stage_similarities", "verdicts",
]
