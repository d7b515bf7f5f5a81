"""``salbench explain``: one method's maps for a few image files, as overlay PNGs (no workflow, no data store).

The model is a registered architecture with published weights (e.g. ``tv_resnet50``, fetched into the
weights cache), a salbench checkpoint (written by ``train`` or ``fetch-model``), or a TorchScript file
(with its input size and normalisation given). Each image is resized to the model's input size; the
target is the given class or else the model's top class. The overlay is the image blended with the map
through a colour map: a signed map on a diverging one (blue negative, red positive) scaled by its largest
absolute value, a non-negative map on a sequential one scaled by its maximum: the colours show each map's
own range, not a comparison across images.

A wrong input (a file that is no image, a missing or empty one, a folder, an unknown method, an ``--out``
that is a file) is a :class:`ValueError` naming it, raised before the model is loaded where it can be.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np
import torch

from .models.base import NormalizedClassifier, to_device

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: share of the map's colour in the overlay
ALPHA = 0.5


def load_explained_model(model: str, input_size: int | None = None, mean: Sequence[float] | None = None,
                         std: Sequence[float] | None = None) -> NormalizedClassifier:
    """A model from a registered architecture name, a salbench checkpoint or a TorchScript file."""
    from .models import ARCHS, load_checkpoint
    from .models.base import CheckpointError

    path = Path(model)
    if path.is_dir():
        raise ValueError(f"--model {model}: is a folder; pass a checkpoint (.pt) or TorchScript file, or a registered "
                         "architecture")
    if not path.is_file():
        if model not in ARCHS:
            raise ValueError(f"--model {model!r} is neither a file nor a registered architecture; architectures: "
                             f"{', '.join(ARCHS.names())}")
        offered = ARCHS.get(model).spec.extra.get("pretrained", [])
        if not offered:
            raise ValueError(f"--model {model!r} has no published weights; pass a checkpoint trained with "
                             "`salbench train` (or run the workflow) instead")
        from .models.pretrained import pretrained_model

        return pretrained_model(model, offered[0])
    try:
        return load_checkpoint(path)
    except CheckpointError as checkpoint_error:
        try:
            with _quiet_torchscript():
                torch.jit.load(str(path), map_location="cpu")  # tells a TorchScript file from a broken file
        except Exception:
            raise ValueError(f"--model {path}: neither a salbench checkpoint nor a TorchScript file "
                             f"({checkpoint_error})") from None
    from .model_config import user_spec
    from .models.user import rebuild_user_model

    entry = {"source": "torchscript", "input_size": input_size or 224, "mean": list(mean or IMAGENET_MEAN),
             "std": list(std or IMAGENET_STD)}
    source = {"source": "torchscript", "name": None, "spec": user_spec(path.stem, entry),
              "torchscript": path.read_bytes()}
    with _quiet_torchscript():
        return rebuild_user_model(source).eval()


@contextlib.contextmanager
def _quiet_torchscript() -> Iterator[None]:
    """Without torch's deprecation warning of ``torch.jit.load``: an error is then the only line on stderr."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* deprecated", category=FutureWarning)
        yield


def read_image(path: Path) -> PILImage:
    """The image in file ``path`` as RGB, fully decoded; a :class:`ValueError` naming the file if it is none."""
    from PIL import Image, UnidentifiedImageError

    if path.is_dir():
        raise ValueError(f"image {path} is a folder; name image files")
    if not path.exists():
        raise ValueError(f"image {path} does not exist")
    try:
        if path.stat().st_size == 0:
            raise ValueError(f"image {path} is empty (0 bytes)")
        with Image.open(path) as image:
            return image.convert("RGB")  # decodes every pixel: a truncated file fails here, not later
    except UnidentifiedImageError:
        raise ValueError(f"image {path} is not an image file (Pillow cannot identify its format)") from None
    except (OSError, SyntaxError, EOFError, Image.DecompressionBombError) as err:  # what Pillow raises on bad data
        reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
        raise ValueError(f"image {path} cannot be read: {reason}") from None


def check_out_folder(out: Path) -> None:
    """A :class:`ValueError` when ``out`` cannot be (or become) a folder: it, or a folder above it, is a file."""
    for path in (out, *out.parents):
        if path.exists():
            if not path.is_dir():
                raise ValueError(f"--out {out}: {path} is a file; name a folder (it is created if missing)")
            return


