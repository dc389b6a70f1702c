"""A verdict that holds across machines: the port, run here, judged against pyannote's dumps
made on another machine (tests/data/crossmachine: its manifests name the platform).

Whatever CPU runs the tests (AVX-512, AVX2 only, AMX), the port must pass against the
committed references of both pipelines; the test records which machine made the dump and
which judged it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from harness.compare import judge, platform_differences, platform_summary
from port import machine
from port.dumps import DumpReader, DumpWriter
from port.stages import runner

DATA = Path(__file__).parent / "data" / "crossmachine"
AUDIO = Path(__file__).parent / "data" / "ami_stereo_5s.wav"
NAME = "ami_stereo_5s"


@pytest.mark.parametrize("pipeline_name", ["community-1", "3.1"])
def test_port_here_passes_against_a_reference_made_elsewhere(pipeline_name, port_pipeline, port_pipeline_c1,
                                                             tmp_path, record_property):
    pipeline = port_pipeline_c1 if pipeline_name == "community-1" else port_pipeline
    reference = DumpReader(DATA / pipeline_name / "reference" / NAME)
    keep = ("uri", "audio", "audio_sha256", "segmentation_sha256", "embedding_sha256", "pipeline", "parameters")
    with warnings.catch_warnings(), DumpWriter(tmp_path, "port", NAME) as writer:
        warnings.simplefilter("ignore")
        pipeline(AUDIO, hook=writer)
        writer.commit({**{k: reference.manifest[k] for k in keep}, "platform": machine.describe()})
    verdict = judge(reference.path, tmp_path / "port" / NAME, runner=runner(pipeline))
    made, judged = platform_summary(verdict.platforms["reference"]), platform_summary(verdict.platforms["candidate"])
    record_property("reference_made_on", made)
    record_property("judged_on", judged)
    print(f"\n{pipeline_name}: reference made on {made}\n  port run and judged on {judged}")
    assert verdict.platforms["reference"]["cpu"], "the committed dump names the machine that made it"
    assert verdict.passed, (verdict.first_failure, [(r.stage, r.name, r.note) for s in verdict.stages.values()
                                                    for r in s.failing])
    # a platform that differs is said in one line, and changes nothing else
    differ = platform_differences(verdict.platforms["reference"], verdict.platforms["candidate"])
    assert bool(differ) == any("different platforms" in w for w in verdict.warnings)


def test_committed_port_dump_passes_and_a_doctored_copy_fails(tmp_path):
    import shutil

    import numpy as np

    reference = DATA / "community-1" / "reference" / NAME
    port = DATA / "community-1" / "port" / NAME
    assert judge(reference, port).passed
    doctored = tmp_path / NAME
    shutil.copytree(port, doctored)
    path = doctored / "08-embeddings" / "out_embeddings.npy"
    values = np.load(path)
    values[0, 0, :8] += np.float32(1e-2)
    np.save(path, values)
    verdict = judge(reference, doctored)
    assert not verdict.passed and verdict.first_failure == "08-embeddings"
