"""Strongly constrained self-attention (SCSA): STTNet's spatio-temporal aggregator.

Sits between the backbone's last feature maps and pooling. Every position of every frame of a clip
is a token (K*h*w of them), so attention mixes space and time at once. The self-supervised
branches enter through the queries and keys:

    Q = [w1(X), w2(g1(X_rbrc))]      K = [w5(X), w4(g2(X_rbrf))]      (each half d/2 wide)
    V = w6(X + P)                    Y = w7(softmax(Q K^T / sqrt(d)) V)      out = gamma * Y + X

g1 and g2 ("pre-aggregator blocks") are C -> d -> C bottlenecks whose weights ARE w6's and w7's
weights (the same nn.Parameter objects, not copies), so the self-supervised features are forced
through the aggregator's own value space: the "strong constraint". g1 keeps biases of its own;
the key side (w4, w5, g2) has none, since the softmax cancels any constant added to the keys.
The 1x1 convolutions of the design are written as nn.Linear on channel-last tokens (the same map).

P is a learnable spatio-temporal positional embedding in the C-dim feature space, factorised as a
temporal table [K0, C] plus a spatial table [C, h0, w0]. A clip with another number of segments
or another map size gets the tables resized by linear / bilinear interpolation, so any K and any
input size work; at the sizes given at construction the tables are used as they are. Loading a
state dict whose tables have other sizes resamples them the same way (a model built for 16
segments loads an 8-segment checkpoint and computes exactly what that checkpoint would at 16).

Defaults (1 head, no layer norm, no feed-forward) reproduce the published design; multi-head
attention, a pre-norm LayerNorm and a residual feed-forward block are options.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class SCSA(nn.Module):
    resampled_on_load = ("pos_time", "pos_space")   # read by ops.checkpoint_formats.load_weights

    def __init__(self, in_dim, dim=256, num_heads=1, num_segments=8, spatial_size=(7, 7),
                 gamma_init=0.01, norm=False, ffn=False, ffn_ratio=4):
        super().__init__()
        if dim % (2 * num_heads):
            raise ValueError(f"SCSA: dim={dim} must be divisible by 2 * num_heads={2 * num_heads} "
                             "(each head takes an equal share of both query/key halves)")
        self.in_dim, self.dim, self.num_heads = in_dim, dim, num_heads
        half = dim // 2
        self.w1 = nn.Linear(in_dim, half)   # query, appearance half
        self.w2 = nn.Linear(in_dim, half)   # query, RBRC (temporal) half
        # Nothing on the key side has a bias: q . (k + b) adds the same q . b to every logit of a
        # row, which the softmax cancels, so such a bias could never learn (w4, w5, g2).
        self.w5 = nn.Linear(in_dim, half, bias=False)   # key, appearance half
        self.w4 = nn.Linear(in_dim, half, bias=False)   # key, RBRF (spatial) half
        self.w6 = nn.Linear(in_dim, dim)    # value
        self.w7 = nn.Linear(dim, in_dim)    # output
        self.g1 = ConstrainedBlock(self.w6, self.w7)
        self.g2 = ConstrainedBlock(self.w6, self.w7, bias=False)
        self.pos_time = nn.Parameter(torch.zeros(num_segments, in_dim))
        self.pos_space = nn.Parameter(torch.zeros(in_dim, *spatial_size))
        nn.init.trunc_normal_(self.pos_time, std=0.02)
        nn.init.trunc_normal_(self.pos_space, std=0.02)
        self.gamma = nn.Parameter(torch.tensor(float(gamma_init)))
        self.norm = nn.LayerNorm(in_dim) if norm else None
        if ffn:
            self.ffn = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, ffn_ratio * dim), nn.GELU(),
                                     nn.Linear(ffn_ratio * dim, in_dim))
            self.gamma_ffn = nn.Parameter(torch.tensor(float(gamma_init)))
        else:
            self.ffn = None
        self.register_load_state_dict_pre_hook(self._resample_tables)

    def param_policy(self):
        """gamma and the positional tables: learned like weights, without weight decay (a decayed
        gamma would be pulled back to 0 and switch the aggregator off)."""
        names = {"gamma": "no_decay", "pos_time": "no_decay", "pos_space": "no_decay"}
        if self.ffn is not None:
            names["gamma_ffn"] = "no_decay"
        return names

    def position(self, k, h, w):
        """P for a K x h x w clip: [K, h, w, C], interpolated when the sizes differ from the tables'."""
        t, s = resize_time(self.pos_time, k), resize_space(self.pos_space, h, w)
        return t[:, None, None, :] + s.permute(1, 2, 0)[None]

    def _resample_tables(self, module, state_dict, prefix, *args):
        """Positional tables of another K or map size are resampled to this module's sizes on load."""
        for name, resize in (("pos_time", lambda t: resize_time(t, self.pos_time.shape[0])),
                             ("pos_space", lambda s: resize_space(s, *self.pos_space.shape[1:]))):
            key = prefix + name
            if key in state_dict and state_dict[key].shape != getattr(self, name).shape:
                state_dict[key] = resize(state_dict[key])

    def heads(self, appearance, ssl):
        """[B, N, d/2] x 2 -> [B, heads, N, d/heads]; every head gets a slice of both halves."""
        b, n, _ = appearance.shape
        split = lambda z: z.reshape(b, n, self.num_heads, -1)
        return torch.cat([split(appearance), split(ssl)], dim=-1).transpose(1, 2)

    def forward(self, x, x_rbrc=None, x_rbrf=None):
        """x, x_rbrc, x_rbrf: [B, K, C, h, w] (the auxiliary inputs default to x) -> [B, K, C, h, w]."""
        b, k, c, h, w = x.shape
        x_rbrc = x if x_rbrc is None else x_rbrc
        x_rbrf = x if x_rbrf is None else x_rbrf
        tokens = lambda z: z.permute(0, 1, 3, 4, 2).reshape(b, k * h * w, c)
        t, t_rbrc, t_rbrf = tokens(x), tokens(x_rbrc), tokens(x_rbrf)
        if self.norm is not None:
            t, t_rbrc, t_rbrf = self.norm(t), self.norm(t_rbrc), self.norm(t_rbrf)
        pos = self.position(k, h, w).reshape(1, k * h * w, c).to(t.dtype)
        q = self.heads(self.w1(t), self.w2(self.g1(t_rbrc)))
        key = self.heads(self.w5(t), self.w4(self.g2(t_rbrf)))
        v = self.w6(t + pos).reshape(b, k * h * w, self.num_heads, -1).transpose(1, 2)
        # SDPA scales by 1/sqrt(d / heads) (= 1/sqrt(d) with one head) and keeps the softmax
        # accurate under autocast.
        y = F.scaled_dot_product_attention(q, key.to(q.dtype), v.to(q.dtype))
        y = self.w7(y.transpose(1, 2).reshape(b, k * h * w, self.dim))
        out = tokens(x) + self.gamma * y
        if self.ffn is not None:
            out = out + self.gamma_ffn * self.ffn(out)
        return out.reshape(b, k, h, w, c).permute(0, 1, 4, 2, 3)

    def extra_repr(self):
        return (f"in_dim={self.in_dim}, dim={self.dim}, heads={self.num_heads}, "
                f"pos=time{tuple(self.pos_time.shape)}+space{tuple(self.pos_space.shape)}")


def resize_time(table, k):
    """[K0, C] -> [k, C] by linear interpolation along time (unchanged when K0 == k)."""
    if table.shape[0] == k:
        return table
    return F.interpolate(table.t()[None], size=k, mode="linear", align_corners=False)[0].t()


def resize_space(table, h, w):
    """[C, h0, w0] -> [C, h, w] by bilinear interpolation (unchanged when the sizes match)."""
    if tuple(table.shape[1:]) == (h, w):
        return table
    return F.interpolate(table[None], size=(h, w), mode="bilinear", align_corners=False)[0]


class ConstrainedBlock(nn.Module):
    """g: C -> d -> C through the aggregator's own w6 / w7 weights (shared Parameters), with
    biases of its own if `bias`."""

    def __init__(self, down, up, bias=True):
        super().__init__()
        self.down = nn.Linear(down.in_features, down.out_features, bias=bias)
        self.up = nn.Linear(up.in_features, up.out_features, bias=bias)
        self.down.weight = down.weight
        self.up.weight = up.weight

    def forward(self, x):
        return self.up(self.down(x))
