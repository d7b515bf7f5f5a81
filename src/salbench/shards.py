"""Sharding: a data set's items split into contiguous ranges, one GPU job per range, gathered afterwards.

With ``datasets.<d>.shard_size`` set, the saliency and score jobs of data set ``d`` each run on items
``[start, stop)`` of the data store (``--items START:STOP``), and a cheap gather job rebuilds the store or
table an unsharded job writes, at the same path. A shard's range is a whole number of batches (the config
requires ``shard_size`` to be a multiple of ``batch_size``), so every batch holds the same items as in the
unsharded run; methods and metrics seed per batch or per item content, never from a running state, so a
gathered result equals the unsharded one bit for bit.

The functions the workflow calls while planning (:func:`shard_ranges`, :func:`store_size`) import nothing
heavy: every cluster job re-parses the Snakefile.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

#: attr of a shard's store: ``{"start", "stop", "items"}`` (its range and the data store's item count)
SHARD_ATTR = "shard"
#: attr of a gathered store: one entry per shard, its range, run times and provenance
SHARDS_ATTR = "shards"
#: attrs that list items of the store (``saliency``'s non-finite maps): a gathered store lists every shard's
PER_ITEM_ATTRS = ("nonfinite_items",)


def shard_ranges(n_items: int, shard_size: int) -> list[tuple[int, int]]:
    """The ``[start, stop)`` ranges of ``n_items`` items in shards of ``shard_size`` (the last may be shorter).

    An empty data set is one empty shard, so that every data set has at least one job.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    if n_items < 0:
        raise ValueError(f"n_items must be at least 0, got {n_items}")
    if n_items == 0:
        return [(0, 0)]
    return [(start, min(start + shard_size, n_items)) for start in range(0, n_items, shard_size)]


def merged_groups_warning(sharded: Sequence[str], group_components: Mapping[str, int], local: bool) -> str | None:
    """The warning for a sharded study on a cluster whose group jobs join several components, else None.

    A sharded data set's preparation is a checkpoint, and Snakemake 9.27 re-forms group jobs when one completes:
    with ``group-components`` above 1 it re-merges groups it merged before, and one job can then sit in two
    cluster jobs that run it at once (snakemake/snakemake#1628; workflow/rules/data.smk)."""
    merged = sorted(group for group, n in group_components.items() if n > 1)
    if not sharded or not merged or local:
        return None
    return (f"a sharded study with group-components above 1 ({', '.join(merged)}): after the data checkpoint "
            "Snakemake 9.27 may put a job into two cluster jobs that run it at once; set them to 1 in the profile "
            "to rule it out (README, Running on a cluster, Sharding)")


def parse_items(text: str) -> tuple[int, int]:
    """``"START:STOP"`` -> ``(start, stop)`` with ``0 <= start <= stop`` (the command line's ``--items``)."""
    parts = text.split(":")
    try:
        start, stop = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"item range {text!r} is not START:STOP with two integers") from None
    if not 0 <= start <= stop:
        raise ValueError(f"item range {text!r} needs 0 <= START <= STOP")
    return start, stop


def store_size(path: str | Path) -> int:
    """Items of a zarr v3 store written by :func:`salbench.store.write_store`, from its metadata only."""
    meta = Path(path) / "item" / "zarr.json"
    try:
        return int(json.loads(meta.read_text())["shape"][0])
    except (OSError, KeyError, IndexError, ValueError) as err:
        raise ValueError(f"cannot read the item count of store {path} from {meta}: {err}") from err


def select_items(data: Any, items: tuple[int, int] | None) -> tuple[Any, dict[str, Any]]:
    """The items ``[start, stop)`` of a data store in memory (all of it for ``None``) and the shard attrs to record."""
    from .store import check_item_range

    if items is None:
        return data, {}
    n = int(data.sizes["item"])
    check_item_range(*items, n)
    return data.isel(item=slice(*items)), _shard_attrs(items, n)


def open_items(path: str | Path, items: tuple[int, int] | None) -> tuple[Any, dict[str, Any]]:
    """The items ``[start, stop)`` of the store at ``path`` (all of it for ``None``), reading and verifying only
    the chunks that hold them, and the shard attrs to record."""
    from .store import open_store

    if items is None:
        return open_store(path), {}
    return open_store(path, items=items), _shard_attrs(items, store_size(path))


def _shard_attrs(items: tuple[int, int], n: int) -> dict[str, Any]:
    return {SHARD_ATTR: {"start": items[0], "stop": items[1], "items": n}}


def _runtime_key(key: str) -> bool:
    """Attrs that say how long or where a job ran, not what it computed."""
    return key in ("provenance", "seconds") or key.endswith(("_s", "_seconds"))


