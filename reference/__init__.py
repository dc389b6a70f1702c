"""pyannote.audio itself, instrumented: the specification the port is checked against.

This package may import torch, torchaudio and pyannote.audio; `port/` never does.
"""

import os
import warnings

# pyannote.audio 4 ships opt-out telemetry over the network; this machine has none,
# and a harness must not phone home. Set before pyannote is imported anywhere.
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")

# torchcodec cannot load FFmpeg here (audio is handed to pyannote in memory), and
# pyannote warns about it at import: not actionable for harness users.
warnings.filterwarnings("ignore", message=r"\s*torchcodec is not installed correctly")
