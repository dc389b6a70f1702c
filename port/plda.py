"""community-1's PLDA: x-vectors into the PLDA latent space VBx clusters in.

Mirrors pyannote.audio 4.0.7's ``core/plda.py: PLDA`` and ``utils/vbx.py:
vbx_setup, l2_norm`` (BUT Speech@FIT's VBx recipe), keeping pyannote's operation
order and ``scipy.linalg.eigh(B, W)`` so that, in float64, every value is bit for
bit pyannote's.  The model files (``xvec_transform.npz``: ``mean1`` (D,), ``mean2``
(L,), ``lda`` (D, L); ``plda.npz``: ``mu`` (L,), ``tr`` (L, L), ``psi`` (L,)) ship
in ``reference/pretrained/plda/`` (CC-BY-4.0, BUT Speech@FIT; see its README).
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np
from scipy.linalg import eigh

__all__ = ["PLDA", "PLDAError", "l2_norm", "vbx_setup", "load_npz"]


class PLDAError(ValueError):
    """A PLDA model file that is missing, unreadable or damaged (message names the file)."""


def l2_norm(vec_or_matrix: np.ndarray) -> np.ndarray:
    """`pyannote.audio.utils.vbx.l2_norm`: one vector, or each row of a matrix, divided by its L2 norm."""
    if len(vec_or_matrix.shape) == 1:
        return vec_or_matrix / np.linalg.norm(vec_or_matrix)
    elif len(vec_or_matrix.shape) == 2:
        return vec_or_matrix / np.linalg.norm(vec_or_matrix, axis=1, ord=2)[:, np.newaxis]
    else:
        raise ValueError(
            "Wrong number of dimensions, 1 or 2 is supported, not %i." % len(vec_or_matrix.shape)
        )


def load_npz(path: str | Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named float arrays of an .npz file; anything wrong raises PLDAError naming the file."""
    path = Path(path)
    if not path.exists():
        raise PLDAError(f"PLDA file {path}: not found")
    if not path.is_file():
        raise PLDAError(f"PLDA file {path}: not a file")
    npz = None
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise PLDAError(f"PLDA file {path}: not an .npz archive")
        with npz:
            missing = [key for key in keys if key not in npz.files]
            if missing:
                raise PLDAError(
                    f"PLDA file {path}: missing key(s) {', '.join(missing)} (has: {', '.join(npz.files) or 'none'})"
                )
            arrays = {key: npz[key] for key in keys}
    except PLDAError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as error:
        if "pickle" in str(error):  # an object array, or numpy's guess for bytes that are neither .npy nor .npz
            what = "holds pickled (object) arrays, not loaded" if npz is not None else "not an .npz archive"
            raise PLDAError(f"PLDA file {path}: {what}") from None
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise PLDAError(f"PLDA file {path}: unreadable or truncated ({reason})") from None
    for key, value in arrays.items():
        if value.dtype.kind not in "fiu":
            raise PLDAError(f"PLDA file {path}: {key} has dtype {value.dtype}, not a number")
        if not np.all(np.isfinite(value)):
            raise PLDAError(f"PLDA file {path}: {key} has non-finite values")
    return arrays


def _check_shapes(transform_npz, plda_npz, x: dict, p: dict) -> None:
    mean1, mean2, lda = x["mean1"], x["mean2"], x["lda"]
    if lda.ndim != 2 or 0 in lda.shape:
        raise PLDAError(f"PLDA file {transform_npz}: lda has shape {lda.shape}, want (D, L)")
    D, L = lda.shape
    for key, value, want in (("mean1", mean1, (D,)), ("mean2", mean2, (L,))):
        if value.shape != want:
            raise PLDAError(f"PLDA file {transform_npz}: {key} has shape {value.shape}, want {want} (lda is {lda.shape})")
    for key, want in (("mu", (L,)), ("tr", (L, L)), ("psi", (L,))):
        if p[key].shape != want:
            raise PLDAError(f"PLDA file {plda_npz}: {key} has shape {p[key].shape}, want {want} (lda is {lda.shape})")


def vbx_setup(transform_npz: str | Path, plda_npz: str | Path):
    """`pyannote.audio.utils.vbx.vbx_setup`, returning the arrays instead of closures:
    (mean1, mean2, lda, plda_mu, plda_tr, plda_psi), with ``plda_tr``/``plda_psi`` the
    generalised eigenvectors/values of (B, W) in descending order, as pyannote keeps them."""
    x = load_npz(transform_npz, ("mean1", "mean2", "lda"))
    p = load_npz(plda_npz, ("mu", "tr", "psi"))
    _check_shapes(transform_npz, plda_npz, x, p)
    mean1, mean2, lda = x["mean1"], x["mean2"], x["lda"]
    plda_mu, plda_tr, plda_psi = p["mu"], p["tr"], p["psi"]
    try:
        with np.errstate(divide="raise", over="raise", invalid="raise"):
            # within-class, between-class matrices (W, B)
            W = np.linalg.inv(plda_tr.T.dot(plda_tr))
            B = np.linalg.inv((plda_tr.T / plda_psi).dot(plda_tr))
        # generalised eigenvalue problem for whitening, eigenvalues sorted descending
        acvar, wccn = eigh(B, W)
    except (np.linalg.LinAlgError, FloatingPointError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise PLDAError(f"PLDA file {plda_npz}: not a usable PLDA ({reason})") from None
    plda_psi = acvar[::-1]
    plda_tr = wccn.T[::-1]
    return mean1, mean2, lda, plda_mu, plda_tr, plda_psi


class PLDA:
    """`pyannote.audio.core.plda.PLDA`: ``PLDA(transform_npz, plda_npz, lda_dimension=128)``."""

    def __init__(self, transform_npz: str | Path, plda_npz: str | Path, lda_dimension: int = 128):
        self.transform_npz = Path(transform_npz)
        self.plda_npz = Path(plda_npz)
        (self._mean1, self._mean2, self._lda, self._plda_mu, self._plda_tr, self._plda_psi) = vbx_setup(
            transform_npz, plda_npz
        )
        if not 1 <= int(lda_dimension) <= self._lda.shape[1]:
            raise PLDAError(
                f"PLDA file {self.transform_npz}: lda_dimension {lda_dimension} outside 1..{self._lda.shape[1]}"
            )
        self.lda_dimension = lda_dimension

    @property
    def phi(self) -> np.ndarray:
        """`PLDA.phi`: between-class covariance (diagonal) in the PLDA space, first lda_dimension."""
        return self._plda_psi[: self.lda_dimension]

    def xvec_tf(self, x: np.ndarray) -> np.ndarray:
        """`vbx_setup`'s ``xvec_tf``: centre, L2-normalise, LDA, centre, L2-normalise (scaled)."""
        lda, mean1, mean2 = self._lda, self._mean1, self._mean2
        return np.sqrt(lda.shape[1]) * l2_norm(lda.T.dot(np.sqrt(lda.shape[0]) * l2_norm(x - mean1).T).T - mean2)

    def plda_tf(self, x0: np.ndarray, lda_dim: int | None = None) -> np.ndarray:
        """`vbx_setup`'s ``plda_tf``: centre, rotate into the PLDA space, keep the first lda_dim."""
        if lda_dim is None:
            lda_dim = self._lda.shape[1]
        return (x0 - self._plda_mu).dot(self._plda_tr.T)[:, :lda_dim]

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        """`PLDA.__call__`: (num_embeddings, D) embeddings -> (num_embeddings, lda_dimension) fea."""
        return self.plda_tf(self.xvec_tf(embeddings), lda_dim=self.lda_dimension)
