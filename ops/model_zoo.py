"""Every model, backbone and consensus block of the framework: importing this module registers
them all (a file registers its entries when imported). The one place that imports model files;
add one line for a new one. Nothing else imports it but ops/models.py.
"""
from archs import (bninception, c3d, i3d, mobilenet, r2plus1d, r2plus1d_resnets, r3d, resnet, resnet3d,  # noqa: F401
                   squeezenet, stts, tinynet, torchvision_video)
from ops import consensus, fcn, mlp, rnn, sttnet, trn, tsn  # noqa: F401
from selfsupervision import cpc_trans, vtdl  # noqa: F401
