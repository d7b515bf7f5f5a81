"""Operators and host syncs each method issues per batch, against the direct library call on the same batch.

A load-independent companion to ``methods.py``: on a GPU a small model is launch-bound, so the number of
operators a call dispatches (each about one kernel launch) and the points where the host waits for the
device (``.item()``, ``.tolist()``, ``.numpy()``, tensors built from Python data) predict the throughput gap
to the library far better than CPU timings on a shared machine. Each (model, method) pair of ``methods.py``
(same models, batches, parameters and reference calls) runs once to warm up, then once under
``torch.profiler`` (CPU activity) per side. Counted:

* ``ops``: leaf ``aten::`` operators (those that call no other ``aten::`` operator), forward and backward;
* ``compute_ops``: those less the metadata-only ones that launch no kernel (views, ``empty``, ``detach``, ...);
* ``syncs``: ``aten::_local_scalar_dense`` (``.item()``, ``int(t)``), ``aten::lift_fresh`` (``torch.tensor``
  of Python data: a host-to-device copy on a GPU) and calls of ``Tensor.tolist`` / ``Tensor.numpy`` (a
  device-to-host copy on a GPU; invisible to the profiler on a CPU, so counted by wrapping them).

``ratio_compute_ops`` = ours / library (lower is better; target <= 1.05), ``extra_syncs`` = ours - library
(target <= 0). Single-pass gradient methods also report the bare forward+backward floor's counts. The counts
do not depend on the pixel count, so ResNet50 runs at ``--resnet-size`` (64 px by default, not 224) to keep
the run short; the sampling methods keep ``methods.py``'s chunking, which sets their per-chunk counts. The
noise wrappers draw several chunks' noise at once on a GPU and one chunk's at a time on the CPU
(:data:`salbench.methods.noise.NOISE_BLOCK_ELEMENTS`): the GPU's way is counted on either device.

    .venv/bin/python benchmarks/op_counts.py [--models small_cnn resnet50] [--methods smoothgrad deconvnet]
                                             [--resnet-size 64] [--device cpu]

Writes ``benchmarks/results/<hostname>-<YYYY-MM-DD>-op_counts.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from methods import SINGLE_PASS, cases, device_name, forward_backward, setups, write_results
from torch.profiler import ProfilerActivity, profile

from salbench.methods import create_method, noise

#: leaf operators that only make metadata (views, allocations, aliases): no kernel on any device
NO_KERNEL = frozenset(f"aten::{name}" for name in (
    "view", "_unsafe_view", "as_strided", "_reshape_alias", "reshape", "expand", "expand_as", "t", "transpose",
    "permute", "unsqueeze", "squeeze", "select", "slice", "narrow", "unbind", "split", "split_with_sizes", "chunk",
    "detach", "detach_", "alias", "lift_fresh", "resolve_conj", "resolve_neg", "empty", "empty_strided",
    "empty_like", "set_", "result_type", "is_nonzero", "view_as", "flatten", "unflatten", "contiguous",
    "requires_grad_", "_has_compatible_shallow_copy_type", "numpy_T", "_to_copy_meta", "movedim", "diagonal",
    "_local_scalar_dense", "item", "size", "stride", "is_same_size", "dim", "output_nr", "_version",
    "to", "type_as", "_to_copy_meta",  # a leaf ``to`` is a no-op (a real conversion calls ``_to_copy``)
))
SYNC_OPS = ("aten::_local_scalar_dense", "aten::lift_fresh")
#: Tensor methods that copy to the host (on a GPU) without dispatching an operator the profiler sees on a CPU
HOST_COPIES = ("tolist", "numpy")


@contextlib.contextmanager
def counting_host_copies() -> Iterator[Counter]:
    """Count calls of :data:`HOST_COPIES` within the block (the originals are restored in a ``finally``)."""
    calls: Counter = Counter()
    originals = {name: getattr(torch.Tensor, name) for name in HOST_COPIES}

    def wrap(name: str, original: Callable) -> Callable:
        def counted(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return original(self, *args, **kwargs)
        return counted

    try:
        for name, original in originals.items():
            setattr(torch.Tensor, name, wrap(name, original))
        yield calls
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


def leaf_operators(events: list[Any]) -> Counter:
    """Names of the ``aten::`` events that have no ``aten::`` child, counted."""
    return Counter(e.name for e in events if e.name.startswith("aten::")
                   and not any(c.name.startswith("aten::") for c in e.cpu_children))


def count(call: Callable[[], torch.Tensor]) -> dict[str, Any]:
    """Operators and syncs of one call of ``call`` (after one warm-up call)."""
    call()
    with counting_host_copies() as copies, profile(activities=[ProfilerActivity.CPU]) as prof:
        call()
    ops = leaf_operators(list(prof.events()))
    compute = Counter({name: n for name, n in ops.items() if name not in NO_KERNEL})
    syncs = sum(ops[name] for name in SYNC_OPS) + sum(copies.values())
    return {"ops": sum(ops.values()), "compute_ops": sum(compute.values()), "syncs": syncs,
            "sync_detail": {**{name: ops[name] for name in SYNC_OPS if ops[name]}, **copies},
            "by_op": dict(compute.most_common())}


def differences(ours: dict[str, int], theirs: dict[str, int], top: int = 8) -> dict[str, int]:
    """The ``top`` operators whose counts differ most (ours - library)."""
    diff = {name: ours.get(name, 0) - theirs.get(name, 0) for name in {*ours, *theirs}}
    return dict(sorted(((k, v) for k, v in diff.items() if v), key=lambda kv: (-abs(kv[1]), kv[0]))[:top])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["small_cnn", "resnet50"])
    parser.add_argument("--methods", nargs="+", help="only these methods (default: every one with a reference)")
    parser.add_argument("--resnet-size", type=int, default=64, help="ResNet50 input size (counts do not depend on it)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning)  # captum's notices about temporary hooks
    noise.NOISE_BLOCK_ELEMENTS["cpu"] = noise.NOISE_BLOCK_ELEMENTS["gpu"]  # count the GPU's code path
    device = torch.device(args.device)
    print(f"{'model':10s} {'method':24s} {'ours':>6s} {'lib':>6s} {'ratio':>6s} {'syncs':>9s} {'floor':>6s}  "
          "largest differences (ours - library)")
    results = []
    for s in setups(args.models, device):
        if s.name == "resnet50":
            s = dataclasses.replace(s, size=args.resnet_size)
        x = torch.rand(s.batch, 3, s.size, s.size, generator=torch.Generator().manual_seed(1)).to(device)
        target = (torch.arange(s.batch) % 6).to(device)
        for name, params, label, reference in cases(s):
            if reference is None or (args.methods and name not in args.methods):
                continue
            method = create_method(name, **params)
            ours = count(lambda: method.attribute(s.model, x, target))
            theirs = count(lambda: reference(s.model, x, target))
            row: dict[str, Any] = {
                "model": s.name, "method": name, "params": method.params, "batch": s.batch, "size": s.size,
                "reference": label, "ours": ours, "library": theirs,
                "ratio_ops": ours["ops"] / theirs["ops"],
                "ratio_compute_ops": ours["compute_ops"] / theirs["compute_ops"],
                "extra_syncs": ours["syncs"] - theirs["syncs"],
                "differences": differences(ours["by_op"], theirs["by_op"]),
            }
            if name in SINGLE_PASS:
                row["floor"] = count(lambda: forward_backward(s.model, x, target))
            results.append(row)
            floor = f"{row['floor']['compute_ops']:6d}" if "floor" in row else "     -"
            syncs = f"{ours['syncs']}/{theirs['syncs']}"
            top = ", ".join(f"{k.removeprefix('aten::')} {v:+d}" for k, v in list(row["differences"].items())[:4])
            print(f"{s.name:10s} {name:24s} {ours['compute_ops']:6d} {theirs['compute_ops']:6d} "
                  f"{row['ratio_compute_ops']:6.3f} {syncs:>9s} {floor}  {top}", flush=True)
    payload = {
        "device": device_name(device), "torch": torch.__version__, "resnet_size": args.resnet_size,
        "note": "per batch: compute_ops = leaf aten operators that launch a kernel (forward and backward), syncs = "
                "host waits (.item, tolist, numpy, torch.tensor of Python data); ratio_compute_ops = ours / "
                "library (<= 1.05 wanted), extra_syncs = ours - library (<= 0 wanted)",
        "results": results,
    }
    write_results(args.out, "op_counts", payload)


if __name__ == "__main__":
    main()
