"""Batched per-item similarity of two saliency-map stacks, as in the sanity checks of Adebayo et al.

Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim, "Sanity Checks for Saliency Maps", NeurIPS 2018
(arXiv:1810.03292), compare each randomised model's map with the original map by

- ``spearman_abs``: Spearman rank correlation of absolute-value maps, each clipped at its 99th
  percentile and scaled to [0, 1];
- ``spearman_signed``: Spearman rank correlation of signed maps divided by the 99th percentile of
  their absolute values and clipped to [-1, 1];
- ``ssim``: structural similarity (scikit-image, ``gaussian_weights=True``, data range 1) of maps
  min-max scaled to [0, 1], here as a batched torch port that matches scikit-image;
- ``hog_spearman``: Spearman rank correlation of the HOG features (scikit-image's ``hog``, here as a
  batched torch port) of the min-max maps, with cells scaled from Adebayo et al.'s 16 px at 299 px.

``topk_intersection`` is the share of the top-k pixels (by absolute value) the two maps have in common,
the intersection measure of Ghorbani, Abid & Zou, "Interpretation of Neural Networks is Fragile",
AAAI 2019 (arXiv:1710.10547).

Each measure is split into ``prepare`` (one map stack to its representation: ranks, normalised maps,
top-k masks) and ``compare`` (two representations to one value per item, broadcasting over leading
dims), so a reference stack (the original model's maps) is prepared once and compared with every
randomisation stage. Every value is float64 on the maps' device; Spearman ranks average ties as
:func:`scipy.stats.spearmanr` does and a constant map gives NaN, as there.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch

from ..params import ParamError
from ..stats import average_ranks, min_max, pearson

MEASURES: tuple[str, ...] = ("spearman_abs", "spearman_signed", "ssim", "hog_spearman", "topk_intersection")

#: Adebayo et al. clip and scale maps at this percentile of their absolute values
CLIP_PERCENTILE = 99.0
#: scikit-image's SSIM with ``gaussian_weights=True``: sigma, truncation, K1, K2
SSIM_SIGMA, SSIM_TRUNCATE, SSIM_K1, SSIM_K2 = 1.5, 3.5, 0.01, 0.03
#: Adebayo et al. use 16 px HOG cells on 299 px Inception v3 inputs; cells scale with the image side
HOG_CELL_PX, HOG_REFERENCE_SIZE = 16, 299


def sort_rows(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ordered, order)`` of each row of ``[N,L]``, ascending. On the CPU numpy's vectorised sort is 3-4x
    torch's (measured: 16 x 29,241 float64 HOG features); ties may come in any order, so callers must not
    depend on it (average ranks and percentiles do not)."""
    if values.device.type != "cpu":
        return values.sort(dim=1)
    order = torch.from_numpy(np.argsort(values.detach().numpy(), axis=1))
    return values.gather(1, order), order


def percentile(values: torch.Tensor, q: float) -> torch.Tensor:
    """Per-row ``q``-th percentile of ``[N,L]`` values, linearly interpolated like :func:`numpy.percentile`."""
    ordered = sort_rows(values)[0]
    position = q / 100 * (values.shape[1] - 1)
    low, frac = math.floor(position), position - math.floor(position)
    high = min(low + 1, values.shape[1] - 1)
    return ordered[:, low] + frac * (ordered[:, high] - ordered[:, low])


