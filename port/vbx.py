"""VBx: variational Bayes clustering of x-vectors in the PLDA space (stage 13).

Mirrors pyannote.audio 4.0.7's ``utils/vbx.py: VBx, cluster_vbx`` (L. Burget,
P. Pálka, after BUT Speech@FIT's VB_diarization.py; HMM dropped by H. Bredin),
in the same arithmetic order, so results are bit for bit pyannote's.  The only
addition is the optional ``trace(stage, name, value)`` hook, which only observes.
"""

from __future__ import annotations

import sys

import numpy as np
from scipy.special import logsumexp, softmax

__all__ = ["VBx", "cluster_vbx"]

STAGE = "13-vbx"


def VBx(
    X,
    Phi,
    Fa=1.0,
    Fb=1.0,
    pi=10,
    gamma=None,
    maxIters=10,
    epsilon=1e-4,
    alphaQInit=1.0,
    ref=None,
    plot=False,
    return_model=False,
    alpha=None,
    invL=None,
    trace=None,
):
    """`pyannote.audio.utils.vbx.VBx`: X (T, D) features, Phi (D,) across-class covariance
    diagonal; returns (gamma (T, S), pi (S,), Li [[ELBO], ...]) + (alpha, invL) if return_model.

    ``ref`` and ``plot`` are accepted and ignored, as in pyannote.  ``trace``, when given,
    sees ``iter<k>_out_gamma``, ``iter<k>_out_pi``, ``iter<k>_out_elbo`` each iteration."""
    D = X.shape[1]  # feature (e.g. x-vector) dimensionality

    if type(pi) is int:
        pi = np.ones(pi) / pi

    if gamma is None:
        # initialize gamma from flat Dirichlet prior with concentration parameter alphaQInit
        gamma = np.random.gamma(alphaQInit, size=(X.shape[0], len(pi)))
        gamma = gamma / gamma.sum(1, keepdims=True)

    assert gamma.shape[1] == len(pi) and gamma.shape[0] == X.shape[0]

    G = -0.5 * (np.sum(X**2, axis=1, keepdims=True) + D * np.log(2 * np.pi))  # per-frame constant term in (23)
    V = np.sqrt(Phi)  # between (5) and (6)
    rho = X * V  # (18)
    Li = []
    ELBO = None
    for ii in range(maxIters):
        # do not start with estimating speaker models if those are provided in the argument
        if ii > 0 or alpha is None or invL is None:
            invL = 1.0 / (1 + Fa / Fb * gamma.sum(axis=0, keepdims=True).T * Phi)  # (17) for all speakers
            alpha = Fa / Fb * invL * gamma.T.dot(rho)  # (16) for all speakers
        log_p_ = Fa * (rho.dot(alpha.T) - 0.5 * (invL + alpha**2).dot(Phi) + G)  # (23) for all speakers

        # use GMM update
        eps = 1e-8
        lpi = np.log(pi + eps)
        log_p_x = logsumexp(log_p_ + lpi, axis=-1)  # marginal LLH of each data point
        log_pX_ = np.sum(log_p_x, axis=0)  # total LLH over all data points (to monitor ELBO)

        gamma = np.exp(log_p_ + lpi - log_p_x[:, None])  # responsibilities
        pi = np.sum(gamma, axis=0)

        pi = pi / pi.sum()

        ELBO = log_pX_ + Fb * 0.5 * np.sum(np.log(invL) - invL - alpha**2 + 1)  # (25)
        Li.append([ELBO])
        if trace is not None:
            trace(STAGE, f"iter{ii}_out_gamma", gamma)
            trace(STAGE, f"iter{ii}_out_pi", pi)
            trace(STAGE, f"iter{ii}_out_elbo", np.float64(ELBO))

        if ii > 0 and ELBO - Li[-2][0] < epsilon:
            if ELBO - Li[-2][0] < 0:
                # pyannote prints this to stdout; stderr here keeps stdout (RTTM) clean
                print("WARNING: Value of auxiliary function has decreased!", file=sys.stderr)
            break
    return (gamma, pi, Li) + ((alpha, invL) if return_model else ())


def cluster_vbx(ahc_init, fea, Phi, Fa, Fb, maxIters=20, init_smoothing=7.0, trace=None):
    """`pyannote.audio.utils.vbx.cluster_vbx`: VBx initialised from AHC labels ahc_init (T,),
    one-hot smoothed by softmax(init_smoothing * onehot); returns (gamma (T, K), pi (K,)).

    ``trace(stage, name, value)``, stage ``"13-vbx"``: in_Fa, in_Fb, in_max_iters,
    in_init_smoothing, out_qinit, the per-iteration iter<k>_out_{gamma,pi,elbo}, then
    out_elbo (iterations,), out_iterations, out_gamma, out_pi."""
    if trace is not None:
        trace(STAGE, "in_Fa", np.float64(Fa))
        trace(STAGE, "in_Fb", np.float64(Fb))
        trace(STAGE, "in_max_iters", np.float64(maxIters))
        trace(STAGE, "in_init_smoothing", np.float64(init_smoothing))
    qinit = np.zeros((len(ahc_init), ahc_init.max() + 1))
    qinit[range(len(ahc_init)), ahc_init.astype(int)] = 1.0
    qinit = qinit if init_smoothing < 0 else softmax(qinit * init_smoothing, axis=1)
    if trace is not None:
        trace(STAGE, "out_qinit", qinit)
    gamma, pi, Li, _, _ = VBx(
        fea,
        Phi,
        Fa=Fa,
        Fb=Fb,
        pi=qinit.shape[1],
        gamma=qinit,
        maxIters=maxIters,
        return_model=True,
        trace=trace,
    )
    if trace is not None:
        trace(STAGE, "out_elbo", np.array([elbo for elbo, in Li], dtype=np.float64))
        trace(STAGE, "out_iterations", np.int64(len(Li)))
        trace(STAGE, "out_gamma", gamma)
        trace(STAGE, "out_pi", pi)
    return gamma, pi
