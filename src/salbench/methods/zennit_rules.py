"""A relevance rule written here for zennit: contrastive excitation backprop's ``Z+`` (Zhang et al. 2016).

It subclasses zennit's :class:`~zennit.core.BasicHook`, so importing this module imports zennit (and with it
torchvision): :class:`~salbench.methods.backprop.ContrastiveExcitationBackprop` imports it when it builds its
composite.
"""

from __future__ import annotations

from zennit.core import BasicHook, ParamMod, Stabilizer
from zennit.rules import ClampMod


class ContrastiveZPlus(BasicHook):
    """Excitation backprop of the target minus that of its negated classifier weights, in one rule.

    For input ``x >= 0`` (excitation backprop's assumption; negative parts are dropped) and weights ``W``:
    ``x * (W+^T (R / W+ x) - W-^T (R / W- x))`` with ``W- = max(-W, 0)`` and biases ignored. Excitation
    backprop below this layer is linear in the signal, so this equals TorchRay's two passes (negated
    classifier to the contrast layer, then subtraction there).
    """

    def __init__(self, stabilizer: float) -> None:
        stabilize = Stabilizer.ensure(stabilizer)
        super().__init__(
            input_modifiers=[lambda x: x.clamp(min=0.0), lambda x: x.clamp(min=0.0)],
            param_modifiers=[
                ClampMod(min=0.0, zero_params=["bias"]),
                ParamMod(lambda param, name: (-param).clamp(min=0.0), zero_params=["bias"]),
            ],
            output_modifiers=[lambda z: z, lambda z: z],
            gradient_mapper=lambda grad, outputs: [grad / stabilize(outputs[0]), -grad / stabilize(outputs[1])],
            reducer=lambda inputs, grads: inputs[0] * grads[0] + inputs[1] * grads[1],
        )
