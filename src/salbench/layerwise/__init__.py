"""Layer-wise interpretable network visualisations (INV; Bianchi et al., IJCAI 2024, arXiv:2405.03301).

Reference code: ``Antonio-Dee/interpretable-network-visualizations`` (``Code/Feature Map Analysis/main.ipynb``,
``Code/Human Knowledge Collection/heatmap_utils.py``, ``Code/Label Analysis/``); each module names the files it
follows.
"""
