"""The mutation matrix's fast subset: realistic porting bugs must be caught at their stage.

`benchmarks/mutations.py` runs the whole catalogue on the bundled recordings; here a
few mutations, one per part of the pipeline, run on sample.wav (the session's reference
dumps, fixture models) and must each make the harness fail first at the stage where
the bug lives, while the unmutated port passes.
"""

from __future__ import annotations

import sys

import pytest

from benchmarks.mutations import CATALOGUE, Bench, memoised, score, summarise

RECORDING = "sample"
FAST = (
    "powerset_bitmask_order",
    "count_truncated",
    "fbank_no_mean_centring",
    "masks_keep_overlap",
    "filter_counts_overlap",
    "linkage_median",
    "no_min_cluster_size_merge",
    "turns_at_frame_starts",
)
BY_NAME = {m.name: m for m in CATALOGUE}


@pytest.fixture(scope="module")
def bench(dumps, onnx_folder, tmp_path_factory):
    from port.pipeline import Parameters, Pipeline

    from .conftest import RECORDINGS

    made = dumps(RECORDING)
    # its own (mutations patch it), in the 3.1 configuration like `dumps`
    pipeline = Pipeline.from_folder(onnx_folder, device="cpu", parameters=Parameters(pipeline="3.1"))
    with memoised(pipeline):
        bench = Bench(tmp_path_factory.mktemp("mutations"), pipeline)
        bench.add_reference(RECORDING, RECORDINGS[RECORDING], made["reference"], made["port"])
        yield bench


def _port_bindings() -> dict:
    return {(name, attr): value for name, module in list(sys.modules.items())
            if name == "port" or name.startswith("port.") for attr, value in vars(module).items()}


def test_catalogue_is_large_and_spans_the_pipeline():
    from port.vocabulary import PIPELINE_31

    STAGES = PIPELINE_31.stage_names

    assert len(CATALOGUE) >= 15
    assert len({m.name for m in CATALOGUE}) == len(CATALOGUE)
    assert all(m.stage in STAGES for m in CATALOGUE)
    assert {m.stage for m in CATALOGUE} == set(STAGES)  # a bug in every stage


def test_unmutated_port_passes(bench):
    _, verdict = bench.baseline(RECORDING)
    assert verdict.passed, f"unmutated port fails first at {verdict.first_failure}"
    assert verdict.rows and all(row["passed"] for row in verdict.rows)


@pytest.mark.parametrize("name", FAST)
def test_mutation_caught_at_its_stage(bench, name):
    mutation = BY_NAME[name]
    before = _port_bindings()
    row = bench.run(mutation, recordings=(RECORDING,))
    assert _port_bindings() == before, "the mutation was not undone"
    assert row["status"] == "caught", f"{name}: {row['status']} ({row['recordings']})"
    assert row["first_failure"] == mutation.stage


def test_no_effect_is_neither_caught_nor_missed():
    mutation = BY_NAME["linkage_last_min_ties"]
    inert = summarise(mutation, {"a": {"effect": False, "caught": False, "first_failure": None, "rttm_changed": False}})
    missed = summarise(mutation, {"a": {"effect": True, "caught": False, "first_failure": None, "rttm_changed": False}})
    caught = summarise(mutation, {"a": {"effect": True, "caught": True, "first_failure": "11-fcluster", "rttm_changed": True}})
    assert inert["status"] == "no effect" and inert["reason"]
    assert missed["status"] == "MISSED" and caught["status"] == "caught" and not caught["at_expected_stage"]
    total = score([inert, missed, caught])
    assert (total["counted"], total["caught"], total["at_expected_stage"], total["no_effect"]) == (2, 1, 0, 1)


@pytest.fixture(scope="module")
def stereo_bench(dumps, onnx_folder, torch_models, tmp_path_factory):
    """ami_stereo_5s (one zero-padded chunk): where wav_norm1d's accumulation shows."""
    from port.pipeline import Parameters, Pipeline

    from benchmarks.mutations import RECORDINGS as BENCH_RECORDINGS

    path = BENCH_RECORDINGS["ami_stereo_5s"]
    made = dumps(path)
    pipeline = Pipeline.from_folder(onnx_folder, device="cpu", parameters=Parameters(pipeline="3.1"))
    with memoised(pipeline):
        # the drift is judged against pyannote's noise (measured on its one chunk: seconds)
        bench = Bench(tmp_path_factory.mktemp("mutations-stereo"), pipeline, torch_models=torch_models)
        bench.add_reference("ami_stereo_5s", path, made["reference"])
        yield bench


def test_float32_instance_norms_caught_at_segmentation(stereo_bench):
    """Exporter v1's InstanceNormalization (float32 accumulation over 160,000 samples and 5,325 frames):
    RTTM identical, but 03's drift is 13x pyannote's noise on this recording."""
    _, verdict = stereo_bench.baseline("ami_stereo_5s")
    assert verdict.passed, f"unmutated port fails first at {verdict.first_failure}"
    row = stereo_bench.run(BY_NAME["instance_norms_float32"], recordings=("ami_stereo_5s",))
    assert row["status"] == "caught", f"{row['status']} ({row['recordings']})"
    assert row["first_failure"] == "03-segmentation"


CRAFTED = [m.name for m in CATALOGUE if m.crafted is not None]


