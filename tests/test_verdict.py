"""The verdict itself: nothing passes by omission, drift judged against pyannote's own
noise, partial candidates, and where a failing stage drifts.

The first tests build tiny dumps by hand (no pyannote); the acceptance tests edit a
copy of the port's dump of a clean-speech AMI excerpt (ami_padded, fixture models)
and run `verify.py compare` on it with the reference's stored noise.
"""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from scipy.cluster.hierarchy import linkage

import verify
from harness.compare import compare_values, judge, parse_stages, tolerances, unreached_reason
from port.dumps import DumpReader, DumpWriter


def _dump(root, side, stages: dict, **manifest):
    writer = DumpWriter(root, side, "rec")
    for stage, names in stages.items():
        for name, value in names.items():
            writer(stage, name, value)
    return writer.commit({"audio_sha256": "x", "parameters": {"segmentation_step": 0.1}, **manifest})


def _early(count=0):
    """Stages 01-05 of a 2 s recording; `count` is everybody's speaker count."""
    rng = np.random.default_rng(0)
    wave = rng.standard_normal((1, 32000)).astype(np.float32) * 0.1
    return {
        "01-audio": {"in_waveform": wave, "in_sample_rate": np.int64(16000), "out_waveform": wave},
        "02-chunks": {"out_chunks": np.zeros((1, 1, 160000), np.float32)},
        "03-segmentation": {"out_log_probs": rng.standard_normal((1, 589, 7)).astype(np.float32)},
        "04-multilabel": {"out_multilabel": np.zeros((1, 589, 3), np.float32)},
        "05-count": {"out_count": np.full((600, 1), count, np.uint8),
                     "out_frames": np.array([0.0, 0.0619375, 0.016875])},
    }


# ----------------------------------------------------------------------------- holes
def test_nan_and_inf_show_as_such():
    a = np.ones((4, 3, 8), np.float32)
    b = a.copy()
    b[2, 1, 5] = np.nan
    row = compare_values("08-embeddings", "out_embeddings", a, b)
    assert not row.passed and math.isnan(row.max_abs) and "NaN" in row.note
    assert row.where == {"chunk": 2, "speaker": 1, "dim": 5}
    b[2, 1, 5] = np.inf
    row = compare_values("08-embeddings", "out_embeddings", a, b)
    assert not row.passed and math.isinf(row.max_abs)


def test_candidate_only_name_and_stage_fail(tmp_path):
    early = _early(count=0)
    ref = _dump(tmp_path, "reference", early)
    cand = _dump(tmp_path, "cand", {**early, "02-chunks": {**early["02-chunks"], "out_extra": np.zeros(3)},
                                    "06-fbank": {"out_fbank": np.zeros((1, 998, 80), np.float32)}})
    verdict = judge(ref, cand)
    assert not verdict.passed
    assert [r.kind for r in verdict.stages["02-chunks"].failing] == ["extra"]  # judged isolated: its inputs are the reference's
    assert verdict.stages["06-fbank"].status == "fail"
    assert "never reached" in verdict.stages["06-fbank"].reason
    assert verdict.first_failure == "02-chunks"


def test_neither_side_reached_needs_a_reason(tmp_path):
    ref = _dump(tmp_path, "reference", _early(count=0))
    verdict = judge(ref, ref)
    assert verdict.passed
    assert verdict.stages["06-fbank"].status == "not reached"
    assert "nobody speaks" in verdict.stages["06-fbank"].reason
    # somebody speaks, yet nobody dumped 06+: no reason, so it fails
    talk = _dump(tmp_path / "talk", "reference", _early(count=1))
    verdict = judge(talk, talk)
    assert not verdict.passed and verdict.first_failure == "06-fbank"
    assert "no reason" in verdict.stages["06-fbank"].reason


def test_fewer_than_two_embeddings_is_a_reason(tmp_path):
    stages = {**_early(count=1), "09-filter": {"out_embeddings": np.zeros((1, 256), np.float32)}}
    reader = DumpReader(_dump(tmp_path, "reference", stages))
    assert "fewer than 2" in unreached_reason(reader, "10-linkage")
    assert unreached_reason(reader, "09-filter") is None


