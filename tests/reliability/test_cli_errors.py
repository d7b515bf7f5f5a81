"""Wrong inputs to ``salbench explain`` and ``salbench check-config``: one line on stderr, exit 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from salbench.cli import main
from salbench.models import build_model, save_checkpoint


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A checkpoint, a good image, and the wrong inputs a user may pass instead."""
    root = tmp_path_factory.mktemp("inputs")
    torch.manual_seed(0)
    save_checkpoint(build_model("small_cnn", 6).eval(), root / "cnn.pt", {"num_classes": 6})
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(root / "ok.png")
    data = (root / "ok.png").read_bytes()
    (root / "truncated.png").write_bytes(data[:len(data) // 2])
    (root / "text.png").write_text("not an image\n")
    (root / "empty.png").write_bytes(b"")
    (root / "folder").mkdir()
    (root / "file").write_text("a file where a folder belongs\n")
    (root / "binary.yaml").write_bytes(bytes(range(256)))
    return root


def _one_line_exit_2(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("salbench: ") and "Traceback" not in err, err
    return err


def _explain(inputs: Path, *args: str, image: str = "ok.png", out: str = "out") -> list[str]:
    return ["explain", "--model", str(inputs / "cnn.pt"), "--method", "gradient", "--device", "cpu",
            "--out", str(inputs / out), *args, str(inputs / image)]


@pytest.mark.parametrize("image, expected", [
    ("text.png", "is not an image file"), ("empty.png", "is empty"), ("missing.png", "does not exist"),
    ("truncated.png", "cannot be read: image file is truncated"), ("folder", "is a folder; name image files")])
def test_explain_names_the_image_that_is_not_one(inputs, capsys, image, expected):
    err = _one_line_exit_2(_explain(inputs, image=image), capsys)
    assert f"image {inputs / image} {expected}" in err
    assert not (inputs / "out").exists()  # refused before anything was computed or written


@pytest.mark.parametrize("args, out, expected", [
    (["--model", "{inputs}/folder"], "out", "--model {inputs}/folder: is a folder"),
    (["--model", "{inputs}/text.png"], "out", "neither a salbench checkpoint nor a TorchScript file"),
    (["--method", "nope"], "out", "--method: unknown method 'nope'; allowed: "),
    ([], "file", "--out {inputs}/file: {inputs}/file is a file; name a folder"),
    ([], "file/sub", "--out {inputs}/file/sub: {inputs}/file is a file; name a folder"),
    (["--input-size", "0"], "out", "--input-size 0: must be a positive number of pixels"),
])
def test_explain_names_the_option_that_is_wrong(inputs, capsys, args, out, expected):
    argv = _explain(inputs, *(a.format(inputs=inputs) for a in args), out=out)  # a later --model/--method wins
    err = _one_line_exit_2(argv, capsys)
    assert expected.format(inputs=inputs) in err
    assert not (inputs / "out").exists()


@pytest.mark.parametrize("name, expected", [("folder", "is a folder; name a YAML file"), ("binary.yaml", "text"),
                                            ("missing.yaml", "does not exist")])
def test_check_config_names_a_file_that_is_no_config(inputs, capsys, name, expected):
    err = _one_line_exit_2(["check-config", str(inputs / name)], capsys)
    assert f"config file {inputs / name} " in err and expected in err


def test_the_real_command_prints_one_line_and_exits_2(inputs):
    """As a user runs it: nothing else on stderr (no warning of torch's either), for both commands."""
    for argv in (_explain(inputs, "--model", str(inputs / "text.png")), ["check-config", str(inputs / "binary.yaml")]):
        result = subprocess.run([sys.executable, "-m", "salbench", *argv], capture_output=True, text=True, timeout=300)
        assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
        assert result.stderr.startswith("salbench: ") and not result.stdout
