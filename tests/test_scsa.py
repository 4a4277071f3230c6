"""The SCSA aggregator: the published formula, any batch and segment count, the weight tie, training."""
import math

import pytest
import torch

from ops.scsa import SCSA

C, D = 32, 16


def make(**kwargs):
    torch.manual_seed(0)
    options = dict(in_dim=C, dim=D, num_segments=4, spatial_size=(3, 3))
    options.update(kwargs)
    return SCSA(**options)


def reference(m, x, x_rbrc, x_rbrf):
    """The design written out token by token (one head): Q = [w1 X, w2 g1(X_rbrc)],
    K = [w5 X, w4 g2(X_rbrf)], V = w6(X + P), out = X + gamma * w7(softmax(QK^T / sqrt(d)) V)."""
    b, k, c, h, w = x.shape
    out = torch.empty_like(x)
    pos = m.pos_time[:, None, None, :] + m.pos_space.permute(1, 2, 0)[None]          # [K, h, w, C]
    lin = lambda layer, z, bias=None: z @ layer.weight.t() + (bias if bias is not None else
                                                               layer.bias if layer.bias is not None else 0)
    for i in range(b):
        tok = lambda z: torch.stack([z[i, t, :, y, xx] for t in range(k) for y in range(h) for xx in range(w)])
        t0, t1, t2 = tok(x), tok(x_rbrc), tok(x_rbrf)
        g1 = lin(m.w7, lin(m.w6, t1, m.g1.down.bias), m.g1.up.bias)
        g2 = lin(m.w7, lin(m.w6, t2, 0), 0)                         # g2 has no biases
        q = torch.cat([lin(m.w1, t0), lin(m.w2, g1)], 1)
        key = torch.cat([lin(m.w5, t0), lin(m.w4, g2)], 1)
        v = lin(m.w6, t0 + pos.reshape(-1, c))
        y = lin(m.w7, torch.softmax(q @ key.t() / math.sqrt(m.dim), dim=1) @ v)
        n = 0
        for t in range(k):
            for yy in range(h):
                for xx in range(w):
                    out[i, t, :, yy, xx] = x[i, t, :, yy, xx] + m.gamma * y[n]
                    n += 1
    return out


def test_matches_the_published_formula():
    m = make(gamma_init=0.7)
    x, xr, xf = torch.randn(3, 2, 4, C, 3, 3).unbind(0)
    with torch.no_grad():
        torch.testing.assert_close(m(x, xr, xf), reference(m, x, xr, xf), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("b,k,h,w", [(1, 4, 3, 3), (2, 3, 3, 3), (3, 7, 2, 5), (4, 16, 3, 3), (5, 1, 1, 1)])
def test_any_batch_segments_and_map_size(b, k, h, w):
    m = make()
    x = torch.randn(b, k, C, h, w)
    out = m(x)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_positional_table_used_as_is_at_its_size_and_interpolated_otherwise():
    m = make()
    p = m.position(4, 3, 3)
    torch.testing.assert_close(p, m.pos_time[:, None, None, :] + m.pos_space.permute(1, 2, 0)[None])
    p = m.position(9, 5, 2)
    assert p.shape == (9, 5, 2, C)
    assert not torch.allclose(p[0], p[-1])          # still tells frames apart


@pytest.mark.parametrize("k,size", [(8, (3, 3)), (2, (3, 3)), (4, (5, 2)), (4, (3, 3))])
def test_loading_tables_of_another_size_resamples_them(k, size):
    """A module built for another K or map size loads the tables resampled, and then computes what
    the source module computes at those sizes."""
    source = make(gamma_init=0.5)
    target = make(num_segments=k, spatial_size=size)
    target.load_state_dict(source.state_dict())
    assert target.pos_time.shape == (k, C) and target.pos_space.shape == (C, *size)
    x = torch.randn(2, k, C, *size)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x))
        torch.testing.assert_close(target.position(k, *size), source.position(k, *size))


@pytest.mark.parametrize("options", [dict(num_heads=4), dict(norm=True), dict(ffn=True),
                                     dict(num_heads=2, norm=True, ffn=True)])
def test_options(options):
    m = make(**options)
    x = torch.randn(2, 5, C, 3, 3)
    assert m(x, x.flip(1), x.flip(-1)).shape == x.shape


def test_heads_must_split_both_halves():
    with pytest.raises(ValueError, match="divisible"):
        make(num_heads=3)


def test_zero_gamma_is_identity_and_attention_mixes_time_and_space():
    m = make(gamma_init=0.0)
    x = torch.randn(2, 4, C, 3, 3, requires_grad=True)
    assert torch.equal(m(x), x)
    m = make(gamma_init=1.0)
    m(x)[0, 0, :, 0, 0].sum().backward()
    assert x.grad[0, 3, :, 2, 2].abs().sum() > 0     # another frame, another position
    assert x.grad[1].abs().sum() == 0                # never another clip


def test_tied_weights_are_one_parameter():
    m = make()
    for g in (m.g1, m.g2):
        assert g.down.weight is m.w6.weight and g.up.weight is m.w7.weight
        assert g.down.weight.data_ptr() == m.w6.weight.data_ptr()
    ids = [id(p) for p in m.parameters()]
    assert len(ids) == len(set(ids))
    assert sum(p is m.w6.weight for p in m.parameters()) == 1
    fresh = make()
    fresh.load_state_dict(m.state_dict())
    assert fresh.g1.down.weight is fresh.w6.weight and torch.equal(fresh.w6.weight, m.w6.weight)


def test_eval_is_deterministic():
    m = make().eval()
    x = torch.randn(2, 4, C, 3, 3)
    with torch.no_grad():
        assert torch.equal(m(x), m(x))


@pytest.mark.parametrize("options", [dict(), dict(num_heads=2, norm=True, ffn=True)])
def test_one_step_trains_every_parameter(options):
    m = make(**options)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    x = torch.randn(2, 4, C, 3, 3)
    loss = (m(x, x.flip(1), x.flip(-1)) ** 2).mean()
    loss.backward()
    for n, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, n
    torch.optim.SGD(m.parameters(), lr=0.5).step()
    for n, p in m.named_parameters():
        assert not torch.equal(p, before[n]), n
    assert m.g1.down.weight is m.w6.weight


def test_autocast_bf16_cpu():
    m = make()
    x = torch.randn(2, 4, C, 3, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), m(x), rtol=0.05, atol=0.05)


def test_published_size_resnet50_16_segments_batch_4():
    """C=2048, 7x7 maps, K=16 (784 tokens per clip), batch 4, d=256: the reference crashed here."""
    torch.manual_seed(0)
    m = SCSA(2048, 256, num_segments=16, spatial_size=(7, 7))
    x = torch.randn(4, 16, 2048, 7, 7)
    with torch.no_grad():
        out = m(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
