"""CPC-Trans: dense predictive coding (DPC, Han et al. 2019) with a transformer over the feature cells.

A clip is N steps of one frame each. A 2D ResNet-18 (last stage 256 channels, no final ReLU) maps
every frame to z_t [256, S, S]. A transformer mixes the N*S*S cells, a ConvGRU summarises the
first N - P steps, and a predictor rolls out z_hat for the last P steps; each z_hat must pick out
its own target cell among every target in the batch (dense InfoNCE).

The reference lets context tokens attend to the frames they must predict and has no positional
encoding, so the task can be solved by copying. Here the future frames are encoded in their own
encoder pass (not even BatchNorm statistics are shared with the context), never enter the
transformer during pre-training, and the transformer is block-causal in time with temporal and
spatial sinusoidal encodings, so the fine-tuned model sees the same attention pattern.

From scratch every part starts as CPCTR (the published CPC-Trans) starts it: the encoder as
torchvision's ResNet (convs kaiming-normal fan_out, BatchNorms 1/0; its reduced last stage too),
the transformer, the ConvGRU, the predictor and the classifier by `orthogonal_init`.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.resnet import BasicBlock, ResNet

from ops.model_api import InputSpec, default_scale_size
from ops.policies import NORMS
from ops.registry import MODELS
from ops.sampling import ClipSampler


class _BlockNoFinalReLU(BasicBlock):
    """The last residual block of the encoder: its output is the prediction target, which must be
    able to take negative values (DPC's design), so the ReLU after the addition is left out."""

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out)) + identity


def resnet18_256():
    """ResNet-18 feature extractor whose last stage has 256 channels and ends without ReLU."""
    net = ResNet(BasicBlock, [2, 2, 2, 2])
    downsample = nn.Sequential(nn.Conv2d(256, 256, 1, stride=2, bias=False), nn.BatchNorm2d(256))
    net.layer4 = nn.Sequential(BasicBlock(256, 256, stride=2, downsample=downsample),
                               _BlockNoFinalReLU(256, 256))
    for m in net.layer4.modules():  # built after ResNet's own init: give it that init (the reference's)
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool,
                         net.layer1, net.layer2, net.layer3, net.layer4)


def orthogonal_init(module):
    """CPCTR's initialisation (DPC's) of the parts after the encoder: every weight matrix
    orthogonal with gain 1, every bias 0; LayerNorm and BatchNorm weights stay 1. Where one
    parameter here holds several of the reference's layers (the attention's q, k, v projections in
    `in_proj_weight`, the ConvGRU's reset and update gates in `gates`), each part is filled on
    its own, as the reference's separate layers are."""
    for name, p in module.named_parameters():
        if name.endswith("bias"):
            nn.init.zeros_(p)
        elif p.dim() >= 2:
            parts = 3 if name.endswith("in_proj_weight") else 2 if name.endswith("gates.weight") else 1
            for part in p.data.chunk(parts):
                nn.init.orthogonal_(part)


def sinusoid(positions, dim):
    """Fixed sinusoidal encoding [len(positions), dim] (Vaswani et al.); no parameters, any length."""
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=positions.device)
                     * (-math.log(10000.0) / dim))
    angle = positions.float()[:, None] * freq[None]
    return torch.stack([angle.sin(), angle.cos()], dim=2).flatten(1)