@pytest.mark.parametrize("name", CRAFTED)
def test_crafted_inputs_exercise_the_branch(dumps, port_pipeline, tmp_path, name):
    """Each branch no bundled recording reaches, on a crafted copy of the reference dump:
    the mutated stage, run alone, fails there (and the unmutated one is the expectation)."""
    from benchmarks.mutations import crafted_run

    row = crafted_run(BY_NAME[name], port_pipeline, dumps(RECORDING)["reference"], tmp_path)
    assert row["effect"] and row["caught"] and row["first_failure"] == BY_NAME[name].stage, row


def test_at_most_one_mutation_without_inputs_that_exercise_it():
    inert = [m.name for m in CATALOGUE if m.inert and m.crafted is None]
    assert len(inert) <= 1, inert
    assert "reassign_raw_mean" in BY_NAME and BY_NAME["reassign_raw_mean"].stage == "11-fcluster"


# --------------------------------------------------------------------------- community-1
C1_RECORDING = "02_pyannote_sample"
C1_FAST = ("plda_no_sqrt_scaling", "vbx_fa_fb_swapped", "centroids_unpruned", "assign_euclidean",
           "exclusive_uncapped_count")


@pytest.fixture(scope="module")
def c1_bench(onnx_folder, reference_pipeline_c1, tmp_path_factory):
    """The community-1 bench on one real-model capture, from stage 09 (no model runs)."""
    from benchmarks.mutations import C1_RECORDINGS, GivenBench
    from port.pipeline import Parameters, Pipeline

    parameters = Parameters(pipeline="community-1")
    pipeline = Pipeline.from_folder(onnx_folder, device="cpu", parameters=parameters)  # its own: mutations patch it
    manifest = {"pipeline": "community-1", "parameters": parameters.as_dict()}
    bench = GivenBench(tmp_path_factory.mktemp("c1-mutations"), pipeline, reference_pipeline_c1, manifest,
                       {C1_RECORDING: C1_RECORDINGS[C1_RECORDING]})
    bench.baseline(C1_RECORDING)  # as the 3.1 bench: every port module a run imports is imported before a test looks
    return bench


def test_c1_catalogue_spans_the_clustering_half():
    from benchmarks.mutations import C1_CATALOGUE
    from port.vocabulary import PIPELINE_COMMUNITY1

    assert len(C1_CATALOGUE) >= 14 and len({m.name for m in C1_CATALOGUE}) == len(C1_CATALOGUE)
    assert all(PIPELINE_COMMUNITY1.has(m.stage) for m in C1_CATALOGUE)
    assert {"12-plda", "13-vbx", "14-centroids", "15-assign", "16-reconstruct"} <= {m.stage for m in C1_CATALOGUE}


def test_c1_unmutated_port_passes(c1_bench):
    _, verdict = c1_bench.baseline(C1_RECORDING)
    assert verdict.passed, f"unmutated port fails first at {verdict.first_failure}"


@pytest.mark.parametrize("name", C1_FAST)
def test_c1_mutation_caught_at_its_stage(c1_bench, name):
    from benchmarks.mutations import C1_CATALOGUE

    mutation = {m.name: m for m in C1_CATALOGUE}[name]
    before = _port_bindings()
    row = c1_bench.run(mutation, recordings=(C1_RECORDING,))
    assert _port_bindings() == before, "the mutation was not undone"
    assert row["status"] == "caught", f"{name}: {row['status']} ({row['recordings']})"
    assert row["first_failure"] == mutation.stage


# --------------------------------------------------------------------------- tie order
TIES_RECORDING = "10_mrbeast_clean_water"  # 820 frames where the ranking ties at the count


@pytest.fixture(scope="module")
def ties_bench(onnx_folder, reference_pipeline_c1, tmp_path_factory):
    """The community-1 bench on the real-model capture whose reconstruction ranking ties."""
    from benchmarks.mutations import C1_RECORDINGS, GivenBench
    from port.pipeline import Parameters, Pipeline

    parameters = Parameters(pipeline="community-1")
    pipeline = Pipeline.from_folder(onnx_folder, device="cpu", parameters=parameters)
    manifest = {"pipeline": "community-1", "parameters": parameters.as_dict()}
    return GivenBench(tmp_path_factory.mktemp("tie-mutations"), pipeline, reference_pipeline_c1, manifest,
                      {TIES_RECORDING: C1_RECORDINGS[TIES_RECORDING]})


@pytest.mark.parametrize("name, status", [
    ("c1_ranking_ascending", "caught"), ("c1_ties_to_lowest", "caught"), ("c1_ties_count_minus_one", "caught"),
    ("c1_stable_ties", "equivalent, accepted"), ("c1_reversed_ties", "equivalent, accepted"),
    ("assign_other_solver", "equivalent, accepted"),
])
def test_tie_mutations_caught_and_other_valid_answers_accepted(ties_bench, name, status):
    from benchmarks.mutations import C1_CATALOGUE

    mutation = {m.name: m for m in C1_CATALOGUE}[name]
    row = ties_bench.run(mutation, recordings=(TIES_RECORDING,))
    assert row["status"] == status, f"{name}: {row['status']} ({row['recordings']})"
    if status == "caught":
        assert row["first_failure"] == mutation.stage
    else:
        assert row["rttm_changed"] or row["recordings"][TIES_RECORDING]["effect"]


def test_equivalent_mutations_are_scored_apart():
    rows = [{"status": "caught", "caught": True, "at_expected_stage": True},
            {"status": "equivalent, accepted", "caught": False, "at_expected_stage": False, "equivalent": True},
            {"status": "WRONGLY FAILED", "caught": True, "at_expected_stage": True, "equivalent": True}]
    total = score(rows)
    assert total["counted"] == 1 and total["caught"] == 1
    assert total["equivalent_accepted"] == 1 and total["equivalent_failed"] == 1
