"""Cost and agreement of the eMPRT and sMPRT checks against ``quantus.EfficientMPRT`` and ``quantus.SmoothMPRT``.

On the embedded default's CNN (``small_cnn``, random weights, 64 px RGB, one torch thread), per explanation
method, both checks of one method:

- **ours**: one sanity job's ``emprt`` and ``smprt`` (:class:`~salbench.sanity.run.CheckJob`, ``run_checks``),
  every layer its own stage in bottom-up order, as Quantus randomises: one cascading cascade, whose original and
  last maps give eMPRT and whose maps are the clean sample of every smoothed stage (N - 1 noisy passes per stage,
  several samples per call); the smoothed maps are compared by all five similarity measures at once;
- **quantus**: ``EfficientMPRT()`` once and ``SmoothMPRT(nr_samples=N, noise_magnitude=0.1)`` once per measure (a
  Quantus user's way to get sMPRT for several measures; each measure configured as in ``sanity.py``'s
  ``QUANTUS_MEASURES``), at their defaults otherwise (bottom-up, ``seed=42``; eMPRT only the fully randomised
  model, sMPRT every layer), called as their docstrings show: ``metric(model, x_batch, y_batch, a_batch=None,
  explain_func=quantus.explain, explain_func_kwargs={"method": ...})``.

``ratio_quantus`` compares the two for all measures (the sanity job's output; target >= 5), ``ratio_one_measure``
for ``spearman_abs`` alone (ours: one measure; Quantus: one ``SmoothMPRT`` call), where the two do about as many
explanation passes (Quantus smooths the original twice; ours reuses the cascade's maps as the clean samples).

``SmoothMPRT`` smooths ``quantus.explain`` maps whatever the ``explain_func``, so both sides explain with the same
function: ``quantus.explain`` with a captum method name, wrapped as a method on our side. Calls alternate over
``--rounds`` rounds after one warm-up each; a ratio is Quantus / ours, the median over rounds of paired process
CPU seconds. Explanation calls (``quantus.explain``, each a batch of maps) are counted on both sides (``passes``).

**Agreement.** With Quantus' seeding (``layer_seed`` patched to ``seed + 1``) and our noise draws fed to Quantus
(``np.random.randn`` patched, in Quantus' call order), the max |ours - Quantus| over items (eMPRT) and over layers
and items (sMPRT, ``spearman_abs``) is reported.

    .venv/bin/python benchmarks/newer_checks.py [--items 16] [--samples 50] [--rounds 2] [--threads 1]

Writes ``benchmarks/results/<hostname>-<YYYY-MM-DD>-newer_checks.json`` (``--out`` to put it elsewhere).
"""

from __future__ import annotations

import argparse
import statistics
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable
from unittest import mock

import numpy as np
import quantus
import torch
from methods import write_results  # the gradient-method benchmark's output
from perturbation import timed  # alternating rounds after a warm-up: (wall, CPU) seconds per call
from sanity import QUANTUS_MEASURES, paired, small_cnn_case  # Quantus per measure; paired ratios; the case
from torch import nn

from salbench.methods.base import Method
from salbench.methods.sampling import RowSampler
from salbench.sanity import randomisation
from salbench.sanity.checks import get_check
from salbench.sanity.run import CheckJob, SanitySettings, run_checks
from salbench.sanity.similarity import MEASURES

SIZE, CLASSES, SEED, NOISE = 64, 6, 42, 0.1
#: captum methods of ``quantus.explain`` (one forward and backward pass per map each)
METHODS = ("Saliency", "InputXGradient")


