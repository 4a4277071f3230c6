"""RBRF ("random batch, random flip"): STTNet's spatial self-supervision on feature maps.

Each clip of a batch is transformed with probability p ("random batch"); every frame of a chosen
clip gets one of four flips of its [C, h, w] map ("random flip"):
    1 width flip, 2 height flip, 3 width flip + channel reversal, 4 height flip + channel reversal.
A head classifies each frame: 2 kinds (0 = clip untouched, 1 = clip transformed, the reference's
training variant) or 5 kinds (0 = untouched, 1..4 = which flip).

Global average pooling erases a pure spatial flip (a flipped map has the same mean), so a head on
pooled features can only see the channel reversal: at best 75% (2 kinds) or 62.5% (5 kinds). The
head here therefore averages each frame's map over a grid x grid layout of cells (grid=2 keeps
left/right and top/bottom apart for any h, w) before its MLP; grid=1 is the pooled head.
"""
import torch
import torch.nn as nn

FLIPS = ("none", "width", "height", "width+channels", "height+channels")


def rbrf_transform(x, p=0.5, generator=None):
    """x [B, K, C, h, w] -> (flipped copy, code [B, K] int64: 0 untouched, 1..4 index into FLIPS)."""
    b, k = x.shape[:2]
    chosen = torch.rand(b, 1, generator=generator, device=x.device) < p
    flip = torch.randint(1, 5, (b, k), generator=generator, device=x.device)
    code = flip * chosen
    frames = lambda m: m[:, :, None, None, None]
    out = torch.where(frames(code % 2 == 1), x.flip(-1), x)                  # 1, 3
    out = torch.where(frames((code > 0) & (code % 2 == 0)), out.flip(-2), out)  # 2, 4
    return torch.where(frames(code >= 3), out.flip(2), out), code            # 3, 4


def rbrf_labels(code, kinds):
    """Pseudo-labels [B, K] from the transform code: 2 kinds (transformed or not) or all 5."""
    if kinds == 2:
        return (code > 0).long()
    if kinds == 5:
        return code
    raise ValueError(f"RBRF kinds must be 2 or 5 (got {kinds})")


class RBRFHead(nn.Module):
    """Per-frame classifier: grid x grid cell averages -> shared Linear per cell -> MLP -> kinds."""

    def __init__(self, in_dim, num_classes=2, hidden=256, grid=2):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.cell = nn.Linear(in_dim, hidden)
        self.mlp = nn.Sequential(nn.ReLU(inplace=True), nn.Linear(grid * grid * hidden, hidden),
                                 nn.ReLU(inplace=True), nn.Linear(hidden, num_classes))

    def forward(self, x):
        """x [B, K, C, h, w] -> logits [B, K, num_classes]."""
        b, k = x.shape[:2]
        cells = self.pool(x.flatten(0, 1)).flatten(2).transpose(1, 2)   # [B*K, grid*grid, C]
        return self.mlp(self.cell(cells).flatten(1)).reshape(b, k, -1)
