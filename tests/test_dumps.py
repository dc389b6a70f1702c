"""The dump writer/reader both sides use: text round trip, atomic commit, stale refusal."""

from __future__ import annotations

import numpy as np
import pytest

from port.dumps import DumpError, DumpReader, DumpWriter, read_text_array, write_text_array


@pytest.mark.parametrize(
    "value",
    [
        np.random.default_rng(0).standard_normal((3, 4, 5)).astype(np.float32),
        np.random.default_rng(1).standard_normal((7, 4)),
        np.arange(12, dtype=np.int8).reshape(3, 4) - 6,
        np.array([np.nan, np.inf, -0.0, 1e-30], dtype=np.float32),
        np.float64(3.25),
        np.int64(16000),
        np.zeros((0, 3)),
    ],
)
def test_text_round_trip_is_exact(tmp_path, value):
    write_text_array(tmp_path / "x.txt", value)
    back = read_text_array(tmp_path / "x.txt")
    assert back.dtype == np.asarray(value).dtype and back.shape == np.shape(value)
    np.testing.assert_array_equal(back, value)


def test_bad_text_header_is_one_line_error(tmp_path):
    (tmp_path / "x.txt").write_text("no header\n1 2 3\n")
    with pytest.raises(DumpError, match="bad header"):
        read_text_array(tmp_path / "x.txt")


def test_interrupted_dump_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with DumpWriter(tmp_path, "port", "rec") as writer:
            writer("01-audio", "out_waveform", np.zeros(4, dtype=np.float32))
            raise KeyboardInterrupt
    assert list((tmp_path / "port").iterdir()) == []


def test_commit_replaces_previous_dump_whole(tmp_path):
    for value in (1.0, 2.0):
        with DumpWriter(tmp_path, "reference", "rec", fmt="txt") as writer:
            writer("05-count", "out_frames", np.array([value]))
            writer.commit({"uri": "rec", "audio_sha256": "abc"})
    reader = DumpReader(tmp_path / "reference" / "rec")
    assert reader.load("05-count", "out_frames").tolist() == [2.0]
    assert sorted(p.name for p in (tmp_path / "reference").iterdir()) == ["rec"]


def test_stale_dump_is_refused_with_reason(tmp_path):
    with DumpWriter(tmp_path, "reference", "rec") as writer:
        writer.commit({"uri": "rec", "audio_sha256": "a" * 64, "segmentation_sha256": "b" * 64})
    reader = DumpReader(tmp_path / "reference" / "rec")
    reader.check({"audio_sha256": "a" * 64})
    with pytest.raises(DumpError, match="stale dump, made from other audio"):
        reader.check({"audio_sha256": "c" * 64})
    with pytest.raises(DumpError, match="other segmentation"):
        reader.check({"segmentation_sha256": "d" * 64})


def test_reader_refuses_a_folder_without_manifest(tmp_path):
    (tmp_path / "rec").mkdir()
    with pytest.raises(DumpError, match="no manifest.json"):
        DumpReader(tmp_path / "rec")
