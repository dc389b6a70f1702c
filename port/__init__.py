"""A torch-free port of pyannote.audio's speaker diarization: numpy, scipy, onnxruntime.

One module per stage, named after the pyannote function each mirrors:

    audio         Audio.__call__ / Audio.crop (decode, downmix, torchaudio resample)
    segmentation  Inference.slide, Powerset.to_multilabel, speaker_count
    aggregate     Inference.aggregate
    fbank         torchaudio.compliance.kaldi.fbank as WeSpeaker calls it
    embedding     SpeakerDiarization.get_embeddings (trunk/head split)
    clustering    filter_embeddings, linkage + fcluster by hand, AgglomerativeClustering
    reconstruct   reconstruct, to_diarization, to_annotation, RTTM
    pipeline      SpeakerDiarization.apply, every stage through one dump hook
"""

__version__ = "0.1.0"
