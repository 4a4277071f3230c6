"""RBRF: the flip applied to each frame, its labels, the random batch, and what the head can learn."""
import pytest
import torch
import torch.nn.functional as F

from selfsupervision.rbrf import FLIPS, RBRFHead, rbrf_labels, rbrf_transform


def candidates(frame):
    """The five possible results for one [C, h, w] map, in FLIPS order, written out by indexing."""
    c, h, w = frame.shape
    wf = frame[:, :, torch.arange(w - 1, -1, -1)]
    hf = frame[:, torch.arange(h - 1, -1, -1), :]
    rev = torch.arange(c - 1, -1, -1)
    return [frame, wf, hf, wf[rev], hf[rev]]


def applied(x, out):
    """Which transform turned x[b, t] into out[b, t], read from the maps alone: [B, K]."""
    which = torch.empty(x.shape[:2], dtype=torch.long)
    for b in range(x.shape[0]):
        for t in range(x.shape[1]):
            hits = [i for i, cand in enumerate(candidates(x[b, t])) if torch.equal(cand, out[b, t])]
            assert len(hits) == 1, f"clip {b} frame {t}: output matches {hits} of {FLIPS}"
            which[b, t] = hits[0]
    return which


def test_labels_match_the_transform_of_every_frame():
    torch.manual_seed(0)
    x = torch.randn(16, 6, 5, 4, 3)              # random maps: the five candidates all differ
    out, code = rbrf_transform(x)
    which = applied(x, out)
    assert torch.equal(which, code)
    assert torch.equal(rbrf_labels(code, 5), which)
    assert torch.equal(rbrf_labels(code, 2), (which > 0).long())
    chosen = which.gt(0)
    assert torch.equal(chosen.all(1), chosen.any(1))   # a clip is transformed whole or not at all
    assert chosen.all(1).any() and (~chosen.any(1)).any()


def test_random_batch_probability_and_all_four_flips():
    gen = torch.Generator().manual_seed(1)
    _, code = rbrf_transform(torch.randn(400, 8, 2, 2, 2), generator=gen)
    chosen = code[:, 0] > 0
    assert 0.4 < chosen.float().mean() < 0.6
    counts = torch.bincount(code[chosen].flatten(), minlength=5)
    assert counts[0] == 0 and (counts[1:] > 0.2 * counts[1:].sum()).all()     # 25% each expected
    x = torch.randn(3, 4, 2, 2, 2)
    assert torch.equal(rbrf_transform(x, p=0.0)[0], x)
    assert (rbrf_transform(x, p=1.0)[1] > 0).all()


def test_same_generator_same_draw_and_input_untouched():
    x = torch.randn(4, 5, 3, 2, 2)
    keep = x.clone()
    a = rbrf_transform(x, generator=torch.Generator().manual_seed(3))
    b = rbrf_transform(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and torch.equal(x, keep)


def test_bad_kinds():
    with pytest.raises(ValueError, match="2 or 5"):
        rbrf_labels(torch.zeros(2, 3, dtype=torch.long), 3)


@pytest.mark.parametrize("b,k,kinds", [(1, 1, 2), (2, 8, 5), (4, 16, 2)])
def test_head_shape(b, k, kinds):
    assert RBRFHead(12, kinds, hidden=16)(torch.randn(b, k, 12, 7, 7)).shape == (b, k, kinds)


def test_pooled_head_is_blind_to_spatial_flips_grid_head_is_not():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 4, 4)
    pooled, grid = RBRFHead(8, 5, hidden=16, grid=1), RBRFHead(8, 5, hidden=16, grid=2)
    for flipped in (x.flip(-1), x.flip(-2)):
        torch.testing.assert_close(pooled(flipped), pooled(x))
        assert not torch.allclose(grid(flipped), grid(x))


def train_head(grid, kinds, steps=100):
    """Maps with a fixed layout plus noise (as real features have: a flip is only visible if the
    map is not symmetric); returns held-out frame accuracy."""
    torch.manual_seed(0)
    layout = torch.randn(8, 4, 4)
    maps = lambda n, gen=None: layout + 0.5 * torch.randn(n, 4, 8, 4, 4, generator=gen)
    head = RBRFHead(8, kinds, hidden=32, grid=grid)
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    for _ in range(steps):
        out, code = rbrf_transform(maps(32))
        loss = F.cross_entropy(head(out).flatten(0, 1), rbrf_labels(code, kinds).flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    gen = torch.Generator().manual_seed(9)
    out, code = rbrf_transform(maps(256, gen), generator=gen)
    with torch.no_grad():
        return (head(out).argmax(-1) == rbrf_labels(code, kinds)).float().mean().item(), code


def test_five_kinds_learnable_only_with_spatial_layout():
    """After global pooling frames 0/1/2 and 3/4 look alike: the best a pooled head can do is to
    say 0 for the first group and one of 3/4 for the second (62.5% in expectation)."""
    pooled, code = train_head(grid=1, kinds=5)
    share = lambda i: (code == i).float().mean().item()
    assert pooled <= share(0) + max(share(3), share(4)) + 0.01
    assert train_head(grid=2, kinds=5)[0] > 0.9
