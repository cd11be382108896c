"""The continuous categorical normalizer Op: backends, shapes and gradient.

References: finite differences of the Op itself (pytensor's verify_grad) for the gradient,
and mpmath (tests/cc_reference.py) for the values in both backends.
"""

from __future__ import annotations

import cc_reference as ref
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad

from softbayes.ops.continuous_categorical import (
    CCLogNormalizer,
    cc_log_normalizer_and_mean_op,
    log_normalizer,
    log_normalizer_and_mean,
)


@pytest.mark.parametrize("mode", ["NUMBA", "FAST_COMPILE"])
def test_backends_match_mpmath(mode):
    eta = np.array([[0.0, 1e-12, -2.0, 5.0], [3.0, 3.0, 3.0, 3.0], [700.0, -700.0, 0.0, 1.0]])
    x = pt.matrix("x")
    log_c, mean = log_normalizer_and_mean(x)
    fn = pytensor.function([x], [log_c, mean], mode=mode)
    got_c, got_mean = fn(eta)
    for row, c, m in zip(eta, got_c, got_mean, strict=True):
        want = ref.log_normalizer(row)
        assert abs(c - want) <= 1e-10 * max(1.0, abs(want))
        np.testing.assert_allclose(m, ref.mean(list(row)), rtol=0, atol=1e-10)


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 6)])
def test_shapes_and_infer_shape(shape):
    x = pt.tensor("x", shape=(None,) * len(shape))
    log_c, mean = cc_log_normalizer_and_mean_op(x)
    fn = pytensor.function([x], [log_c.shape, mean.shape])
    got = fn(np.zeros(shape))
    assert tuple(got[0]) == shape[:-1] and tuple(got[1]) == shape
    static = pt.tensor("s", shape=shape)
    assert cc_log_normalizer_and_mean_op(static)[0].type.shape == shape[:-1]


def test_gradient_against_finite_differences():
    rng = np.random.default_rng(1)
    eta = rng.normal(size=(3, 4))
    weights = rng.normal(size=3)
    verify_grad(lambda e: pt.sum(weights * log_normalizer(e)), [eta], rng=rng, eps=1e-7)


def test_gradient_is_minus_the_mean_and_one_node():
    x = pt.vector("x")
    log_c = log_normalizer(x)
    g = pytensor.grad(log_c, x)
    fn = pytensor.function([x], [log_c, g])
    nodes = [n for n in fn.maker.fgraph.apply_nodes if isinstance(n.op, CCLogNormalizer)]
    assert len(nodes) == 1  # value and gradient share one kernel call
    eta = np.array([0.5, -1.0, 0.25])
    np.testing.assert_allclose(fn(eta)[1], -np.array(ref.mean(list(eta))), atol=1e-12)


def test_numpy_inputs_stay_numpy_and_ints_are_cast():
    assert isinstance(log_normalizer(np.zeros(3)), np.ndarray)
    out = cc_log_normalizer_and_mean_op(pt.as_tensor_variable(np.array([0, 1, 2])))
    assert out[0].dtype.startswith("float")
    with pytest.raises(TypeError, match="last axis"):
        cc_log_normalizer_and_mean_op(pt.scalar("s"))
