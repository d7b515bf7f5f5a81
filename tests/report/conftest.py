"""The synthetic study, built once per session for every report test module."""

import pytest

from .synthetic import Study, make_study


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """(study, index.html) of the synthetic study's report, assembled from the shared section folders
    (``study.kwargs``: its ``config``, the report folder ``out_dir`` and the sections' tables ``tables_dir``)."""
    from salbench.report.assemble import render_page

    from .sections.study_sections import shared_sections

    config, folders = shared_sections(tmp_path_factory)
    out_dir = tmp_path_factory.mktemp("built") / "report"
    tables_dir = next(iter(folders.values())).parent.parent / "tables"
    return (Study(kwargs={"config": config, "out_dir": out_dir, "tables_dir": tables_dir}),
            render_page("synthetic", folders, out_dir, config))


@pytest.fixture(scope="session")
def study(tmp_path_factory):
    """The synthetic study's inputs, written once per session (no report built)."""
    return make_study(tmp_path_factory.mktemp("inputs"))


#: the synthetic study's input groups (salbench.report.sections.INPUT_GROUPS) from its arguments
INPUT_KWARGS = {"scores": "score_files", "curves": "curve_files", "maps": "map_stores", "claims": "claims_file",
                "grid_maps": "grid_map_stores", "fidelity": "fidelity_file", "sanity": "sanity_files",
                "cascades": "cascade_stores", "meta": "meta_tables", "layerwise": "layerwise_stores"}
#: the synthetic study's metrics as registered metrics (sections read metric info from the registry)
REGISTERED_METRICS = {"pointing_game": {"metric": "pointing_game", "params": {}},
                      "deletion_auc": {"metric": "deletion", "params": {}}}


def section_inputs(kwargs: dict) -> dict:
    """Input group -> files of the synthetic study (``data``: its data stores)."""
    groups = {group: kwargs[key] for group, key in INPUT_KWARGS.items() if kwargs.get(key) is not None}
    groups = {group: [files] if not isinstance(files, (list, tuple)) else list(files) for group, files in groups.items()}
    return {**groups, "data": list(kwargs["data_stores"].values())}


@pytest.fixture(scope="session")
def core_sections(tmp_path_factory):
    """(study kwargs with registered metrics, section folders, index.html) of the overview, leaderboard, ranks and
    rank agreement sections of the synthetic study, assembled into a page."""
    from salbench.report.assemble import render_page, run_sections

    root = tmp_path_factory.mktemp("core-sections")
    kwargs = make_study(root / "inputs").kwargs
    kwargs = {**kwargs, "config": {**kwargs["config"], "metrics": REGISTERED_METRICS}}
    folders = run_sections("synthetic", kwargs["config"], section_inputs(kwargs), root / "sections", root / "tables",
                           names=["overview", "leaderboard", "ranks", "rank_agreement"])
    return kwargs, folders, render_page("synthetic", folders, root / "report", kwargs["config"])
