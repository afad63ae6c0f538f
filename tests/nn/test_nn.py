"""phi4si.nn: LatticeUNet (shapes, sizes, config, symmetries, linear head, precisions, torch.func)
and the lattice-symmetry augmentation."""

import json

import pytest
import torch
from torch.func import functional_call, jacrev, vmap

from phi4si.errors import ParameterError
from phi4si.nn import (LatticeUNet, UNetConfig, apply_symmetry, count_parameters, preset, random_symmetry,
                       sample_symmetry)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These models are tiny: one thread is fastest, and immune to oversubscribed shared cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def make(dtype=torch.float32, seed=0, **kw):
    """A small model whose trunk is *not* zero, so tests see the whole network."""
    torch.manual_seed(seed)
    kw = {"base_channels": 8, "channel_mult": (1, 2), "head_hidden": 8, "zero_init": False, **kw}
    return LatticeUNet(UNetConfig(**kw)).to(dtype)


def inputs(B=3, C=1, shape=(8, 8), Ca=1, dtype=torch.float32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, C, *shape, generator=g, dtype=dtype),
            torch.rand(B, Ca, *shape, generator=g, dtype=dtype))


# --------------------------------------------------------------------------------------- network
def test_same_weights_any_compatible_size():
    model = make(channel_mult=(1, 2, 2))
    for L in (8, 16, 32):
        x, a = inputs(B=2, shape=(L, L))
        y = model(x, a)
        assert y.shape == (2, 1, L, L) and torch.isfinite(y).all()
    x, a = inputs(B=2, shape=(8, 16))  # rectangular
    assert model(x, a).shape == (2, 1, 8, 16)


@pytest.mark.parametrize("shape", [(6, 6), (8, 10), (12, 2)])
def test_incompatible_size_raises_helpful_error(shape):
    model = make(channel_mult=(1, 2, 2))  # needs multiples of 4
    x, a = inputs(B=1, shape=shape)
    with pytest.raises(ValueError, match=r"multiple of 2\*\*2 = 4") as err:
        model(x, a)
    assert str(shape) in str(err.value) and isinstance(err.value, ParameterError)


def test_wrong_channels_and_time_shape_raise():
    model = make()
    x, a = inputs(C=1)
    with pytest.raises(ValueError, match="expects x of shape"):
        model(torch.randn(3, 2, 8, 8), a)
    with pytest.raises(ValueError, match="does not broadcast"):
        model(x, torch.rand(3, 1, 4, 4))


def test_time_broadcasting():
    model = make()
    x, _ = inputs()
    t = torch.tensor([0.1, 0.5, 0.9])
    full = model(x, t.view(3, 1, 1, 1).expand(3, 1, 8, 8))
    torch.testing.assert_close(model(x, t), full, rtol=0, atol=0)
    torch.testing.assert_close(model(x, 0.5), model(x, torch.full((3, 1, 8, 8), 0.5)), rtol=0, atol=0)


def test_config_round_trip_and_presets():
    cfg = UNetConfig(dim=1, in_channels=3, a_channels=3, out_channels=2, channel_mult=[1, 2, 4],
                     padding="zeros", norm="group", activation="gelu", a_features=["a", "1-a"],
                     linear_kernel=3, odd=True)
    assert cfg.channel_mult == (1, 2, 4) and cfg.size_multiple == 4
    assert UNetConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert UNetConfig().out_channels == 1
    with pytest.raises(ValueError, match="unknown keys"):
        UNetConfig.from_dict({**cfg.to_dict(), "width": 3})
    counts = {n: count_parameters(LatticeUNet(preset(n))) for n in ("tiny", "small", "medium")}
    assert 1_000 <= counts["tiny"] <= 5_000 and 20_000 <= counts["small"] <= 60_000
    assert 100_000 <= counts["medium"] <= 300_000
    assert preset("small", dim=1, padding="zeros").dim == 1
    with pytest.raises(ValueError, match="unknown UNet preset"):
        preset("huge")


@pytest.mark.parametrize("bad", [
    {"dim": 3}, {"in_channels": 0}, {"a_channels": 0}, {"channel_mult": ()},
    {"channel_mult": (1, 0)}, {"padding": "periodic"}, {"norm": "batch"}, {"activation": "relu"},
    {"a_features": ("a", "log(a)")}, {"a_features": ("a", "a")}, {"linear_kernel": 2},
    {"odd": 1}, {"base_channels": 2.5}, {"channel_mult": 2},
])
def test_bad_config_raises(bad):
    with pytest.raises(ValueError, match="UNetConfig"):
        UNetConfig(**bad)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.float64, 1e-12)])