class CellTransformer(nn.Module):
    """Pre-norm transformer over the T*S*S feature cells of a clip.

    Tokens get a temporal encoding (over t) plus a spatial one (half the channels encode the row,
    half the column). Attention is block-causal in time: a cell of step t sees only cells of
    steps <= t, so no step's output depends on later frames.
    """

    def __init__(self, dim=256, depth=2, heads=4, ff_dim=2048, dropout=0.1):
        super().__init__()
        if dim % 4:
            raise ValueError(f"transformer width must be a multiple of 4 (got {dim})")
        self.dim = dim
        layer = nn.TransformerEncoderLayer(dim, heads, ff_dim, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, norm=nn.LayerNorm(dim), enable_nested_tensor=False)

    def positional_encoding(self, t, h, w, device):
        """[t*h*w, dim], computed on `device` (nothing is copied from the host)."""
        pos = lambda n: torch.arange(n, device=device)
        pe_t = sinusoid(pos(t), self.dim)[:, None, None, :]
        rows = sinusoid(pos(h), self.dim // 2)[None, :, None, :].expand(t, h, w, -1)
        cols = sinusoid(pos(w), self.dim // 2)[None, None, :, :].expand(t, h, w, -1)
        return (pe_t + torch.cat([rows, cols], dim=3)).reshape(t * h * w, self.dim)

    @staticmethod
    def causal_mask(t, cells, device):
        """Boolean [t*cells, t*cells] mask, True where attention is forbidden (key step > query step)."""
        step = torch.arange(t, device=device).repeat_interleave(cells)
        return step[None, :] > step[:, None]

    def forward(self, z):
        """z [B, T, C, h, w] -> same shape, each step mixed with itself and the earlier steps."""
        b, t, c, h, w = z.shape
        tokens = z.permute(0, 1, 3, 4, 2).reshape(b, t * h * w, c)
        tokens = tokens + self.positional_encoding(t, h, w, z.device).to(dtype=tokens.dtype)
        # is_causal=False: the mask is block-causal, and PyTorch would otherwise compare it with a
        # square causal mask on every call, which reads the comparison back on the host.
        out = self.encoder(tokens, mask=self.causal_mask(t, h * w, z.device), is_causal=False)
        return out.reshape(b, t, h, w, c).permute(0, 1, 4, 2, 3)


class ConvGRUCell(nn.Module):
    """GRU whose gates are 1x1 convolutions, so every spatial cell keeps its own state."""

    def __init__(self, in_dim, hidden_dim):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.gates = nn.Conv2d(in_dim + hidden_dim, 2 * hidden_dim, 1)
        self.candidate = nn.Conv2d(in_dim + hidden_dim, hidden_dim, 1)

    def forward(self, x, h):
        reset, update = torch.sigmoid(self.gates(torch.cat([x, h], 1))).chunk(2, dim=1)
        cand = torch.tanh(self.candidate(torch.cat([x, reset * h], 1)))
        return (1 - update) * h + update * cand


class ConvGRU(nn.Module):
    """Runs a ConvGRUCell over the steps of [B, T, C, h, w] from a zero state; returns the last state."""

    def __init__(self, in_dim, hidden_dim):
        super().__init__()
        self.cell = ConvGRUCell(in_dim, hidden_dim)

    def forward(self, x, h=None):
        if h is None:
            h = x.new_zeros(x.shape[0], self.cell.hidden_dim, *x.shape[3:])
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)
        return h


class CPCTransBase(nn.Module):
    """Encoder -> ReLU -> block-causal transformer -> ConvGRU, shared by pre-training and
    fine-tuning so that `--tune_from` matches parameter names one to one."""

    feature_dim = 256

    def __init__(self, num_seq=5, seq_stride=3, crop_size=128, scale_size=None, test_windows=10,
                 depth=2, heads=4, ff_dim=2048, attn_dropout=0.1):
        super().__init__()
        self.num_seq, self.seq_stride, self.test_windows = num_seq, seq_stride, test_windows
        self.input_spec = InputSpec(layout="frames", crop_size=crop_size,
                                    scale_size=scale_size or default_scale_size(crop_size))
        self.encoder = resnet18_256()
        self.transformer = CellTransformer(self.feature_dim, depth, heads, ff_dim, attn_dropout)
        self.agg = ConvGRU(self.feature_dim, self.feature_dim)
        orthogonal_init(self.transformer)
        orthogonal_init(self.agg)

    def encode(self, frames):
        """frames [B, T, 3, H, W] -> z [B, T, 256, S, S] (no final ReLU)."""
        b, t = frames.shape[:2]
        z = self.encoder(frames.flatten(0, 1))
        return z.reshape(b, t, *z.shape[1:])

    def context(self, z):
        """z [B, T, 256, S, S] -> GRU state [B, 256, S, S] after the T steps."""
        return self.agg(self.transformer(F.relu(z)))

    def forward_features(self, x):
        """[B, T, 3, H, W] -> [B, 256]: the context state after all T steps, averaged over space
        (the fine-tuning feature, and the one tools/extract_features.py saves)."""
        return self.context(self.encode(x)).mean((2, 3))

    def make_sampler(self, mode):
        """N steps of one frame at stride seq_stride: a random window in training, the centred one
        in validation, `test_windows` windows spread evenly over the whole video in test. A video
        shorter than the window repeats its last frame."""
        clips = self.test_windows if mode == "test" else 1
        return ClipSampler(self.num_seq, self.seq_stride, mode=mode, num_clips=clips, short="repeat_last")


class CPCTrans(CPCTransBase):
    """Pre-training model: returns only `losses` (dense InfoNCE) and `metrics` (pretext top-1/5)."""

    takes_views = True   # [B, V, N, ...] in training: each view is a separate clip

    def __init__(self, num_seq=5, pred_step=3, **kwargs):
        super().__init__(num_seq=num_seq, **kwargs)
        if not 1 <= pred_step < num_seq:
            raise ValueError(f"pred_step must be in [1, num_seq) (got {pred_step} with num_seq {num_seq})")
        self.pred_step = pred_step
        d = self.feature_dim
        self.predictor = nn.Sequential(nn.Conv2d(d, d, 1), nn.ReLU(inplace=True), nn.Conv2d(d, d, 1))
        orthogonal_init(self.predictor)

    def predict(self, context_frames):
        """[B, N-P, 3, H, W] -> z_hat [B, P, 256, S, S], rolled out from the context alone."""
        h = self.context(self.encode(context_frames))
        preds = []
        for _ in range(self.pred_step):
            z_hat = self.predictor(h)
            preds.append(z_hat)
            h = self.agg.cell(F.relu(z_hat), h)
        return torch.stack(preds, 1)

    def forward(self, x):
        frames = x.flatten(0, 1) if x.dim() == 6 else x     # [B, V, N, ...] views are separate clips
        if frames.shape[1] != self.num_seq:
            raise ValueError(f"CPC-Trans expects {self.num_seq} steps per clip, got {frames.shape[1]}")
        split = self.num_seq - self.pred_step
        z_hat = self.predict(frames[:, :split])
        target = self.encode(frames[:, split:])              # separate pass: future frames share nothing
        loss, top1, top5 = dense_infonce(z_hat, target)
        return {"losses": {"infonce": loss}, "metrics": {"pretext_top1": top1, "pretext_top5": top5}}


def infonce_scores(z_hat, target):
    """z_hat, target [B, P, C, h, w] -> scores [M, M], M = B*P*h*w, rows and columns both ordered
    (b, p, i); score[(b,p,i), (b',n,j)] = <z_hat_{b,p,i}, z_{b',n,j}>. The positive is the diagonal."""
    pred = z_hat.permute(0, 1, 3, 4, 2).flatten(0, 3)
    tgt = target.permute(0, 1, 3, 4, 2).flatten(0, 3)
    return pred.float() @ tgt.float().t()


def dense_infonce(z_hat, target):
    """Cross-entropy of every prediction against all targets in the batch; returns
    (loss, top-1 %, top-5 %) with top-k = how often the positive is among the k best targets."""
    scores = infonce_scores(z_hat, target)
    labels = torch.arange(scores.shape[0], device=scores.device)
    loss = F.cross_entropy(scores, labels)
    with torch.no_grad():
        k = min(5, scores.shape[1])
        hits = scores.topk(k, dim=1).indices == labels[:, None]
        top1 = hits[:, 0].float().mean() * 100
        top5 = hits.any(1).float().mean() * 100
    return loss, top1, top5


class CPCTransClassifier(CPCTransBase):
    """Fine-tuning model: encoder -> ReLU -> transformer -> ConvGRU over all N steps -> spatial
    average -> BN1d -> Dropout -> Linear. Fine-tuning trains all, the encoder and the
    transformer at lr x `encoder_lr_mult` (lr/10: the published fine-tuning lowers both, its
    `backbone` and `transEnc`); a linear probe (`--train_what last`) trains the BN1d and the
    Linear only (`linear_probe_parameters`), the frozen parts running as in evaluation."""

    test_softmax = True   # the test protocol averages softmax over the windows (ssl.md)

    def __init__(self, num_class, dropout=0.5, encoder_lr_mult=0.1, **kwargs):
        super().__init__(**kwargs)
        self.encoder_lr_mult = encoder_lr_mult
        self.bn = nn.BatchNorm1d(self.feature_dim)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.feature_dim, num_class)  # not `new_fc`: trained at the base lr, as in DPC
        orthogonal_init(self.fc)

    def linear_probe_parameters(self):
        return [name for name, _ in self.named_parameters() if name.startswith(("bn.", "fc."))]

    def param_policy(self):
        """Every encoder and transformer parameter at lr x encoder_lr_mult: weights with weight
        decay, norms and biases without (ops/policies.py)."""
        policy = {}
        for part in ("encoder", "transformer"):
            for module_name, module in getattr(self, part).named_modules():
                decayed = not isinstance(module, NORMS)
                for name, _ in module.named_parameters(recurse=False):
                    group = ("encoder_weight", self.encoder_lr_mult, 1) if decayed and "bias" not in name \
                        else ("encoder_no_decay", self.encoder_lr_mult, 0)
                    policy[".".join(filter(None, (part, module_name, name)))] = group
        return policy

    def forward(self, x):
        """[B, N, 3, H, W] -> logits [B, C] (test windows arrive folded into the batch)."""
        return self.fc(self.dropout(self.bn(self.forward_features(x))))


def _cpc_kwargs(cfg):
    return dict(num_seq=cfg["num_seq"], seq_stride=cfg["seq_stride"], crop_size=cfg["crop_size"],
                scale_size=cfg["scale_size"], test_windows=cfg["test_windows"], depth=cfg["cpc_layers"],
                heads=cfg["cpc_heads"], ff_dim=cfg["cpc_ff_dim"], attn_dropout=cfg["cpc_dropout"])


@MODELS.register("cpc_trans", role="ssl", defaults=dict(crop_size=128))
def cpc_trans(cfg):
    """Pre-training (`--ssl cpc_trans`)."""
    return CPCTrans(pred_step=cfg["pred_step"], **_cpc_kwargs(cfg))


@MODELS.register("cpc_trans_ft", role="family", defaults=dict(dropout=0.5, crop_size=128))
def cpc_trans_ft(cfg):
    """Fine-tuning / linear probe (`--model cpc_trans_ft --train_what ft|last --tune_from ...`)."""
    return CPCTransClassifier(cfg["num_class"], dropout=cfg["dropout"], **_cpc_kwargs(cfg))
