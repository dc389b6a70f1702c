"""Each pipeline described once, as data: its stages, the names each stage dumps, the
axes of every name, the reference dumps that feed each stage, and the reasons a stage
may legitimately be unreached.

This is the dump vocabulary's other half (`port.dumps` writes and reads; this says
what is written). Both sides (the port, pyannote instrumented), the verdict
(`harness.compare`), the report, the mutation matrix, the tests and `dumps/README.md`
(generated from `markdown()`) read it; nothing else lists stages. Tolerances live in
pyproject.toml's ``[tool.verify.stages."<stage>"]``, one table per stage name.

Name patterns: ``call<k>_`` is the k-th call of a function the pipeline calls several
times (fcluster, reconstruct, to_annotation); ``iter<k>_`` the k-th VBx iteration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_PIPELINE = "community-1"


@dataclass(frozen=True)
class Name:
    """One dumped name: its pattern, what each axis means, and what it holds."""

    pattern: str  # "out_Z", "call<k>_in_Z", "iter<k>_out_gamma", "out_diarization.rttm"
    axes: tuple[str, ...] = ()
    holds: str = ""  # shape and dtype, in words (dumps/README.md)
    optional: str = ""  # when set: the name exists only then (e.g. "KMeans ran")
    # dumped by the reference for the judge (what a rule needs, e.g. the activations the
    # reconstruction ranks); a candidate may leave it out, and is compared on it when it has it
    for_judge: bool = False

    def matches(self, name: str) -> bool:
        regex = re.escape(self.pattern).replace(re.escape("<k>"), r"\d+")
        return re.fullmatch(regex, name) is not None


@dataclass(frozen=True)
class Stage:
    """One stage: the pyannote function it mirrors, its names, the reference dumps that
    feed it (``"<stage>/<name>"``) and the reasons it may be unreached (see `REASONS`)."""

    name: str  # "12-plda"
    function: str
    names: tuple[Name, ...]
    inputs: tuple[str, ...] = ()
    unreached: tuple[str, ...] = ()

    @property
    def number(self) -> str:
        return self.name[:2]

    def find(self, name: str) -> Name | None:
        return next((n for n in self.names if n.matches(name)), None)


@dataclass(frozen=True)
class Description:
    """One pipeline: its stages in order, and what pyannote calls it."""

    name: str  # "3.1", "community-1"
    title: str
    stages: tuple[Stage, ...]

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages)

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"pipeline {self.name} has no stage {name}")

    def has(self, name: str) -> bool:
        return name in self.stage_names

    def named(self, what: str) -> str:
        """The stage folder of a step by its unnumbered name: named("annotation") -> "17-annotation"."""
        for stage in self.stage_names:
            if stage[3:] == what:
                return stage
        raise KeyError(f"pipeline {self.name} has no {what} stage")


# Why pyannote may never reach a stage; the verdict holds the rule that checks each
# against the reference's own dumps (harness.compare.REASON_RULES).
REASONS = {
    "silence": "nobody speaks: pyannote returns after 05-count",
    "few_embeddings": "fewer than 2 embeddings after filtering: pyannote skips the clustering proper",
    "one_cluster": "num_speakers or max_speakers = 1: pyannote skips clustering",
    "given": "the run started from given segmentations and embeddings (--embeddings)",
}

_AFTER_COUNT = ("silence",)
_GIVEN = ("given",)

# --------------------------------------------------------------------------- stages 01-09, both pipelines
FRONT_END = (
    Stage("01-audio", "Audio.__call__ (decode, downmix, resample)", (
        Name("in_waveform", ("channel", "native_sample"), "(channels, samples) f32 at the native rate"),
        Name("in_sample_rate", (), "i64"),
        Name("out_waveform", ("channel", "sample"), "(1, samples) f32 at 16 kHz"),
    ), unreached=_GIVEN),
    Stage("02-chunks", "Inference.slide", (
        Name("out_chunks", ("chunk", "channel", "chunk_sample"), "(C, 1, 160000) f32"),
    ), inputs=("01-audio/out_waveform",), unreached=_GIVEN),
    Stage("03-segmentation", "segmentation model forward", (
        Name("out_log_probs", ("chunk", "frame", "class"), "(C, F, 7) f32"),
    ), inputs=("02-chunks/out_chunks",), unreached=_GIVEN),
    Stage("04-multilabel", "Powerset.to_multilabel", (
        Name("out_multilabel", ("chunk", "frame", "speaker"), "(C, F, S) f32"),
    ), inputs=("03-segmentation/out_log_probs",)),
    Stage("05-count", "SpeakerDiarization.speaker_count", (
        Name("out_count", ("output_frame", "column"), "(N, 1) u8"),
        Name("out_frames", (), "[start, duration, step] f64"),
    ), inputs=("04-multilabel/out_multilabel",)),
    Stage("06-fbank", "Audio.crop, WeSpeakerResNet34.compute_fbank", (
        Name("out_waveforms", ("chunk", "channel", "chunk_sample"), "(C, 1, 160000) f32 (per-chunk crops)"),
        Name("out_fbank", ("chunk", "fbank_frame", "mel_bin"), "(C, 998, 80) f32"),
    ), inputs=("01-audio/in_waveform", "01-audio/in_sample_rate", "04-multilabel/out_multilabel",
               "06-fbank/out_waveforms"), unreached=_AFTER_COUNT + _GIVEN),
    Stage("07-masks", "SpeakerDiarization.get_embeddings (masks)", (
        Name("out_masks", ("chunk", "speaker", "frame"), "(C, S, F) f32"),
    ), inputs=("04-multilabel/out_multilabel",), unreached=_AFTER_COUNT + _GIVEN),
    Stage("08-embeddings", "embedding model forward with weights", (
        Name("out_embeddings", ("chunk", "speaker", "dim"), "(C, S, D) f32"),
    ), inputs=("06-fbank/out_fbank", "07-masks/out_masks"), unreached=_AFTER_COUNT),
    Stage("09-filter", "BaseClustering.filter_embeddings", (
        Name("out_embeddings", ("embedding_row", "dim"), "(E, D) f32"),
        Name("out_chunk_idx", ("embedding_row",), "(E,) i64"),
        Name("out_speaker_idx", ("embedding_row",), "(E,) i64"),
    ), inputs=("08-embeddings/out_embeddings", "04-multilabel/out_multilabel"), unreached=_AFTER_COUNT),
)

LINKAGE = Stage("10-linkage", "scipy.cluster.hierarchy.linkage (centroid)", (
    Name("in_X", ("embedding_row", "dim"), "(E, D) f32, unit-normalised"),
    Name("out_Z", ("merge", "column"), "(E-1, 4) f64"),
), inputs=("10-linkage/in_X",))

_FCLUSTER_CALLS = (
    Name("call<k>_in_Z", ("merge", "column"), "(E-1, 4) f64"),
    Name("call<k>_in_t", (), "f64"),
    Name("call<k>_out_labels", ("embedding_row",), "(E,) i32"),
)
_FCLUSTER_INPUTS = ("11-fcluster/call<k>_in_Z", "11-fcluster/call<k>_in_t")

_SPEAKERS = tuple(
    Name(f"in_{n}", (), "f64 (NaN = None, inf allowed)") for n in ("num_clusters", "min_clusters", "max_clusters")
)
_CLUSTERS_IN = ("in_num_clusters", "in_min_clusters", "in_max_clusters")


def _reconstruct(number: str) -> Stage:
    return Stage(f"{number}-reconstruct", "SpeakerDiarization.reconstruct, to_diarization", (
        Name("call<k>_in_hard_clusters", ("chunk", "speaker"), "(C, S) (-2 = inactive)"),
        Name("call<k>_in_count", ("output_frame", "column"), "(N, 1) i8"),
        Name("call<k>_out_activations", ("output_frame", "cluster"),
             "(N, K) f32: the overlap-added clustered activations to_diarization ranks (its argsort decides ties)",
             for_judge=True),
        Name("call<k>_out_discrete", ("output_frame", "cluster"), "(N, K) f32; call 0 the diarization, call 1 the exclusive one"),
        Name("out_frames", (), "[start, duration, step] f64"),
    ), inputs=("04-multilabel/out_multilabel", "05-count/out_frames", f"{number}-reconstruct/call<k>_in_hard_clusters",
               f"{number}-reconstruct/call<k>_in_count"), unreached=_AFTER_COUNT)


def _annotation(number: str, reconstruct: str) -> Stage:
    return Stage(f"{number}-annotation", "SpeakerDiarization.to_annotation, Annotation.write_rttm", (
        Name("in_min_duration_off", (), "f64"),
        Name("call<k>_out_segments", ("segment", "column"), "(n, 3) f64 [start, end, cluster]"),
        Name("out_diarization.rttm", (), "RTTM text"),
        Name("out_exclusive.rttm", (), "RTTM text"),
    ), inputs=(f"{reconstruct}/call<k>_out_discrete", f"{reconstruct}/out_frames",
               f"{number}-annotation/in_min_duration_off"), unreached=_AFTER_COUNT)


# --------------------------------------------------------------------------- 3.1
PIPELINE_31 = Description("3.1", "speaker-diarization-3.1 (AgglomerativeClustering)", FRONT_END + (
    Stage(LINKAGE.name, LINKAGE.function, LINKAGE.names, LINKAGE.inputs,
          unreached=_AFTER_COUNT + ("few_embeddings", "one_cluster")),
    Stage("11-fcluster", "scipy fcluster, AgglomerativeClustering.cluster", (
        Name("in_min_clusters", (), "f64 (NaN = None)"),
        Name("in_max_clusters", (), "f64 (NaN = None)"),
        Name("in_num_clusters", (), "f64 (NaN = None)"),
        Name("in_threshold", (), "f64"),
        Name("in_min_cluster_size", (), "f64"),
        *_FCLUSTER_CALLS,
        Name("out_clusters", ("embedding_row",), "(E,) cluster of each kept embedding"),
    ), inputs=_FCLUSTER_INPUTS + ("09-filter/out_embeddings",) + tuple(
        f"11-fcluster/{n}" for n in ("in_min_clusters", "in_max_clusters", "in_num_clusters", "in_threshold",
                                     "in_min_cluster_size")),
        unreached=_AFTER_COUNT + ("few_embeddings", "one_cluster")),
    Stage("12-assign", "BaseClustering.assign_embeddings", (
        *_SPEAKERS,
        Name("out_hard_clusters", ("chunk", "speaker"), "(C, S)"),
        Name("out_soft_clusters", ("chunk", "speaker", "cluster"), "(C, S, K) f64"),
        Name("out_centroids", ("cluster", "dim"), "(K, D)"),
    ), inputs=("08-embeddings/out_embeddings", "09-filter/out_chunk_idx", "09-filter/out_speaker_idx",
               "11-fcluster/out_clusters") + tuple(f"12-assign/{n}" for n in _CLUSTERS_IN)
        + ("04-multilabel/out_multilabel",),  # only when clustering was skipped (no 11-fcluster/out_clusters)
        unreached=_AFTER_COUNT),
    _reconstruct("13"),
    _annotation("14", "13-reconstruct"),
))

# --------------------------------------------------------------------------- community-1
_VBX_FEW = _AFTER_COUNT + ("few_embeddings",)
PIPELINE_COMMUNITY1 = Description("community-1", "speaker-diarization-community-1 (VBxClustering: PLDA + VBx)", FRONT_END + (
    Stage(LINKAGE.name, LINKAGE.function + ", the AHC initialisation", LINKAGE.names, LINKAGE.inputs, unreached=_VBX_FEW),
    Stage("11-fcluster", "scipy fcluster, VBxClustering's AHC initialisation (renumbered with np.unique)", (
        Name("in_threshold", (), "f64"),
        *_FCLUSTER_CALLS,
        Name("out_ahc_clusters", ("embedding_row",), "(E,) i64, renumbered 0..K-1"),
    ), inputs=_FCLUSTER_INPUTS, unreached=_VBX_FEW),
    Stage("12-plda", "PLDA.__call__ (vbx_setup's xvec_tf, plda_tf), PLDA.phi", (
        Name("in_lda_dimension", (), "i64"),
        Name("out_xvec", ("embedding_row", "plda_dim"), "(E, 128) f64, after xvec_tf"),
        Name("out_fea", ("embedding_row", "plda_dim"), "(E, 128) f64, after plda_tf (each column up to its sign)"),
        Name("out_phi", ("plda_dim",), "(128,) f64"),
    ), inputs=("09-filter/out_embeddings", "12-plda/in_lda_dimension"), unreached=_VBX_FEW),
    Stage("13-vbx", "cluster_vbx, VBx", (
        Name("in_Fa", (), "f64"),
        Name("in_Fb", (), "f64"),
        Name("in_max_iters", (), "f64"),
        Name("in_init_smoothing", (), "f64"),
        Name("out_qinit", ("embedding_row", "cluster"), "(E, K) f64"),
        Name("iter<k>_out_gamma", ("embedding_row", "cluster"), "(E, K) f64, after iteration k"),
        Name("iter<k>_out_pi", ("cluster",), "(K,) f64"),
        Name("iter<k>_out_elbo", (), "f64"),
        Name("out_elbo", ("iteration",), "(iterations,) f64"),
        Name("out_iterations", (), "i64"),
        Name("out_gamma", ("embedding_row", "cluster"), "(E, K) f64"),
        Name("out_pi", ("cluster",), "(K,) f64"),
    ), inputs=("11-fcluster/out_ahc_clusters", "12-plda/out_fea", "12-plda/out_phi", "13-vbx/in_Fa", "13-vbx/in_Fb",
               "13-vbx/in_max_iters", "13-vbx/in_init_smoothing"), unreached=_VBX_FEW),
    Stage("14-centroids", "VBxClustering.__call__ (speakers kept, centroids, KMeans)", (
        *_SPEAKERS,
        Name("out_kept", ("cluster",), "(K,) bool, pi > 1e-7"),
        Name("out_kmeans_clusters", ("embedding_row",), "(E,) i32", optional="KMeans ran (speaker constraints)"),
        Name("out_centroids", ("cluster", "dim"), "(K', D) f64"),
    ), inputs=("13-vbx/out_gamma", "13-vbx/out_pi", "09-filter/out_embeddings", "10-linkage/in_X")
        + tuple(f"14-centroids/{n}" for n in _CLUSTERS_IN), unreached=_VBX_FEW),
    Stage("15-assign", "VBxClustering.__call__ (cosine soft clusters, constrained_argmax)", (
        Name("out_soft_clusters", ("chunk", "speaker", "cluster"), "(C, S, K') f64, inactive = min - 1"),
        Name("out_hard_clusters", ("chunk", "speaker"), "(C, S)"),
    ), inputs=("08-embeddings/out_embeddings", "04-multilabel/out_multilabel", "14-centroids/out_centroids",
               "14-centroids/out_kmeans_clusters"), unreached=_AFTER_COUNT),
    _reconstruct("16"),
    _annotation("17", "16-reconstruct"),
))

PIPELINES: dict[str, Description] = {p.name: p for p in (PIPELINE_31, PIPELINE_COMMUNITY1)}
ALL_STAGES = tuple(dict.fromkeys(s for p in PIPELINES.values() for s in p.stage_names))


def pipeline(name: str | None) -> Description:
    """The description of pipeline `name` (a manifest's "pipeline"; dumps made before
    community-1 existed carry none and are 3.1's)."""
    name = name or "3.1"
    if name not in PIPELINES:
        raise KeyError(f"unknown pipeline {name!r} (known: {', '.join(PIPELINES)})")
    return PIPELINES[name]


def base_name(name: str) -> str:
    """A name without its call<k>_ / iter<k>_ prefix."""
    return re.sub(r"^(call|iter)\d+_", "", name)


def for_judge(stage: str, name: str, pipeline_name: str | None = None) -> bool:
    """Whether `stage`/`name` is dumped by the reference for the judge only (a candidate may omit it)."""
    candidates = [pipeline(pipeline_name)] if pipeline_name else list(PIPELINES.values())
    for description in candidates:
        if description.has(stage):
            found = description.stage(stage).find(name)
            if found is not None:
                return found.for_judge
    return False


def axes(stage: str, name: str, pipeline_name: str | None = None) -> tuple[str, ...] | None:
    """The axis names of a dumped array (None when the vocabulary does not say)."""
    candidates = [pipeline(pipeline_name)] if pipeline_name else list(PIPELINES.values())
    for description in candidates:
        if description.has(stage):
            found = description.stage(stage).find(name)
            if found is not None:
                return found.axes or None
    return None


def markdown(description: Description) -> str:
    """The stage table of dumps/README.md: names, the dumps that feed each stage, pyannote's function."""
    lines = [f"### {description.name}: {description.title}", "",
             "| stage | names | inputs (reference dumps it reads) | pyannote function |", "|---|---|---|---|"]
    for stage in description.stages:
        names = ", ".join(
            f"`{n.pattern}` {n.holds}" + (f" (only when {n.optional})" if n.optional else "")
            + (" (the reference's, for the judge; optional for a candidate)" if n.for_judge else "")
            for n in stage.names
        )
        inputs = ", ".join(f"`{i}`" for i in stage.inputs) or "the audio file"
        lines.append(f"| {stage.name} | {names} | {inputs} | `{stage.function}` |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m port.vocabulary: the tables of dumps/README.md
    print("\n".join(markdown(p) for p in PIPELINES.values()))