class QuantusExplain(Method):
    """``quantus.explain(model, x, y, method=...)`` as a method: the maps Quantus' sMPRT smooths."""

    name = "quantus_explain"
    defaults = {"method": "Saliency"}

    def attribute(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        maps = quantus.explain(model, inputs.numpy(), target.numpy(), method=self.params["method"])
        return torch.from_numpy(maps)[:, 0]


def counted(call: Callable[[], Any]) -> tuple[Any, int]:
    """``call()`` and how many times ``quantus.explain`` ran in it (explanation passes of one batch)."""
    real, passes = quantus.explain, []

    def explain(*args: Any, **kwargs: Any) -> np.ndarray:
        passes.append(1)
        return real(*args, **kwargs)

    with mock.patch.object(quantus, "explain", explain):
        return call(), len(passes)


def ours(method: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, samples: int,
         measures: tuple[str, ...] = MEASURES) -> dict[str, np.ndarray]:
    """Our eMPRT per item and sMPRT ``[stage, item]`` (``spearman_abs``) from one job comparing by ``measures``."""
    settings = SanitySettings(items=len(x), modes=("cascading",), orders=("bottom_up",), measures=measures,
                              measure="spearman_abs", smprt_samples=samples, smprt_noise=NOISE)
    job = CheckJob(QuantusExplain(method=method), model, x, y, [str(i) for i in range(len(x))], settings, SEED,
                   64, "cpu")
    table = run_checks(job, [get_check("emprt"), get_check("smprt")])
    emprt = table[(table["check"] == "emprt") & (table["statistic"] == "emprt")]["value"].to_numpy()
    smprt = table[(table["check"] == "smprt") & (table["statistic"] == "spearman_abs")]
    return {"emprt": emprt, "smprt": smprt.pivot(index="stage_index", columns="item", values="value").to_numpy()}


def theirs(method: str, model: nn.Module, x: np.ndarray, y: np.ndarray, samples: int,
           measures: tuple[str, ...] = MEASURES) -> dict[str, np.ndarray]:
    """``quantus.EfficientMPRT`` per item and one ``quantus.SmoothMPRT`` per measure, as a Quantus user calls them;
    the first measure's ``[layer, item]``."""
    explain = {"a_batch": None, "explain_func": quantus.explain, "explain_func_kwargs": {"method": method},
               "channel_first": True}
    emprt = quantus.EfficientMPRT(disable_warnings=True)(model, x, y, softmax=True, **explain)
    smprt = [quantus.SmoothMPRT(nr_samples=samples, noise_magnitude=NOISE, disable_warnings=True,
                                **QUANTUS_MEASURES[measure])(model, x, y, **explain) for measure in measures]
    return {"emprt": np.asarray(emprt), "smprt": np.array(list(smprt[0].values()))}


def agreement(method: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, samples: int) -> dict[str, float]:
    """Max |ours - Quantus| with Quantus' per-layer seeding and our noise draws in Quantus' call order."""
    sampler, calls = RowSampler(x, SEED, n_samples=max(1, samples - 1)), []

    def randn(*shape: int) -> np.ndarray:
        calls.append(len(calls) % (samples - 1))
        return sampler.normal(torch.arange(shape[0]), torch.full((shape[0],), calls[-1]), shape[1:]).double().numpy()

    with mock.patch.object(randomisation, "layer_seed", lambda seed, layer: seed + 1):
        mine = ours(method, model, x, y, samples)
    with mock.patch("numpy.random.randn", randn):
        other = theirs(method, model, x.numpy(), y.numpy(), samples, ("spearman_abs",))
    return {check: float(np.abs(mine[check] - other[check]).max()) for check in mine}


def bench(method: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, samples: int, rounds: int
          ) -> dict[str, Any]:
    """Ours against Quantus for one method: CPU and wall seconds, passes, ratio, agreement."""
    one = ("spearman_abs",)
    x_np, y_np = x.numpy(), y.numpy()
    calls = {"ours": lambda: ours(method, model, x, y, samples), "quantus": lambda: theirs(method, model, x_np, y_np,
                                                                                         samples),
             "ours_one": lambda: ours(method, model, x, y, samples, one),
             "quantus_one": lambda: theirs(method, model, x_np, y_np, samples, one)}
    passes = {key: counted(call)[1] for key, call in calls.items()}
    wall, cpu = timed(calls, rounds)
    row = {"method": method, "items": len(x), "samples": samples, "measures": list(MEASURES), "passes": passes,
           **{f"{key}_cpu_s": cpu[key] for key in calls}, **{f"{key}_wall_s": wall[key] for key in calls},
           "ratio_quantus": paired(cpu, "quantus"), "ratio_quantus_wall": paired(wall, "quantus"),
           "ratio_one_measure": paired(cpu, "quantus_one", "ours_one"),
           "ratio_one_measure_wall": paired(wall, "quantus_one", "ours_one"),
           "max_diff": agreement(method, model, x, y, samples)}
    print(f"{method:16s} passes ours {passes['ours']:4d} quantus {passes['quantus']:4d}  CPU s ours "
          f"{statistics.median(cpu['ours']):7.3f} quantus {statistics.median(cpu['quantus']):7.3f}  quantus/ours "
          f"{row['ratio_quantus']:5.2f} [one measure {row['ratio_one_measure']:5.2f}]  max |diff| eMPRT "
          f"{row['max_diff']['emprt']:.1e} sMPRT {row['max_diff']['smprt']:.1e}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=16, help="items per call")
    parser.add_argument("--samples", type=int, default=50, help="sMPRT's N on both sides (the paper's 50)")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds, ours vs Quantus")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    model, x, y = small_cnn_case(args.items, args.threads)
    rows = [bench(method, model, x, y, args.samples, args.rounds) for method in METHODS]
    total = {key: sum(statistics.median(r[f"{key}_cpu_s"]) for r in rows) for key in ("ours", "quantus")}
    print(f"{'all methods':16s} CPU s ours {total['ours']:.3f} quantus {total['quantus']:.3f}  quantus/ours "
          f"{total['quantus'] / total['ours']:.2f}")
    write_results(args.out, "newer_checks", {
        "threads": args.threads, "device": "cpu",
        "model": f"small_cnn (random weights), {SIZE} px, {args.items} items, sMPRT N = {args.samples}",
        "versions": {name: version(name) for name in ("torch", "quantus", "numpy", "scipy")},
        "note": "ratio_quantus = quantus.EfficientMPRT + one quantus.SmoothMPRT per measure / our one job's emprt + "
                "smprt (all measures); ratio_one_measure: spearman_abs only on both sides; medians over rounds of "
                "paired process CPU seconds (*_wall: wall seconds); passes: quantus.explain calls per side; "
                "max_diff: with Quantus' seeding and our noise draws",
        "results": rows})


if __name__ == "__main__":
    main()