@pytest.mark.parametrize("mult,shift", [((1, 2), (2, 4)), ((1, 2, 2), (4, -8)), ((1,), (1, 3))])
def test_translation_equivariance_circular(dtype, tol, mult, shift):
    model = make(dtype, channel_mult=mult, linear_kernel=3)
    x, a = inputs(B=2, shape=(16, 16), dtype=dtype)
    roll = lambda t: torch.roll(t, shift, dims=(2, 3))  # noqa: E731
    y = model(x, a)
    err = (model(roll(x), roll(a)) - roll(y)).abs().max() / y.abs().max()
    assert err < tol


def test_translation_by_odd_shift_is_not_built_in():
    """Sanity check of the test above: a shift off the pooling grid is not an exact symmetry."""
    model = make(torch.float64, channel_mult=(1, 2))
    x, a = inputs(B=1, shape=(8, 8), dtype=torch.float64)
    roll = lambda t: torch.roll(t, 1, dims=2)  # noqa: E731
    assert (model(roll(x), roll(a)) - roll(model(x, a))).abs().max() > 1e-8


@pytest.mark.parametrize("kw", [{}, {"linear_kernel": 3}, {"linear_head": False}, {"in_channels": 2, "a_channels": 2}])
def test_odd_symmetry_exact(kw):
    model = make(odd=True, **kw)
    x, a = inputs(C=model.config.in_channels, Ca=model.config.a_channels)
    y = model(x, a)
    assert torch.equal(model(-x, a), -y) and y.abs().max() > 0
    assert torch.equal(model(torch.zeros_like(x), a), torch.zeros_like(y))


def test_linear_head_is_the_initial_model():
    torch.manual_seed(0)
    model = LatticeUNet(UNetConfig(base_channels=8, channel_mult=(1, 2), zero_init=True))
    x, a = inputs()
    w, c = model.linear_coefficients(x, a)
    assert w.shape == (3, 1, 1, 8, 8) and c.shape == (3, 1, 8, 8)
    assert torch.equal(model(x, a), w[:, :, 0] * x + c)
    # linear in x: exact extrapolation to large |x|; the Jacobian is diag(w(a))
    torch.testing.assert_close(model(100 * x, a) - c, 100 * (model(x, a) - c))
    w1, _ = model.linear_coefficients(x[:1], a[:1])
    J = jacrev(lambda z: model(z[None], a[:1])[0].flatten())(x[0]).reshape(64, 64)
    torch.testing.assert_close(J, torch.diag(w1.flatten()), rtol=0, atol=0)
    # odd: the constant c(a) is dropped
    odd = LatticeUNet(UNetConfig(base_channels=8, channel_mult=(1, 2), odd=True))
    w, c = odd.linear_coefficients(x, a)
    assert c is None and torch.equal(odd(x, a), w[:, :, 0] * x)


def test_linear_stencil_head_matches_explicit_stencil():
    model = LatticeUNet(UNetConfig(base_channels=8, channel_mult=(1,), linear_kernel=3, odd=True)).double()
    x, a = inputs(B=2, shape=(4, 6), dtype=torch.float64)
    w, _ = model.linear_coefficients(x, a)  # (B, 1, 9, L1, L2): offsets (i, j) in {0,1,2}^2, row major
    ref = sum(w[:, :, 3 * i + j] * torch.roll(x, (1 - i, 1 - j), dims=(2, 3)) for i in range(3) for j in range(3))
    torch.testing.assert_close(model(x, a), ref, rtol=1e-12, atol=1e-12)


def test_dim1_sequences_and_nonperiodic_padding():
    model = make(dim=1, padding="zeros", channel_mult=(1, 2, 2), in_channels=2, out_channels=3, linear_kernel=3)
    x, a = inputs(B=2, C=2, shape=(64,))
    assert model(x, a).shape == (2, 3, 64)
    for padding in ("zeros", "reflect"):
        for norm in ("none", "group"):
            m = make(padding=padding, norm=norm, activation="gelu", in_channels=3, a_channels=3, linear_kernel=3)
            x, a = inputs(B=2, C=3, Ca=3, shape=(8, 12))
            y = m(x, a)
            assert y.shape == (2, 3, 8, 12) and torch.isfinite(y).all()


