"""Disentanglement, completeness and informativeness (Eastwood & Williams 2018), for real factors.

One regressor per factor ``k`` reads the factor from a code of ``D`` dimensions; its importance
weights give a matrix ``R`` (``D x K``, here the impurity importances of a random forest from
scikit-learn, one of the two regressors of the paper). Then, with entropies in base ``K`` or ``D``,

.. math::
    D_d = 1 - H_K\Big(\frac{R_{d\cdot}}{\sum_k R_{dk}}\Big), \quad
    \text{disentanglement} = \sum_d \rho_d D_d, \quad \rho_d = \frac{\sum_k R_{dk}}{\sum_{dk} R_{dk}},

.. math::
    C_k = 1 - H_D\Big(\frac{R_{\cdot k}}{\sum_d R_{dk}}\Big), \quad
    \text{completeness} = \frac1K \sum_k C_k,

and the *informativeness* is the regressors' mean absolute error on held-out images (lower is
better; the paper's is a normalised squared error, we keep the error of Ruiz et al.'s Table 1). A
dimension that predicts one factor only scores ``D_d = 1``; a factor read from one dimension only
``C_k = 1``.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestRegressor
from torch import Tensor


def normalised_entropy(p: np.ndarray, axis: int) -> np.ndarray:
    """Entropy of the distributions along ``axis`` (each sums to 1), in units of ``log(size of axis)``:
    0 for a one-hot distribution, 1 for a uniform one."""
    size = p.shape[axis]
    if size < 2:
        return np.zeros(np.delete(p.shape, axis))
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis) / np.log(size)


def dci_scores(importance: np.ndarray) -> dict[str, float]:
    """Disentanglement and completeness of an importance matrix ``[D, K]`` (non-negative; see the module)."""
    r = np.abs(np.asarray(importance, dtype=np.float64))
    if r.ndim != 2 or r.sum() <= 0:
        raise ValueError(f"the importance matrix must be [code dims, factors] with a positive sum, got shape {r.shape}")
    per_dim, per_factor = r.sum(1), r.sum(0)
    by_dim = np.divide(r, per_dim[:, None], out=np.full_like(r, 1.0 / r.shape[1]), where=per_dim[:, None] > 0)
    by_factor = np.divide(r, per_factor[None], out=np.full_like(r, 1.0 / r.shape[0]), where=per_factor[None] > 0)
    disentanglement = float(((1 - normalised_entropy(by_dim, 1)) * per_dim / per_dim.sum()).sum())
    completeness = float((1 - normalised_entropy(by_factor, 0)).mean())
    return {"disentanglement": disentanglement, "completeness": completeness}


def dci(
    train_codes: Tensor, train_factors: Tensor, test_codes: Tensor, test_factors: Tensor, seed: int = 0,
    trees: int = 50, depth: int = 8,
) -> dict[str, object]:
    """Fit one random forest per factor on ``train_codes`` and return ``disentanglement``,
    ``completeness``, ``informativeness_mae`` (mean over factors of the test MAE), ``mae`` (per factor)
    and ``importance`` (``[D, K]``).

    Raises
    ------
    ValueError
        If codes and factors differ in length or the factors are not ``[N, K]`` on both sets.
    """
    x, y = train_codes.detach().double().cpu().numpy(), train_factors.detach().double().cpu().numpy()
    x_test, y_test = test_codes.detach().double().cpu().numpy(), test_factors.detach().double().cpu().numpy()
    if y.ndim != 2 or y_test.ndim != 2 or y.shape[1] != y_test.shape[1] or len(x) != len(y) or len(x_test) != len(y_test):
        raise ValueError(f"dci needs codes [N, D] and factors [N, K] of the same N on each set, got train "
                         f"{x.shape} / {y.shape} and test {x_test.shape} / {y_test.shape}")
    importance, mae = np.zeros((x.shape[1], y.shape[1])), np.zeros(y.shape[1])
    for k in range(y.shape[1]):
        forest = RandomForestRegressor(n_estimators=trees, max_depth=depth, random_state=seed, n_jobs=1).fit(x, y[:, k])
        importance[:, k] = forest.feature_importances_
        mae[k] = np.abs(forest.predict(x_test) - y_test[:, k]).mean()
    return {**dci_scores(importance), "informativeness_mae": float(mae.mean()), "mae": mae.tolist(),
            "importance": importance}
