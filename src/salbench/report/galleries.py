"""Per-method galleries of the report: each method's best and worst items by one metric.

A leaderboard number averages over items; a gallery shows which items a method gets right and which it
gets wrong by that metric, with its map over the input and the target's mask outlined.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .figures import RC, _save, control_style, map_colours, plt
from .mosaic import Cell, Row, grey, map_picture, mosaic_figure

DEFAULT_PER_SIDE = 3
PREFERRED_FAMILY = "localisation"
GRID_PREFIX = "grid_localisation_"


@dataclass(frozen=True)
class Selection:
    """The gallery items of one (dataset, model, method): best first, then worst (worst last)."""

    best: list[str]
    worst: list[str]
    values: dict[str, float]


@dataclass(frozen=True)
class GalleryRow:
    """One method's row: its maps [2K,H,W] of ``items`` (best then worst) and their metric values."""

    method: str
    items: list[str]
    values: list[float]
    maps: np.ndarray
    signed: bool
    control: bool = False


def gallery_metric(options: dict[str, Any], metrics: list[str], families: dict[str, str]) -> str | None:
    """The metric the galleries sort by: ``report.gallery_metric``, else the first localisation metric, else the
    first metric; None without metrics. A configured metric the study did not score is an error."""
    chosen = options.get("gallery_metric")
    if chosen:
        if chosen not in metrics or chosen.startswith(GRID_PREFIX):
            raise ValueError(f"config key 'report.gallery_metric': {chosen!r} is not a metric scored per item; "
                             f"allowed values: {', '.join(m for m in metrics if not m.startswith(GRID_PREFIX))}")
        return str(chosen)
    per_item = [m for m in metrics if not m.startswith(GRID_PREFIX)]  # grid scores are per grid cell, not item
    preferred = [m for m in per_item if families.get(m) == PREFERRED_FAMILY]
    return (preferred or per_item or [None])[0]


def select(scores: pd.DataFrame, metric: str, higher_is_better: bool, per_side: int = DEFAULT_PER_SIDE
           ) -> dict[tuple[str, str, str], Selection]:
    """Per (dataset, model, method): its ``per_side`` best and worst scorable items on ``metric`` (ties broken by
    item id), at most half its scorable items each so best and worst never overlap."""
    usable = np.isfinite(scores["value"].to_numpy(dtype=float))
    if "map_finite" in scores.columns:
        usable &= scores["map_finite"].to_numpy(dtype=bool)
    part = scores[(scores["metric"] == metric).to_numpy() & usable]
    out = {}
    for key, group in part.groupby(["dataset", "model", "method"], sort=True):
        ordered = group.assign(oriented=group["value"] * (1.0 if higher_is_better else -1.0)).sort_values(
            ["oriented", "item"], ascending=[False, True], kind="stable")
        k = min(per_side, len(ordered) // 2)
        if k == 0:
            continue
        items = list(ordered["item"])
        out[key] = Selection(best=items[:k], worst=items[-k:],
                             values=dict(zip(ordered["item"], ordered["value"].astype(float))))
    return out


def gallery_figure(rows: list[GalleryRow], images: dict[str, np.ndarray], masks: dict[str, np.ndarray | None],
                   metric: str, path: Path) -> Path:
    """Rows = methods; columns = the method's best then worst items. Each cell: the input in grey, the map over
    it (scaled by its own max |value|; diverging if signed), the mask outlined; title = item and value."""
    mosaic = []
    for row in rows:
        cells = []
        for j, item in enumerate(row.items):
            side = "best" if j < len(row.items) // 2 else "worst"
            cells.append(Cell(overlay(images[item], row.maps[j], row.signed), mask=masks.get(item),
                              title=f"{side}: {item}\n{metric} {row.values[j]:.3g}", outline_width=0.8))
        mosaic.append(Row(row.method, cells, control_style(row.control, 7)))
    with plt.rc_context(RC):
        _save(mosaic_figure(mosaic, cell_inches=1.25), path, ("png",))
    return path.with_suffix(".png")


def overlay(image: np.ndarray, saliency: np.ndarray, signed: bool) -> np.ndarray:
    """A map (scaled by its own max |value|; diverging if signed) at alpha 0.7 over its input [C,H,W] in grey."""
    return map_picture(saliency, map_colours(saliency, signed), under=grey(image))