def test_float64_and_gradients_reach_every_parameter():
    model = make(torch.float64, odd=True, norm="group", channel_mult=(1, 2, 2))
    x, a = inputs(shape=(8, 8), dtype=torch.float64)
    a = a.requires_grad_()
    y = model(x, a)
    assert y.dtype == torch.float64
    (y.square().mean()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert torch.isfinite(a.grad).all()
    # finite gradient in a at the end points a = 0 and a = 1 (sqrt features)
    a01 = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    a01[..., ::2, :] = 1.0
    a01.requires_grad_()
    model(x[:1], a01).sum().backward()
    assert torch.isfinite(a01.grad).all()


def test_vmap_jacrev_and_autocast():
    model = make(linear_kernel=3)
    x, a = inputs()
    y = model(x, a)
    yv = vmap(lambda xi, ai: model(xi[None], ai[None])[0])(x, a)
    torch.testing.assert_close(yv, y, rtol=1e-5, atol=1e-6)
    params = {k: v.detach() for k, v in model.named_parameters()}
    J = vmap(jacrev(lambda xi, ai: functional_call(model, params, (xi[None], ai[None]))[0].sum()))(x, a)
    x_ = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(model(x_, a).sum(), x_)
    torch.testing.assert_close(J, g, rtol=1e-5, atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        yb = model(x, a)
    assert torch.isfinite(yb).all() and (yb.float() - y).abs().max() < 0.1 * y.abs().max()


# ---------------------------------------------------------------------------------- augmentation
def reference(draw, t, field):
    """Per-sample torch.roll / flip / rot90 / sign, the documented semantics."""
    out = []
    for b in range(t.shape[0]):
        u = t[b]
        d = t.ndim - 2
        u = torch.roll(u, tuple(draw.shifts[b].tolist()), dims=tuple(range(1, d + 1)))
        for j in range(d):
            if draw.flips[b, j]:
                u = u.flip(1 + j)
        if d == 2:
            u = torch.rot90(u, int(draw.quarter_turns[b]), dims=(-2, -1))
        out.append(u * draw.sign[b] if field else u)
    return torch.stack(out)


@pytest.mark.parametrize("shape", [(6, 6), (4, 8), (10,)])
def test_apply_symmetry_matches_reference(shape):
    g = torch.Generator().manual_seed(3)
    draw = sample_symmetry(16, shape, g, flip_sign=True)
    if len(shape) == 2 and shape[0] != shape[1]:
        assert set(draw.quarter_turns.tolist()) <= {0, 2}
    t = torch.randn(16, 2, *shape, generator=g)
    for field in (True, False):
        assert torch.equal(apply_symmetry(draw, t, field=field), reference(draw, t, field))


def test_augment_consistency_reproducibility_and_sign():
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(32, 1, 8, 8, generator=g), torch.randn(32, 2, 8, 8, generator=g)
    a = torch.rand(32, 1, 8, 8, generator=g)

    def run(seed, ts):
        return random_symmetry(ts, torch.Generator().manual_seed(seed), fields=(0, 1, 3), flip_sign=True)

    y0, y1, ya, y2 = run(5, [x0, x1, a, 2 * x0])
    assert torch.equal(y2, 2 * y0)  # same transform on every tensor
    assert all(torch.equal(u, v) for u, v in zip(run(5, [x0, x1, a, 2 * x0]), (y0, y1, ya, y2)))
    assert not torch.equal(run(6, [x0, x1, a, 2 * x0])[0], y0)
    # multiset of values preserved per sample (up to the sign for fields); a never flipped
    srt = lambda t: t.flatten(1).sort(dim=1).values  # noqa: E731
    assert torch.equal(srt(y0.abs()), srt(x0.abs()))
    flipped = (srt(y0) != srt(x0)).any(1)
    assert 0 < flipped.sum() < 32
    a_out = random_symmetry({"x1": x1, "a": a}, torch.Generator().manual_seed(5), fields=["x1"], flip_sign=True)["a"]
    assert torch.equal(srt(a_out), srt(a)) and (a_out >= 0).all()
    # no spatial transform, no flip: identity; flip needs named fields
    assert torch.equal(random_symmetry([x0], g, translate=False, reflect=False, rotate=False)[0], x0)
    with pytest.raises(ValueError, match="fields"):
        random_symmetry([x0, a], g, flip_sign=True)
    with pytest.raises(ValueError, match="spatial"):
        random_symmetry([x0, torch.rand(32, 1, 4, 4)], g)


def test_augmentation_commutes_with_equivariant_model():
    """Translations by the pooling grid and sign flips commute with a circular, odd model."""
    model = make(torch.float64, odd=True)
    x, a = inputs(B=4, shape=(8, 8), dtype=torch.float64)
    draw = sample_symmetry(4, (8, 8), torch.Generator().manual_seed(2), reflect=False, rotate=False, flip_sign=True)
    draw = type(draw)(2 * draw.shifts, draw.flips, draw.quarter_turns, draw.sign)  # even shifts
    lhs = model(apply_symmetry(draw, x), apply_symmetry(draw, a, field=False))
    torch.testing.assert_close(lhs, apply_symmetry(draw, model(x, a)), rtol=1e-12, atol=1e-12)


def test_docstring_examples():
    import doctest

    import phi4si.nn
    import phi4si.nn.augment
    import phi4si.nn.unet

    for mod in (phi4si.nn, phi4si.nn.unet, phi4si.nn.augment):
        assert doctest.testmod(mod).failed == 0, mod.__name__
