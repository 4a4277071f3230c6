"""RBRC: exactly the chosen channels of the chosen clips play backwards, and the head can tell."""
import pytest
import torch
import torch.nn.functional as F

from selfsupervision.rbrc import RBRCHead, rbrc_transform


def test_reverses_exactly_the_chosen_channels_of_the_chosen_clips():
    torch.manual_seed(0)
    x = torch.randn(12, 5, 10, 3, 2)
    out, labels, mask = rbrc_transform(x, ratio=0.3)
    assert labels.shape == (12,) and mask.shape == (12, 10)
    assert labels.any() and not labels.all()
    for b in range(12):
        for k in range(10):
            want = x[b, torch.arange(4, -1, -1), k] if mask[b, k] else x[b, :, k]
            assert torch.equal(out[b, :, k], want), (b, k)
        assert mask[b].sum() == (3 if labels[b] else 0)


@pytest.mark.parametrize("ratio,count", [(1e-6, 1), (0.5, 4), (1.0, 8)])
def test_channel_count(ratio, count):
    _, labels, mask = rbrc_transform(torch.randn(6, 4, 8, 1, 1), ratio=ratio, p=1.0)
    assert labels.all() and (mask.sum(1) == count).all()


def test_random_batch_and_random_channels():
    gen = torch.Generator().manual_seed(2)
    _, labels, mask = rbrc_transform(torch.randn(400, 2, 6, 1, 1), ratio=1e-6, generator=gen)
    assert 0.4 < labels.float().mean() < 0.6
    assert (mask[labels.bool()].sum(0) > 0).all()      # every channel gets picked by some clip
    x = torch.randn(3, 4, 5, 2, 2)
    assert torch.equal(rbrc_transform(x, p=0.0)[0], x)


def test_same_generator_same_draw():
    x = torch.randn(4, 6, 5, 2, 2)
    a = rbrc_transform(x, generator=torch.Generator().manual_seed(5))
    b = rbrc_transform(x, generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(u, v) for u, v in zip(a, b))


@pytest.mark.parametrize("b,k", [(1, 1), (2, 3), (4, 16)])
def test_head_shape(b, k):
    assert RBRCHead(12, hidden=16)(torch.randn(b, k, 12, 7, 7)).shape == (b, 2)


def test_order_blind_control_and_order_aware_head():
    torch.manual_seed(0)
    x = torch.randn(3, 6, 8, 2, 2)
    blind, aware = RBRCHead(8, hidden=16, kernel_size=1), RBRCHead(8, hidden=16, kernel_size=3)
    torch.testing.assert_close(blind(x.flip(1)), blind(x))
    assert not torch.allclose(aware(x.flip(1)), aware(x))


def test_pretext_rises_above_chance():
    """Clips whose channels share one motion (a ramp of random slope, with fixed per-channel
    loadings): reversing half of the channels breaks that, and the head learns to see it."""
    torch.manual_seed(0)
    loading = torch.randn(16)

    def clips(n, gen=None):
        ramp = torch.linspace(-1, 1, 6)[None, :] * torch.randn(n, 1, generator=gen)
        x = ramp[:, :, None] * loading + 0.2 * torch.randn(n, 6, 16, generator=gen)
        return x[..., None, None].expand(n, 6, 16, 2, 2)

    head = RBRCHead(16, hidden=32)
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    for _ in range(80):
        out, labels, _ = rbrc_transform(clips(32))
        loss = F.cross_entropy(head(out), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    gen = torch.Generator().manual_seed(7)
    out, labels, _ = rbrc_transform(clips(256, gen), generator=gen)
    with torch.no_grad():
        accuracy = (head(out).argmax(1) == labels).float().mean().item()
    assert accuracy > 0.8