def to_pixels(images: Sequence[PILImage], size: int) -> torch.Tensor:
    """``[N,3,size,size]`` pixel-space floats in [0, 1] from RGB images (bilinear resize)."""
    from PIL import Image

    arrays = [np.asarray(image.resize((size, size), Image.BILINEAR), dtype=np.float32) for image in images]
    return torch.from_numpy(np.stack(arrays) / 255.0).permute(0, 3, 1, 2).contiguous()


def load_images(paths: Sequence[Path], size: int) -> torch.Tensor:
    """``[N,3,size,size]`` pixel-space floats in [0, 1] from image files (see :func:`read_image`)."""
    return to_pixels([read_image(Path(path)) for path in paths], size)


def overlay(image: np.ndarray, saliency: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """``[H,W,3]`` uint8: ``image`` (``[H,W,3]`` in [0, 1]) blended with the coloured ``saliency`` (``[H,W]``)."""
    from matplotlib import colormaps

    finite = np.nan_to_num(saliency.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if finite.min() < 0:
        scale = np.abs(finite).max() or 1.0
        colours = colormaps["RdBu_r"](0.5 + 0.5 * finite / scale)[..., :3]
    else:
        scale = finite.max() or 1.0
        colours = colormaps["inferno"](finite / scale)[..., :3]
    blended = (1 - alpha) * image + alpha * colours
    return np.clip(np.round(blended * 255), 0, 255).astype(np.uint8)


def explain(model: str, method_name: str, images: Sequence[Path], out: Path, params: dict[str, Any] | None = None,
            target: int | None = None, device: str = "auto", seed: int = 0, layer: str | None = None,
            input_size: int | None = None, mean: Sequence[float] | None = None,
            std: Sequence[float] | None = None) -> list[Path]:
    """Write ``<out>/<image stem>.<method>.png`` (image | overlay) for every image; the written paths.

    The images, the method, ``out`` and the TorchScript options are checked before the model is loaded.
    """
    from PIL import Image

    from .jobs import build_method, resolve_device, seed_everything
    from .methods import METHODS
    from .registry import UnknownNameError
    from .saliency import compute_maps

    pictures = [read_image(Path(path)) for path in images]
    try:
        METHODS.get(method_name)
    except UnknownNameError as err:
        raise ValueError(f"--method: {err}") from None
    check_out_folder(out)
    if input_size is not None and input_size < 1:
        raise ValueError(f"--input-size {input_size}: must be a positive number of pixels")
    if std is not None and not all(s > 0 for s in std):
        raise ValueError(f"--std {' '.join(map(str, std))}: each must be positive")
    try:
        device = resolve_device(device)
    except RuntimeError as err:
        raise ValueError(f"--device: {err}") from None
    seed_everything(seed)
    net = to_device(load_explained_model(model, input_size, mean, std), device)
    method = build_method(method_name, method_name, params or {}, net, model, layer)
    pixels = to_pixels(pictures, net.spec.input_size)
    with torch.no_grad():
        logits = net(pixels.to(device))
    targets = torch.full((len(pixels),), target) if target is not None else logits.argmax(dim=1).cpu()
    if target is not None and not 0 <= target < logits.shape[1]:
        raise ValueError(f"--target {target}: the model has classes 0..{logits.shape[1] - 1}")
    maps = compute_maps(method, net, pixels, targets, batch_size=8, progress=False, device=device).numpy()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"--out {out}: cannot create the folder ({err.strerror or err})") from None
    written = []
    for path, image, saliency, label in zip(images, pixels.permute(0, 2, 3, 1).numpy(), maps, targets.tolist()):
        panel = np.concatenate([np.round(image * 255).astype(np.uint8), overlay(image, saliency)], axis=1)
        destination = out / f"{Path(path).stem}.{method_name}.png"
        try:
            Image.fromarray(panel).save(destination)
        except OSError as err:
            raise ValueError(f"cannot write {destination} ({err.strerror or err})") from None
        log.info("%s: class %d -> %s", path, label, destination)
        written.append(destination)
    return written
