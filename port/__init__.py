"""A torch-free port of pyannote.audio's speaker diarization: numpy, scipy, onnxruntime.

One module per stage, named after the pyannote function each mirrors:

    audio         Audio.__call__ / Audio.crop (decode, downmix, torchaudio resample)
    segmentation  Inference.slide, Powerset.to_multilabel, speaker_count
    aggregate     Inference.aggregate
    fbank         torchaudio.compliance.kaldi.fbank as WeSpeaker calls it
    embedding     SpeakerDiarization.get_embeddings (trunk/head split)
    linkage       scipy.cluster.hierarchy's centroid linkage and fcluster, by hand
    clustering    pipelines/clustering.py: filter_embeddings, AgglomerativeClustering (3.1),
                  VBxClustering (community-1), assign_embeddings, constrained_argmax
    plda          core/plda.py + utils/vbx.py's vbx_setup: xvec_tf, plda_tf, phi
    vbx           utils/vbx.py: VBx, cluster_vbx
    reconstruct   reconstruct, to_diarization, to_annotation, RTTM
    pipeline      SpeakerDiarization.apply, one call per stage, every stage through one dump hook
    stages        each stage run alone on another side's dumped inputs (isolated runners)
    runtime       ONNX Runtime sessions (CUDA provider when usable, else CPU)
    inputs        which recordings a command was given; --embeddings folders

and the dump vocabulary both sides and the harness read (the only part of the port
`harness/` imports):

    dumps         the writer, the reader, the encoders of None, inf and windows
    vocabulary    each pipeline described once: stages, names, axes, inputs, unreached reasons
"""

import os as _os

__version__ = "0.3.0"

# ONNX Runtime's telemetry writes a database and a device id under ~/.cache/Microsoft (or
# $XDG_CACHE_HOME) when it is imported; nothing of the port needs it (docs/cli.md). Set
# ORT_DISABLE_TELEMETRY=0 to keep ONNX Runtime's default.
_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
