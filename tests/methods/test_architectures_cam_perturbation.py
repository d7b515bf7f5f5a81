"""The CAM, perturbation and mask-optimisation families run on the embedded default's models (random
weights, 64 px, batch 2) at reduced cost, and leave no trace."""

from __future__ import annotations

import pytest
import torch

from salbench.methods import METHODS
from salbench.models import build_model

from .helpers import small_archs
from .test_registry import assert_clean_run
from .threads import one_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_thread")

#: the property under test is that they run on real layers, not their convergence
CHEAP = {
    "rise": {"n_masks": 20},
    "mdm": {"scales": [4, 6], "min_count": 1, "max_iter": 2},
    "extremal_perturbation": {"areas": [0.1], "max_iter": 2},
    "meaningful_perturbation": {"max_iter": 2},
}
FAMILY = [
    "cam", "gradcam_pp", "xgradcam", "hirescam", "layercam", "eigencam", "fem", "scorecam", "ablationcam",
    "occlusion", *CHEAP,
]


@pytest.mark.parametrize("name", FAMILY)
@pytest.mark.parametrize("arch", small_archs())
def test_method_runs_on_the_default_models(arch, name):
    torch.manual_seed(0)
    model = build_model(arch, 5).eval()
    assert_clean_run(METHODS.get(name), dict(CHEAP.get(name, {})), model, model.spec.input_size)
