#!/usr/bin/env bash
# Are STTNet's pretext tasks learnable, and which head design learns them?
# Frozen feature maps of a randomly initialised ResNet-18 (112 px, 8-frame clips) from the given
# videos; each head is trained on freshly transformed clips every step and scored on clips of
# held-out videos (every third video), so it cannot just memorise which way each video moves.
#   RBRF: pooled head (grid 1) vs 2x2-cell head (grid 2), 2 and 5 kinds.
#   RBRC: order-blind head (temporal kernel 1) vs temporal conv (kernel 3), reversing one channel
#         (the reference), half of the channels (the default) or all of them (pure arrow of time).
# Usage: bash scripts/sttnet_pretext_probe.sh [VIDEO ...]   (default: data/synthetic/videos/*.mp4)
# CPU, single thread, a few minutes. Prints one held-out accuracy line per setting (chance: 0.5).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
if [ $# -eq 0 ]; then set -- data/synthetic/videos/*.mp4; fi
"$PYTHON" - "$@" <<'EOF'
import sys

import decord
import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from selfsupervision.rbrc import RBRCHead, rbrc_transform
from selfsupervision.rbrf import RBRFHead, rbrf_labels, rbrf_transform

torch.set_num_threads(1)
torch.manual_seed(0)
K, SIDE, STEPS, BATCH = 8, 112, 600, 32

net = torchvision.models.resnet18(weights=None).eval()
trunk = torch.nn.Sequential(*list(net.children())[:-2])
videos = []
for path in sys.argv[1:]:
    frames = decord.VideoReader(path)[:].asnumpy()
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    x = F.interpolate(x, size=SIDE, mode="bilinear", antialias=True, align_corners=False)
    x = torchvision.transforms.functional.center_crop(x, SIDE)
    x = (x - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) / torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    with torch.no_grad():
        videos.append(torch.cat([trunk(chunk) for chunk in x.split(64)]))
maps = [v / v.std() for v in videos]
held_out = [v for i, v in enumerate(maps) if i % 3 == 2]
train_maps = [v for i, v in enumerate(maps) if i % 3 != 2]
if not held_out:
    sys.exit("give at least 3 videos (every third one is held out)")
print(f"{len(train_maps)} training and {len(held_out)} held-out videos, frame maps {tuple(maps[0].shape[1:])}",
      flush=True)


def clips(n, rng, pool):
    """n clips of K frames, stride 2, from random videos of pool and random starts; [n, K, C, h, w]."""
    out = []
    for _ in range(n):
        v = pool[rng.integers(len(pool))]
        stride = 2 if len(v) >= 2 * K else 1
        start = rng.integers(len(v) - stride * (K - 1))
        out.append(v[start:start + stride * K:stride])
    return torch.stack(out)


def train(head, step_fn):
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    rng = np.random.default_rng(1)
    for _ in range(STEPS):
        logits, labels = step_fn(clips(BATCH, rng, train_maps), None)
        loss = F.cross_entropy(logits.flatten(0, -2), labels.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    rng, gen = np.random.default_rng(2), torch.Generator().manual_seed(2)
    with torch.no_grad():
        logits, labels = step_fn(clips(512, rng, held_out), gen)
    return (logits.argmax(-1) == labels).float().mean().item()


C = maps[0].shape[1]
for kinds in (2, 5):
    for grid in (1, 2):
        head = RBRFHead(C, kinds, hidden=256, grid=grid)

        def rbrf_step(x, gen):
            xt, code = rbrf_transform(x, generator=gen)
            return head(xt), rbrf_labels(code, kinds)
        print(f"RBRF kinds={kinds} grid={grid}: frame accuracy {train(head, rbrf_step):.3f}", flush=True)

for ratio in (1 / C, 0.5, 1.0):
    for kernel in (1, 3):
        head = RBRCHead(C, hidden=256, kernel_size=kernel)

        def rbrc_step(x, gen):
            xt, labels, _ = rbrc_transform(x, ratio=ratio, generator=gen)
            return head(xt), labels
        print(f"RBRC channels={max(1, round(ratio * C))}/{C} kernel={kernel}: clip accuracy "
              f"{train(head, rbrc_step):.3f}", flush=True)
EOF
