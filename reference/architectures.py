"""The architectures of pyannote's two models (no weights) and the one-line model error.

Imported by `reference/models.py` and `reference/pretrained.py` alike, so that those two
import in one direction only (models -> pretrained -> architectures).
"""

from __future__ import annotations


class ModelError(RuntimeError):
    """A model could not be loaded; the message is one line, meant for users."""


def segmentation_architecture():
    """segmentation-3.0's PyanNet: SincNet (stride 10), 4 x BiLSTM(128), 2 x Linear(128), powerset 3/2."""
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.segmentation import PyanNet

    model = PyanNet(
        sincnet={"stride": 10},
        lstm={
            "hidden_size": 128,
            "num_layers": 4,
            "bidirectional": True,
            "monolithic": True,
            "dropout": 0.5,
        },
        linear={"hidden_size": 128, "num_layers": 2},
    )
    model.specifications = Specifications(
        problem=Problem.MONO_LABEL_CLASSIFICATION,
        resolution=Resolution.FRAME,
        duration=10.0,
        classes=["speaker#1", "speaker#2", "speaker#3"],
        powerset_max_classes=2,
        permutation_invariant=True,
    )
    model.build()
    return model


def embedding_architecture():
    """WeSpeaker ResNet34 as pyannote wraps it (80 mel bins, hamming window, 256-d),
    with the specifications pyannote's own WeSpeaker converter gives it."""
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.embedding import WeSpeakerResNet34

    model = WeSpeakerResNet34()
    model.specifications = Specifications(problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK, duration=5.0)
    return model
