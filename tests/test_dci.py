"""DCI (Eastwood & Williams 2018): the scores of hand-made importance matrices, and codes built to pass or fail."""

import numpy as np
import pytest
import torch

from dislib import dci


def test_a_diagonal_importance_is_perfectly_disentangled_and_complete():
    scores = dci.dci_scores(np.diag([0.5, 0.3, 0.2]))
    assert scores == pytest.approx({"disentanglement": 1.0, "completeness": 1.0})


def test_a_uniform_importance_scores_zero_and_a_mixed_one_by_hand():
    assert dci.dci_scores(np.ones((4, 2))) == pytest.approx({"disentanglement": 0.0, "completeness": 0.0})
    # dim 0 reads both factors equally (D_0 = 0), dim 1 only factor 0 (D_1 = 1); weights 2/3 and 1/3
    r = np.array([[1.0, 1.0], [1.0, 0.0]])
    p0 = np.array([0.5, 0.5])  # factor 0 spread over both dims: C_0 = 0; factor 1 in dim 0 only: C_1 = 1
    assert dci.normalised_entropy(p0[None], 1) == pytest.approx([1.0])
    assert dci.dci_scores(r) == pytest.approx({"disentanglement": 1 / 3, "completeness": 0.5})


def test_codes_that_copy_the_factors_beat_codes_that_mix_them():
    g = torch.Generator().manual_seed(0)
    factors = torch.rand(1200, 2, generator=g)
    noise = 0.01 * torch.randn(1200, 1, generator=g)
    copied = torch.cat([factors, noise], 1)
    mixed = torch.cat([factors.sum(1, keepdim=True), (factors[:, :1] - factors[:, 1:]), noise], 1)
    clean = dci.dci(copied[:800], factors[:800], copied[800:], factors[800:], trees=20)
    tangled = dci.dci(mixed[:800], factors[:800], mixed[800:], factors[800:], trees=20)
    assert clean["disentanglement"] > 0.9 and clean["completeness"] > 0.9
    assert tangled["disentanglement"] < clean["disentanglement"] - 0.3
    assert clean["informativeness_mae"] < 0.05 and clean["importance"].shape == (3, 2)


def test_dci_names_mismatched_inputs():
    with pytest.raises(ValueError, match="same N on each set"):
        dci.dci(torch.zeros(10, 3), torch.zeros(9, 2), torch.zeros(5, 3), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="positive sum"):
        dci.dci_scores(np.zeros((3, 2)))
