"""The fbank as a graph (``fbank.onnx``, built by reference/fbank_graph.py), and the
chain crops -> fbank -> trunk -> head with the intermediates left on the device.

Two fbank backends compute stage 06:

* ``numpy``: port/fbank.py (the host; the default on a CPU);
* ``graph``: ``fbank.onnx`` in ONNX Runtime, on the embedding's provider (the
  default on CUDA). It computes the DFT and the log in float64 like the numpy
  fbank; its stage-06 drift against pyannote is within pyannote's own noise on
  every recording measured (docs/precision.md, The fbank).

With the graph and the trunk/head split, :class:`DeviceChain` runs the three
sessions through IOBinding: the crops go to the device once per batch, the fbank
and the trunk's frame features stay there (OrtValues handed from one session to
the next), and only the embeddings come back. On the CPU provider the "device" is
the host, so the same code runs (and is tested) here, and gives bit for bit what
the three sessions give through plain ``run`` calls.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import runtime

BACKENDS = ("auto", "numpy", "graph")
FILENAME = "fbank.onnx"


def resolve(choice: str, device: str, folder: str | Path) -> tuple[str, str]:
    """("numpy" | "graph", reason) for an --fbank choice. `auto`: the graph on CUDA
    (when the export has one), numpy on a CPU (measured no faster there: docs/performance.md)."""
    if choice not in BACKENDS:
        raise ValueError(f"fbank must be one of {', '.join(BACKENDS)}, not {choice}")
    present = (Path(folder) / FILENAME).is_file()
    if choice == "numpy":
        return "numpy", "numpy (asked for)"
    if choice == "graph":
        if not present:
            raise runtime.ModelError(f"--fbank graph asked for, but {Path(folder) / FILENAME} is missing (run 'verify.py export')")
        return "graph", "graph (asked for)"
    if runtime.resolve(device)[0] != "cuda":
        return "numpy", "numpy (CPU)"
    if not present:
        return "numpy", f"numpy ({FILENAME} not in the export)"
    return "graph", "graph (CUDA)"


class FbankGraph:
    """``compute_fbank`` by ``fbank.onnx``: (batch, channels, samples) -> (batch, frames, mel)."""

    def __init__(self, folder: str | Path, device: str = "auto", threads: int | None = None, fbank_params: dict | None = None):
        self.session = runtime.session(Path(folder) / FILENAME, device=device, threads=threads)
        self.meta = runtime.metadata(self.session)
        if self.meta.get("kind") != "fbank":
            raise runtime.ModelError(f"{folder}/{FILENAME} is no fbank graph (kind: {self.meta.get('kind')})")
        if fbank_params is not None:
            mismatch = sorted(k for k, v in dict(fbank_params).items() if self.meta["fbank"].get(k, v) != v)
            if mismatch:
                raise runtime.ModelError(f"{folder}/{FILENAME} was built for other fbank options ({', '.join(mismatch)})")

    def __call__(self, waveforms: np.ndarray, last: bool = False) -> np.ndarray:
        x = runtime.as_float32(waveforms)
        if x.ndim == 2:
            x = x[:, None, :]
        return runtime.run(self.session, {"waveforms": x}, last)[0]


def _device(sess) -> str:
    return "cuda" if sess.get_providers()[0] == runtime.CUDA else "cpu"


class DeviceChain:
    """crops -> fbank -> trunk -> head through IOBinding, intermediates on the device."""

    def __init__(self, fbank: FbankGraph, trunk, head):
        self.fbank, self.trunk, self.head = fbank.session, trunk, head
        self.device = _device(self.trunk)
        self._ort = runtime._onnxruntime()

    def _value(self, array: np.ndarray):
        return self._ort.OrtValue.ortvalue_from_numpy(runtime.as_float32(array), self.device, 0)

    def _run(self, sess, inputs: dict, output: str, last: bool):
        binding = sess.io_binding()
        for name, value in inputs.items():
            binding.bind_ortvalue_input(name, value)
        binding.bind_output(output, self.device, 0)
        shrink = last and self.device == "cpu"
        sess.run_with_iobinding(binding, runtime._shrink() if shrink else None)
        return binding.get_outputs()[0]

    def features(self, crops: np.ndarray, last: bool = False):
        """The fbank of `crops` as a device OrtValue."""
        x = runtime.as_float32(crops)
        if x.ndim == 2:
            x = x[:, None, :]
        return self._run(self.fbank, {"waveforms": self._value(x)}, "fbank", last)

    def __call__(self, crops: np.ndarray, weights: np.ndarray, last: bool = False, keep_fbank: bool = False):
        """(embeddings (chunks, speakers, dim) on the host, fbank on the host or None)."""
        fbank = self.features(crops, last)
        frames = self._run(self.trunk, {"fbank": fbank}, "frames", last)
        embeddings = self._run(self.head, {"frames": frames, "weights": self._value(weights)}, "embeddings", last)
        return embeddings.numpy(), (fbank.numpy() if keep_fbank else None)