def _safe_divide(values: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``values [N,L] / scale [N]``, with rows of zero scale mapped to zero."""
    scale = scale[:, None]
    return torch.where(scale > 0, values / scale.clamp_min(torch.finfo(values.dtype).tiny), torch.zeros_like(values))


def abs_normalise(maps: torch.Tensor) -> torch.Tensor:
    """``[N,H,W]`` -> ``[N,H*W]`` float64: ``|map|`` clipped at its 99th percentile and divided by it."""
    values = maps.flatten(1).to(torch.float64).abs()
    top = percentile(values, CLIP_PERCENTILE)
    return _safe_divide(torch.minimum(values, top[:, None]), top)


def signed_normalise(maps: torch.Tensor) -> torch.Tensor:
    """``[N,H,W]`` -> ``[N,H*W]`` float64: map divided by the 99th percentile of ``|map|``, clipped to [-1, 1]."""
    values = maps.flatten(1).to(torch.float64)
    return _safe_divide(values, percentile(values.abs(), CLIP_PERCENTILE)).clamp(-1.0, 1.0)


def minmax_normalise(maps: torch.Tensor) -> torch.Tensor:
    """``[N,H,W]`` float64 maps min-max scaled to [0, 1] per item (a constant map becomes zeros)."""
    return min_max(maps.flatten(1).to(torch.float64)).view(maps.shape)


def _symmetric_index(length: int, radius: int, device: torch.device) -> torch.Tensor:
    """Indices extending ``0..length-1`` by ``radius`` a side, mirrored with the edge repeated (scipy 'reflect')."""
    index = torch.arange(-radius, length + radius, device=device)
    index = torch.where(index < 0, -index - 1, index)
    return torch.where(index >= length, 2 * length - 1 - index, index)


def _filter_matrix(length: int, kernel: torch.Tensor) -> torch.Tensor:
    """``[L,L]`` matrix correlating a length-``L`` signal with the odd ``kernel``, mirrored edges (scipy 'reflect')."""
    radius = kernel.shape[0] // 2
    rows = torch.arange(length, device=kernel.device)[:, None].expand(length, kernel.shape[0])
    cols = _symmetric_index(length, radius, kernel.device)[rows + torch.arange(kernel.shape[0], device=kernel.device)]
    matrix = torch.zeros(length, length, dtype=kernel.dtype, device=kernel.device)
    return matrix.index_put_((rows, cols), kernel.expand(length, -1), accumulate=True)


def gaussian_filter(images: torch.Tensor, sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE) -> torch.Tensor:
    """Gaussian blur of ``[B,H,W]`` as :func:`scipy.ndimage.gaussian_filter` (mode 'reflect'): two matrix products."""
    radius = int(truncate * sigma + 0.5)
    height, width = images.shape[-2:]
    if radius >= min(height, width):
        raise ValueError(f"gaussian_filter: {height}x{width} px images are smaller than the {radius} px filter radius")
    taps = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    return _filter_matrix(height, kernel) @ images @ _filter_matrix(width, kernel).T


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM of broadcastable ``[..., H, W]`` image stacks, float64, equal to scikit-image's
    ``structural_similarity(a, b, gaussian_weights=True, data_range=data_range)``.

    Wang, Bovik, Sheikh & Simoncelli, "Image Quality Assessment: From Error Visibility to Structural
    Similarity", IEEE TIP 13(4), 2004, with scikit-image's defaults: an 11-tap Gaussian window
    (sigma 1.5), sample covariances (``N/(N-1)`` with N = 121), K1 = 0.01, K2 = 0.03, and the mean
    taken over the image minus a 5 px border.
    """
    a, b = torch.broadcast_tensors(a.to(torch.float64), b.to(torch.float64))
    lead, (height, width) = a.shape[:-2], a.shape[-2:]
    a, b = a.reshape(-1, height, width), b.reshape(-1, height, width)
    radius = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    cov_norm = (2 * radius + 1) ** 2 / ((2 * radius + 1) ** 2 - 1)
    ux, uy, uxx, uyy, uxy = gaussian_filter(torch.cat([a, b, a * a, b * b, a * b])).chunk(5)
    vx, vy, vxy = cov_norm * (uxx - ux * ux), cov_norm * (uyy - uy * uy), cov_norm * (uxy - ux * uy)
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return s[:, radius:height - radius, radius:width - radius].mean(dim=(-2, -1)).reshape(lead)


def hog_cell_size(height: int, width: int) -> int:
    """HOG cell side in px: Adebayo et al.'s 16 px at 299 px, scaled with the shorter side (at least 2 px)."""
    return max(2, round(HOG_CELL_PX * min(height, width) / HOG_REFERENCE_SIZE))


def _gradients(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences along rows and columns of ``[N,H,W]``, zero on the first and last row/column."""
    rows, cols = torch.zeros_like(images), torch.zeros_like(images)
    rows[:, 1:-1, :] = images[:, 2:, :] - images[:, :-2, :]
    cols[:, :, 1:-1] = images[:, :, 2:] - images[:, :, :-2]
    return rows, cols


def _cell_histograms(magnitude: torch.Tensor, bins: torch.Tensor, cell: int, orientations: int) -> torch.Tensor:
    """``[N,rows,cols,orientations]`` float64 mean gradient magnitude per cell and orientation bin.

    Accumulated in float32, pixel by pixel in row-major order within each cell, and divided by the cell
    area in float32, exactly as scikit-image's Cython kernel does, so equal histograms tie as they do there.
    """
    n, height, width = magnitude.shape
    rows, cols = height // cell, width // cell

    def by_cell(values: torch.Tensor) -> torch.Tensor:  # [N,rows,cols,cell*cell], row-major within a cell
        return values.reshape(n, rows, cell, cols, cell).permute(0, 1, 3, 2, 4).reshape(n, rows, cols, cell * cell)

    magnitude, bins = by_cell(magnitude), by_cell(bins)
    total = torch.zeros(n, rows, cols, orientations, dtype=torch.float32, device=magnitude.device)
    for pixel in range(cell * cell):
        vote = torch.zeros_like(total, dtype=torch.float64).scatter_(
            -1, bins[..., pixel, None], magnitude[..., pixel, None])
        total = (total.to(torch.float64) + vote).to(torch.float32)
    return (total / torch.tensor(cell * cell, dtype=torch.float32)).to(torch.float64)


def hog_features(maps: torch.Tensor, cell: int | None = None, orientations: int = 9, block: int = 3,
                 eps: float = 1e-5) -> torch.Tensor:
    """``[N,H,W]`` maps -> ``[N,F]`` float64 HOG features, a batched port of :func:`skimage.feature.hog`.

    Dalal & Triggs, "Histograms of Oriented Gradients for Human Detection", CVPR 2005, with
    scikit-image's defaults: central-difference gradients, unsigned orientations in ``orientations``
    hard bins over [0, 180), non-overlapping ``cell`` px cells (magnitude sums divided by the cell
    area; rows/columns past the last whole cell dropped), ``block`` x ``block``-cell blocks at a
    one-cell stride, L2-Hys normalisation (clip at 0.2), features in scikit-image's order, cell
    histograms accumulated in single precision as there (:func:`_cell_histograms`).
    """
    images = maps.to(torch.float64)
    n, height, width = images.shape
    cell = cell or hog_cell_size(height, width)
    rows, cols = height // cell, width // cell
    if min(rows, cols) < block:
        raise ValueError(f"hog_features: {height}x{width} px maps hold fewer than {block} cells of {cell} px a side")
    g_row, g_col = _gradients(images)
    magnitude = torch.hypot(g_row, g_col)[:, :rows * cell, :cols * cell]
    angle = torch.rad2deg(torch.atan2(g_row, g_col)) % 180
    edges = torch.arange(1, orientations, dtype=torch.float64, device=images.device) * (180 / orientations)
    bins = torch.bucketize(angle[:, :rows * cell, :cols * cell].contiguous(), edges, right=True)
    hist = _cell_histograms(magnitude, bins, cell, orientations)
    blocks = hist.unfold(1, block, 1).unfold(2, block, 1).permute(0, 1, 2, 4, 5, 3)  # [N,by,bx,block,block,o]

    def l2_normalise(values: torch.Tensor) -> torch.Tensor:
        return values / (values.pow(2).sum(dim=(3, 4, 5), keepdim=True) + eps**2).sqrt()

    return l2_normalise(l2_normalise(blocks).clamp(max=0.2)).flatten(1)


def topk_mask(maps: torch.Tensor, fraction: float) -> torch.Tensor:
    """``[N,H*W]`` bool: the ``round(fraction * H * W)`` (at least 1) pixels of largest ``|map|`` per item."""
    values = maps.flatten(1).abs()
    k = max(1, round(fraction * values.shape[1]))
    index = values.topk(k, dim=1).indices
    return torch.zeros_like(values, dtype=torch.bool).scatter_(1, index, True)


def topk_share(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Share of ``a``'s top-k pixels also in ``b``'s (broadcastable ``[..., L]`` masks with k pixels each)."""
    return (a & b).sum(dim=-1).to(torch.float64) / a.sum(dim=-1)


class Similarity:
    """Per-item similarity measures of two map stacks, each prepared once and compared many times.

    ``top_k`` is the fraction of pixels in the top-k intersection; ``hog_cell`` the HOG cell side in px
    (default: :func:`hog_cell_size`).
    """

    def __init__(self, measures: Sequence[str] = MEASURES, top_k: float = 0.1, hog_cell: int | None = None) -> None:
        unknown = sorted(set(measures) - set(MEASURES))
        if unknown:
            raise ParamError(f"unknown similarity measure {unknown[0]!r}; allowed: {', '.join(MEASURES)}")
        if not 0 < top_k <= 1:
            raise ParamError(f"similarity top_k must be a fraction in (0, 1], got {top_k!r}")
        if hog_cell is not None and hog_cell < 2:
            raise ParamError(f"similarity hog_cell must be >= 2 px, got {hog_cell!r}")
        self.measures = tuple(measures)
        self.top_k = top_k
        self.hog_cell = hog_cell

    def restrict(self, *measures: str) -> "Similarity":
        """The same settings with only ``measures``."""
        return Similarity(measures, self.top_k, self.hog_cell)

    def _preparers(self) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
        return {
            "spearman_abs": lambda maps: average_ranks(abs_normalise(maps)),
            "spearman_signed": lambda maps: average_ranks(signed_normalise(maps)),
            "ssim": minmax_normalise,
            "hog_spearman": lambda maps: average_ranks(hog_features(minmax_normalise(maps), self.hog_cell)),
            "topk_intersection": lambda maps: topk_mask(maps, self.top_k),
        }

    def prepare(self, maps: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each measure's representation of ``[N,H,W]`` maps."""
        preparers = self._preparers()
        return {measure: preparers[measure](maps) for measure in self.measures}

    def compare(self, a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-item values (float64) of two prepared stacks; leading dims broadcast (``[1,N]`` vs ``[S,N]``)."""
        comparers = {"spearman_abs": pearson, "spearman_signed": pearson, "ssim": ssim,
                     "hog_spearman": pearson, "topk_intersection": topk_share}
        return {measure: comparers[measure](a[measure], b[measure]) for measure in self.measures}

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-item similarity ``[N]`` of map stacks ``a`` and ``b`` (``[N,H,W]``) for every measure."""
        if a.shape != b.shape:
            raise ValueError(f"map stacks differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
        return self.compare(self.prepare(a), self.prepare(b))