def shard_coverage(paths: Sequence[str | Path], shards: Sequence[dict[str, int] | None],
                   sizes: Sequence[int | None]) -> list[tuple[int, int, int]]:
    """``(start, stop, items)`` of each shard after checking that the shards (their ``shard`` attrs, in order)
    cover the data store's items exactly: none missing, none overlapping, each holding ``sizes`` items (its range;
    ``None``: not known)."""
    ranges = []
    for path, shard, size in zip(paths, shards, sizes):
        if not shard:
            raise ValueError(f"{path} is not a shard (no {SHARD_ATTR!r} attr)")
        if size is not None and shard["stop"] - shard["start"] != size:
            raise ValueError(f"shard {path} holds {size} items, not its range {shard['start']}:{shard['stop']}")
        ranges.append((shard["start"], shard["stop"], shard["items"]))
    total = ranges[0][2]
    expected = 0
    for path, (start, stop, items) in zip(paths, ranges):
        if items != total or start != expected:
            raise ValueError(f"shards do not cover the {total} items in order: {path} holds {start}:{stop} of "
                             f"{items}, expected a shard from item {expected} of {total}")
        expected = stop
    if expected != total:
        raise ValueError(f"shards cover items 0:{expected} of {total}: shards are missing")
    return ranges


def gather_maps(paths: Sequence[str | Path], out: str | Path) -> Any:
    """Concatenate shard stores (in order) into the store the unsharded job writes; write ``out`` atomically.

    The shards must cover the data store's items exactly, in order, and agree on every attr but run times and
    provenance (the same method, params, seed, checkpoint, data store). The gathered store's attrs are the
    shards' with run times summed, the first shard's provenance, and ``shards``: each shard's range, run times
    and provenance.
    """
    import xarray as xr

    from .store import CHUNK_CHECKSUMS_ATTR, object_strings, open_store, write_store

    if not paths:
        raise ValueError("no shards to gather")
    stores = [open_store(p) for p in paths]
    ranges = shard_coverage(paths, [ds.attrs.get(SHARD_ATTR) for ds in stores], [ds.sizes["item"] for ds in stores])
    own = (SHARD_ATTR, "content_sha256", CHUNK_CHECKSUMS_ATTR, *PER_ITEM_ATTRS)
    computed = [{k: v for k, v in ds.attrs.items() if not _runtime_key(k) and k not in own} for ds in stores]
    for path, attrs in zip(paths[1:], computed[1:]):
        differing = sorted(k for k in attrs.keys() | computed[0].keys() if attrs.get(k) != computed[0].get(k))
        if differing:
            raise ValueError(f"shard {path} differs from {paths[0]} in attrs {', '.join(differing)}: "
                             "shards of different runs cannot be gathered")
    runtime = [{k: v for k, v in ds.attrs.items() if _runtime_key(k)} for ds in stores]
    attrs = dict(computed[0])
    for key in PER_ITEM_ATTRS:
        if key in stores[0].attrs:
            attrs[key] = [item for ds in stores for item in ds.attrs.get(key, [])]
    for key, value in runtime[0].items():
        attrs[key] = sum(r[key] for r in runtime) if isinstance(value, (int, float)) else value
    attrs[SHARDS_ATTR] = [{"start": start, "stop": stop, **r} for (start, stop, _), r in zip(ranges, runtime)]
    ds = xr.concat([s.drop_encoding() for s in stores], dim="item", data_vars="minimal", coords="minimal",
                   compat="equals", join="exact", combine_attrs="drop")
    ds = ds.assign_coords(item=object_strings(ds["item"].values))
    ds.attrs = attrs
    write_store(ds, out)
    return ds


def gather_tables(paths: Sequence[str | Path], out: str | Path) -> Any:
    """Concatenate tidy shard tables (``score``'s scores or curves: one block of items per metric) into the
    unsharded job's table: metric by metric in the shards' metric order, items in shard order; write ``out``
    atomically. Each shard table records its range (attr ``shard``); the shards must cover the items exactly,
    and every metric of a shard must hold each of its items (one row per item, or one per point of a curve)."""
    import pandas as pd

    from .store import read_table, table_attrs, write_table

    if not paths:
        raise ValueError("no shards to gather")
    tables = [read_table(p) for p in paths]
    order = list(dict.fromkeys(tables[0]["metric"]))
    sizes = []
    for path, table in zip(paths, tables):
        metrics = list(dict.fromkeys(table["metric"]))
        if metrics != order:
            raise ValueError(f"shard {path} has metrics {metrics}, {paths[0]} has {order}")
        counts = table.groupby("metric", sort=False)["item"].nunique()
        if counts.nunique() > 1:
            raise ValueError(f"shard {path} has different item counts per metric: {counts.to_dict()}")
        sizes.append(int(counts.iloc[0]) if len(counts) else None)  # a table without metrics holds no items
        for column in ("dataset", "model", "method"):
            if column in table and set(table[column]) != set(tables[0][column]):
                raise ValueError(f"shard {path} is of {column} {sorted(set(table[column]))}, {paths[0]} of "
                                 f"{sorted(set(tables[0][column]))}")
    shard_coverage(paths, [table_attrs(p).get(SHARD_ATTR) for p in paths], sizes)
    table = pd.concat(tables, ignore_index=True)
    rank = table["metric"].map({m: k for k, m in enumerate(order)})
    table = table.iloc[rank.argsort(kind="stable")].reset_index(drop=True)
    table.attrs = {}
    write_table(table, out)
    return table


def gather(paths: Sequence[str | Path], out: str | Path) -> Any:
    """Gather shard stores (``.zarr``) or tables (``.parquet``) into ``out``, by its suffix."""
    suffix = Path(out).suffix
    if suffix == ".zarr":
        return gather_maps(paths, out)
    if suffix == ".parquet":
        return gather_tables(paths, out)
    raise ValueError(f"cannot gather into {out}: expected a .zarr store or a .parquet table")
