"""What the workflow's section rules pass: the arguments of `salbench section` and captions docutils reads as text."""

import shlex

from docutils.core import publish_string

from salbench.report.rules import rst_text, section_args, section_folder
from salbench.report.sections import Section


def test_caption_markup_is_escaped():
    text = "max |difference| after min-max *scaling*, `code` and a_b"
    html = publish_string(rst_text(text), writer="html", settings_overrides={"report_level": 5}).decode()
    assert "max |difference| after min-max *scaling*, `code` and a_b" in html
    assert "Undefined substitution" not in html and "<em>" not in html


def test_section_args_name_each_group_and_needed_folder():
    section = Section(name="x", title="X", description="", order=0, aggregate=dict,
                      inputs=("scores", "variant_models"), needs=("leaderboard",))
    args = shlex.split(section_args(section, "tiny", {"scores": ["a b.parquet", "c.parquet"]},
                                    {"shapes/cnn": "results/shapes/models/cnn.pt"}))
    assert args == ["--in", "scores", "a b.parquet", "c.parquet",
                    "--in", "variant_models", "shapes/cnn=results/shapes/models/cnn.pt",
                    "--needs", f"leaderboard={section_folder('tiny', 'leaderboard')}"]
