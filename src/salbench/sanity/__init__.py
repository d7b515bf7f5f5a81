"""Sanity checks of saliency methods: model and data randomisation, input invariance, input and class
sensitivity, random logit, and control-validated verdicts (see each module for its paper).

Import the submodules directly: :mod:`.verdicts` is torch-free, so the report can read verdicts cheaply.
"""