def test_missing_stage_is_a_hole_or_not_implemented_and_stages_limit_the_verdict(tmp_path):
    early = _early(count=0)
    ref = _dump(tmp_path, "reference", early)
    cand = _dump(tmp_path, "cand", {k: v for k, v in early.items() if k != "03-segmentation"})
    verdict = judge(ref, cand)
    # missing between stages the candidate dumped (02 and 04): a hole, a failure named first
    assert verdict.stages["03-segmentation"].status == "missing" and "hole" in verdict.stages["03-segmentation"].reason
    assert verdict.stages["02-chunks"].status == "pass"
    assert not verdict.passed and not verdict.stages["03-segmentation"].passed
    assert verdict.first_failure == "03-segmentation" and verdict.holes == ["03-segmentation"]
    assert verdict.stages["04-multilabel"].bounds == "chain"  # its input (03) was never dumped by the candidate
    assert judge(ref, cand, stages=parse_stages("01-05")).first_failure == "03-segmentation"
    assert judge(ref, cand, stages=parse_stages("01-02,04-05")).passed
    # a port that stops earlier: the stages after its last are not implemented, no hole
    late = _dump(tmp_path / "late", "cand", {k: v for k, v in early.items() if k in ("01-audio", "02-chunks")})
    verdict = judge(ref, late)
    assert verdict.holes == [] and verdict.stages["03-segmentation"].status == "not implemented"
    assert not verdict.passed and verdict.first_failure == "03-segmentation"  # undeclared, named when nothing else fails
    # declared: shown, not failed
    declared = _dump(tmp_path / "declared", "cand", {k: v for k, v in early.items() if k != "03-segmentation"},
                     not_implemented=["03-segmentation"])
    assert judge(ref, declared).stages["03-segmentation"].status == "not implemented"
    assert judge(ref, declared).passed


def test_parse_stages():
    assert parse_stages("01-03,08") == ["01-audio", "02-chunks", "03-segmentation", "08-embeddings"]
    assert parse_stages("14-annotation") == ["14-annotation"]
    assert parse_stages(None) is None
    for bad in ("3-1", "00", "15", "fbank"):
        with pytest.raises(ValueError):
            parse_stages(bad)


def _swap_first_merges(Z):
    """The same dendrogram with its first two merges made in the other order."""
    n = len(Z) + 1
    out = Z.copy()
    out[[0, 1]] = Z[[1, 0]]
    ids = {n: n + 1, n + 1: n}
    for row in out[2:]:
        row[0], row[1] = ids.get(int(row[0]), row[0]), ids.get(int(row[1]), row[1])
    return out


def test_linkage_reordering_only_within_twice_the_drift():
    points = np.array([[0, 0], [1.0, 0], [10, 0], [10, 1.0 + 1e-7], [50, 50]], dtype=np.float64)
    Z = linkage(points, method="centroid")
    near = _swap_first_merges(Z)
    near[0, 2], near[1, 2] = Z[1, 2] - 1e-7, Z[0, 2] + 1e-7  # drift 1e-7 swaps merges 1e-7 apart
    row = compare_values("10-linkage", "out_Z", Z, near, chain=True)
    assert row.passed and row.reordered == 2 and "reordered" in row.note
    assert not compare_values("10-linkage", "out_Z", Z, near, chain=False).passed  # isolated: exact
    far_points = points.copy()
    far_points[3, 1] = 1.5
    Zf = linkage(far_points, method="centroid")
    far = _swap_first_merges(Zf)  # same heights, merges 0.5 apart swapped: drift cannot do that
    row = compare_values("10-linkage", "out_Z", Zf, far, chain=True)
    assert not row.passed and row.where["merge"] in (0, 1)
    other = Z.copy()
    other[0, :2] = [0, 2]  # other clusters
    assert not compare_values("10-linkage", "out_Z", Z, other, chain=True).passed


def test_drift_judged_against_noise_with_ceiling():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((9, 589, 7)).astype(np.float32) * 5
    b = a.copy()
    b[:3] += np.float32(2e-3)  # a third of the chunks shifted by 2e-3: under the old fixed 5e-3 bound
    quiet = {"max": 2.3e-4, "p99": 1.4e-5}  # AMI clean speech (issue 9)
    noisy = {"max": 3.9e-2, "p99": 6.1e-3}  # 8 kHz telephone audio
    row = compare_values("03-segmentation", "out_log_probs", a, b, chain=True, noise=quiet)
    assert not row.passed and row.noise == 2.3e-4 and row.noise_ratio > 8
    assert compare_values("03-segmentation", "out_log_probs", a, b, chain=True, noise=noisy).passed
    ceiling = tolerances()["03-segmentation"]["ceiling"]
    huge = {"max": ceiling, "p99": ceiling}  # k x noise far above the ceiling
    c = a.copy()
    c[0, 0, 0] += np.float32(0.9 * ceiling)
    assert compare_values("03-segmentation", "out_log_probs", a, c, chain=True, noise=huge).passed
    c[0, 0, 0] += np.float32(0.2 * ceiling)  # over the fixed ceiling: fails whatever the noise
    assert not compare_values("03-segmentation", "out_log_probs", a, c, chain=True, noise=huge).passed


