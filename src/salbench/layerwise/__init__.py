"""Layer-wise interpretable network visualisations (INV; Bianchi et al., IJCAI 2024, arXiv:2405.03301)."""
