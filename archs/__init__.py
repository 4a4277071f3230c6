"""Network definitions: 2D per-frame backbones (registered in BACKBONES) and 3D clip models
(registered in MODELS). Importing the package registers nothing; ops/model_zoo.py imports every
file.

A backbone maps frames [N, 3, H, W] to feature maps [N, C, h, w] (no pooling) and carries
`feature_dim` (C) and `input_spec` (a dict of the normalisation it expects: mean, std, bgr,
value_scale). Weights are never downloaded: `ops.model_api.load_pretrained` reads a local file.
"""
