"""Tests for jtricks.data augmentation (shift / rotate / zoom), per example under vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jtricks.data as jd

IMAGE = jnp.zeros((9, 9, 1)).at[2:7, 4, 0].set(1.0)  # a vertical bar through the centre


def test_integer_shift_moves_content_exactly():
    out = jd.affine_transform(IMAGE, jnp.eye(2), (1.0, 2.0))
    np.testing.assert_allclose(out, np.roll(np.roll(IMAGE, 1, 0), 2, 1), atol=1e-6)


def test_rotate_90_degrees_and_zoom_identity():
    rot = jd.affine_transform(IMAGE, jnp.array([[0.0, -1.0], [1.0, 0.0]]))
    np.testing.assert_allclose(rot[..., 0], np.rot90(IMAGE[..., 0], -1), atol=1e-5)
    np.testing.assert_allclose(jd.random_zoom(jax.random.PRNGKey(0), IMAGE, (1.0, 1.0)), IMAGE, atol=1e-6)
    np.testing.assert_allclose(jd.random_rotate(jax.random.PRNGKey(0), IMAGE, 0.0), IMAGE, atol=1e-6)
    np.testing.assert_allclose(jd.random_affine(jax.random.PRNGKey(0), IMAGE), IMAGE, atol=1e-6)


def _all_three(key, image, _):
    return jd.random_affine(key, image, max_shift=1.0, max_degrees=10.0, zoom_range=(0.9, 1.1))


@pytest.mark.parametrize(
    "fn, arg",
    [(jd.random_shift, 1.5), (jd.random_rotate, 20.0), (jd.random_zoom, (0.8, 1.2)), (_all_three, None)],
)
def test_vmap_per_example_keys(fn, arg):
    images = jnp.stack([IMAGE] * 4)
    keys = jax.random.split(jax.random.PRNGKey(1), 4)
    out = jax.jit(jax.vmap(lambda k, im: fn(k, im, arg)))(keys, images)
    assert out.shape == images.shape and out.dtype == images.dtype
    # per-example keys: examples differ; the same key reproduces
    assert not np.allclose(out[0], out[1])
    np.testing.assert_allclose(out[2], fn(keys[2], IMAGE, arg), atol=1e-5)


def test_dtype_and_2d_images():
    img = (IMAGE[..., 0] * 255).astype(jnp.uint8)
    out = jd.random_shift(jax.random.PRNGKey(0), img, 1.0)
    assert out.dtype == jnp.uint8 and out.shape == (9, 9)
    assert jd.random_rotate(jax.random.PRNGKey(0), IMAGE.astype(jnp.bfloat16)).dtype == jnp.bfloat16


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_shift=-1"):
        jd.random_shift(jax.random.PRNGKey(0), IMAGE, -1.0)
    with pytest.raises(ValueError, match="zoom_range"):
        jd.random_zoom(jax.random.PRNGKey(0), IMAGE, (1.2, 0.8))
    with pytest.raises(ValueError, match="one image"):
        jd.random_shift(jax.random.PRNGKey(0), jnp.stack([IMAGE] * 2))


def test_traced_hyperparameter_sweep():
    key = jax.random.PRNGKey(3)
    out = jax.jit(jax.vmap(lambda m: jd.random_shift(key, IMAGE, m)))(jnp.array([0.0, 2.0]))
    np.testing.assert_allclose(out[0], IMAGE, atol=1e-6)  # max_shift 0: unchanged
    assert not np.allclose(out[1], IMAGE)