# ----------------------------------------------------------------------------- acceptance
@pytest.fixture(scope="module")
def clean(dumps, torch_models, tmp_path_factory):
    """ami_padded's reference dump with its stored noise, and a fresh copy of the port's dump per use."""
    from reference import noise

    made = dumps("ami_padded")
    # 3 chunks (the worst-drift ones included) keep the float64 recomputation short
    noise.ensure(made["reference"], *torch_models, made["port"], max_chunks=3)
    root = tmp_path_factory.mktemp("candidates")

    def copy(label):
        target = root / label
        shutil.copytree(made["port"], target)
        return target

    return made["reference"], copy


def _compare(reference, candidate, tmp_path, *options):
    out = tmp_path / "verdict.json"
    code = verify.main(["compare", str(reference), str(candidate), "--json", str(out), *options])
    return code, json.loads(out.read_text())["recordings"][0]


def test_unchanged_copy_passes_with_noise_shown(clean, tmp_path):
    reference, copy = clean
    code, result = _compare(reference, copy("same"), tmp_path)
    assert code == 0, result["first_failure"]
    assert result["noise_source"].startswith("pyannote float32 vs float64")
    rows = {(r["stage"], r["name"]): r for r in result["stages_flat"]}
    for key in [("03-segmentation", "out_log_probs"), ("06-fbank", "out_fbank"), ("08-embeddings", "out_embeddings")]:
        assert rows[key]["noise"] > 0 and rows[key]["noise_ratio"] is not None


