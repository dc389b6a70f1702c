"""The instrumented reference is pyannote itself: same output as an untouched call,
deterministic dumps, and fixture models good enough to exercise every stage."""

from __future__ import annotations

import filecmp
import warnings

import numpy as np
import pytest

from port.dumps import DumpReader, DumpWriter
from port.vocabulary import PIPELINE_31

STAGES = PIPELINE_31.stage_names

from .conftest import RECORDINGS


# each is one more untouched pyannote run (80-100 s on 2 cores for the 30 s sample): the 16 s
# test_16k in the default set, the sample and the resampled recording slow
@pytest.mark.parametrize("recording", ["test_16k", pytest.param("sample", marks=pytest.mark.slow),
                                       pytest.param("test_with_noise_48k", marks=pytest.mark.slow)])
def test_instrumented_run_equals_untouched_pipeline(dumps, torch_models, recording):
    from port.pipeline import Parameters
    from reference.run import audio_file, build_pipeline

    instrumented = dumps(recording)["reference_result"].output
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        untouched = build_pipeline(*torch_models, Parameters(pipeline="3.1"))(audio_file(RECORDINGS[recording]))
    assert instrumented.speaker_diarization == untouched.speaker_diarization
    assert instrumented.speaker_diarization.to_rttm() == untouched.speaker_diarization.to_rttm()
    assert instrumented.exclusive_speaker_diarization.to_rttm() == untouched.exclusive_speaker_diarization.to_rttm()
    np.testing.assert_array_equal(instrumented.speaker_embeddings, untouched.speaker_embeddings)


def test_instrumentation_restores_the_pipeline(reference_pipeline, dumps):
    from pyannote.audio.pipelines.clustering import AgglomerativeClustering
    import pyannote.audio.pipelines.clustering as module
    import scipy.cluster.hierarchy as hierarchy

    dumps("sample")
    assert type(reference_pipeline.clustering) is AgglomerativeClustering
    assert "clustering" in reference_pipeline._pipelines
    assert module.linkage is hierarchy.linkage and module.fcluster is hierarchy.fcluster
    for name in ("get_segmentations", "get_embeddings", "reconstruct", "to_annotation", "speaker_count"):
        assert name not in reference_pipeline.__dict__


@pytest.mark.slow  # two community-1 pyannote runs on the sample (150 s); the captures' tests (test_community1.py) hold the
# instrumented reference's dumps to pyannote's own intermediates in the default set
def test_instrumented_community1_equals_untouched_pipeline(dumps_c1, torch_models, reference_pipeline_c1):
    """community-1: the instrumented VBxClustering run (PLDA, VBx re-run per iteration,
    K-Means wrapper) returns what pyannote returns untouched, and every wrapper is undone."""
    import pyannote.audio.pipelines.clustering as module
    import pyannote.audio.utils.vbx as vbx_module
    from pyannote.audio.pipelines.clustering import VBxClustering
    from sklearn.cluster import KMeans

    from port.pipeline import Parameters
    from reference.run import audio_file, build_pipeline

    made = dumps_c1("sample")
    instrumented = made["reference_result"].output
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        untouched = build_pipeline(*torch_models, Parameters(pipeline="community-1"))(audio_file(RECORDINGS["sample"]))
    assert instrumented.speaker_diarization.to_rttm() == untouched.speaker_diarization.to_rttm()
    assert instrumented.exclusive_speaker_diarization.to_rttm() == untouched.exclusive_speaker_diarization.to_rttm()
    np.testing.assert_array_equal(instrumented.speaker_embeddings, untouched.speaker_embeddings)
    assert type(reference_pipeline_c1.clustering) is VBxClustering
    assert "plda" not in reference_pipeline_c1.clustering.__dict__ or not hasattr(reference_pipeline_c1.clustering.plda, "_call")
    assert module.KMeans is KMeans and module.cluster_vbx is vbx_module.cluster_vbx
    reader = DumpReader(made["reference"])
    assert reader.pipeline == "community-1"
    iterations = int(reader.load("13-vbx", "out_iterations"))
    assert iterations == len(reader.load("13-vbx", "out_elbo")) >= 1
    last = iterations - 1  # pyannote's VBx stopped after the last iteration is its final state
    np.testing.assert_array_equal(reader.load("13-vbx", f"iter{last}_out_gamma"), reader.load("13-vbx", "out_gamma"))


def test_every_stage_is_dumped_with_a_manifest(dumps):
    reader = DumpReader(dumps("sample")["reference"])
    assert reader.stages() == list(STAGES)
    assert reader.manifest["audio_sha256"] and reader.manifest["segmentation_sha256"]


@pytest.mark.slow  # a second full pyannote run (64 s); determinism of the port is in test_speed
def test_reference_dumps_are_byte_identical_across_runs(tmp_path, reference_pipeline, dumps):
    from reference.run import run

    first = dumps("test_16k")["reference"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with DumpWriter(tmp_path, "reference", "test_16k") as writer:
            run(RECORDINGS["test_16k"], reference_pipeline, hook=writer)
            writer.commit(DumpReader(first).manifest)
    second = tmp_path / "reference" / "test_16k"
    for stage in STAGES:
        comparison = filecmp.dircmp(first / stage, second / stage)
        assert not comparison.diff_files and not comparison.left_only and not comparison.right_only, stage
        _, mismatch, errors = filecmp.cmpfiles(first / stage, second / stage, comparison.common_files, shallow=False)
        assert not mismatch and not errors, f"{stage}: {mismatch}"


def test_fixture_models_exercise_the_pipeline_on_the_sample(dumps):
    """Acceptance of the foundation: >= 2 speakers, count takes 0, 1 and 2, DER < 40 %."""
    from pyannote.database.util import load_rttm
    from pyannote.metrics.diarization import DiarizationErrorRate

    made = dumps("sample")
    output = made["reference_result"].output
    assert len(output.speaker_diarization.labels()) >= 2
    count = DumpReader(made["reference"]).load("05-count", "out_count")
    assert {0, 1, 2} <= set(np.unique(count).tolist())
    truth = next(iter(load_rttm(str(RECORDINGS["sample"].with_suffix(".rttm"))).values()))
    assert DiarizationErrorRate()(truth, output.speaker_diarization) < 0.40