def test_shifted_log_probs_fail_at_segmentation(clean, tmp_path):
    reference, copy = clean
    cand = copy("shift")
    path = cand / "03-segmentation" / "out_log_probs.npy"
    values = np.load(path)
    values[: len(values) // 3] += np.float32(2e-3)
    np.save(path, values)
    code, result = _compare(reference, cand, tmp_path)
    assert code == 1 and result["first_failure"] == "03-segmentation"


def test_flipped_multilabel_frame_fails_at_multilabel(clean, tmp_path):
    reference, copy = clean
    cand = copy("flip")
    path = cand / "04-multilabel" / "out_multilabel.npy"
    values = np.load(path)
    values[4, 300, 1] = 1 - values[4, 300, 1]
    np.save(path, values)
    code, result = _compare(reference, cand, tmp_path)
    assert code == 1 and result["first_failure"] == "04-multilabel"
    row = next(r for r in result["stages_flat"] if not r["passed"])
    assert row["where"]["chunk"] == 4 and row["where"]["frame"] == 300 and row["where"]["speaker"] == 1
    assert 4 + 300 * 0.0168 < row["where"]["time"] < 4 + 301 * 0.0169 + 0.07


def test_deleted_stage_fails_as_not_implemented(clean, tmp_path):
    reference, copy = clean
    cand = copy("deleted")
    shutil.rmtree(cand / "07-masks")
    code, result = _compare(reference, cand, tmp_path)
    assert code == 1 and result["first_failure"] == "07-masks" and result["not_implemented"] == ["07-masks"]


def test_nan_embedding_fails_at_embeddings(clean, tmp_path):
    reference, copy = clean
    cand = copy("nan")
    path = cand / "08-embeddings" / "out_embeddings.npy"
    values = np.load(path)
    values[2, 0, 17] = np.nan
    np.save(path, values)
    code, result = _compare(reference, cand, tmp_path)
    assert code == 1 and result["first_failure"] == "08-embeddings"
    row = next(r for r in result["stages_flat"] if not r["passed"])
    assert math.isnan(row["max_abs"]) and row["where"]["chunk"] == 2


def test_partial_candidate_and_stages_option(clean, tmp_path):
    reference, copy = clean
    cand = copy("partial")
    for folder in cand.iterdir():
        if folder.is_dir() and folder.name[:2] > "05":
            shutil.rmtree(folder)
    code, result = _compare(reference, cand, tmp_path)
    assert code == 1 and result["not_implemented"][0] == "06-fbank" and "14-annotation" in result["not_implemented"]
    code, result = _compare(reference, cand, tmp_path, "--stages", "01-05")
    assert code == 0


def test_shifted_embedding_is_located(clean, tmp_path):
    reference, copy = clean
    cand = copy("located")
    path = cand / "08-embeddings" / "out_embeddings.npy"
    values = np.load(path)
    values[5, 1] += np.float32(0.1)
    np.save(path, values)
    code, result = _compare(reference, cand, tmp_path)
    row = next(r for r in result["stages_flat"] if r["stage"] == "08-embeddings")
    assert code == 1 and not row["passed"] and row["over"] == values.shape[-1]
    assert row["where"]["chunk"] == 5 and row["where"]["speaker"] == 1 and row["where"]["time"] == 5.0


class _Dump:
    """A reference dump in memory: what reference/noise.py reads of one."""

    def __init__(self, arrays: dict, manifest: dict | None = None):
        self.arrays, self.manifest = arrays, manifest or {}

    def has(self, stage, name):
        return (stage, name) in self.arrays

    def load(self, stage, name):
        return self.arrays[(stage, name)]


def test_plda_chain_noise_reaches_the_rows_the_measured_chunks_missed():
    """12-plda's chain noise: pyannote's PLDA amplifies an embedding near its training
    mean far more than the others. A port whose float32 error there is as large as
    pyannote's measured ones fails a yardstick made of the measured rows alone (AMI trn03,
    3.4x) and passes once those errors are carried to every row; an error 100x pyannote's
    still fails."""
    from harness.compare import compare_values
    from reference import noise
    from reference.run import community1_plda

    plda = community1_plda(None)
    rng = np.random.default_rng(0)
    mean = _plda_mean(plda)
    kept = mean + rng.standard_normal((12, 256))
    kept[7] = mean + 0.05 * rng.standard_normal(256)  # near the mean: the PLDA's high-gain row
    rows = [0, 1, 2, 3]  # the measured chunks' rows (row 7 not among them)
    error = 3e-5 * rng.standard_normal((len(rows), 256))  # pyannote's float32 errors there
    reference = _Dump({("09-filter", "out_embeddings"): kept.astype(np.float32).astype(np.float64)})
    kept = reference.load("09-filter", "out_embeddings")
    exact = kept[rows] - error
    measured = {}

    def put(stage, mode, name, ref, truth, chunked=False):
        measured[name] = noise._stats(ref, truth, chunked, 99.0)

    noise._plda_chain(reference, rows, exact, put, carried=0)  # the measured rows alone
    alone = dict(measured)
    noise._plda_chain(reference, rows, exact, put)
    assert measured["out_xvec"]["max"] > 3 * alone["out_xvec"]["max"]

    xvec = plda._xvec_tf(kept)
    port = kept.copy()
    port[7] -= error[0]  # the port's error at row 7: as large as pyannote's worst measured one
    drifted = plda._xvec_tf(port)
    assert not compare_values("12-plda", "out_xvec", xvec, drifted, chain=True, noise=alone["out_xvec"]).passed
    assert compare_values("12-plda", "out_xvec", xvec, drifted, chain=True, noise=measured["out_xvec"]).passed
    port[7] = kept[7] - 100 * error[0]
    assert not compare_values("12-plda", "out_xvec", xvec, plda._xvec_tf(port), chain=True,
                              noise=measured["out_xvec"]).passed


def _plda_mean(plda) -> np.ndarray:
    """The embedding the PLDA centres on (pyannote's vbx_setup: xvec_tf subtracts mean1)."""
    import inspect

    closure = inspect.getclosurevars(plda._xvec_tf).nonlocals
    return np.asarray(closure["mean1"])


def test_noise_chunks_include_12_plda_s_worst():
    """The chunks the noise is measured on include the one 12-plda's rows drift most in,
    beside each chunked stage's worst."""
    from reference import noise

    chunks, speakers = 30, 2
    reference = {("03-segmentation", "out_log_probs"): np.zeros((chunks, 4, 7), np.float32),
                 ("09-filter", "out_chunk_idx"): np.repeat(np.arange(chunks), speakers),
                 ("12-plda", "out_fea"): np.zeros((chunks * speakers, 8)),
                 ("12-plda", "out_xvec"): np.zeros((chunks * speakers, 8))}
    candidate = {k: v.copy() for k, v in reference.items()}
    candidate[("03-segmentation", "out_log_probs")][5] += 1e-5
    candidate[("12-plda", "out_xvec")][2 * 17 + 1] += 1e-5  # a row of chunk 17
    worst, stages = noise._worst_chunks(_Dump(reference), _Dump(candidate), 4)
    assert stages == 2 and set(worst[:2]) == {5, 17}
    chosen = noise.choose_chunks(chunks, 8, worst, stages)
    assert {5, 17} <= set(chosen) and len(chosen) <= 8
