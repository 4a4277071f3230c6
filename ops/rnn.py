"""Recurrent consensus blocks (Köpüklü et al. 2021): the K projected frame features are read in
time order by an RNN (tanh or ReLU), LSTM or GRU, or by a bidirectional LSTM, and the final state
is classified. Every RNN weight and bias is trained (ops/policies.py files recurrent layers as
plain weights/biases; the reference code trained only the input weights)."""
import torch
import torch.nn as nn

from ops.model_api import make_new_fc
from ops.registry import CONSENSUS

RNN_TYPES = {
    "RNN_TANH": (nn.RNN, {"nonlinearity": "tanh"}),
    "RNN_RELU": (nn.RNN, {"nonlinearity": "relu"}),
    "LSTM": (nn.LSTM, {}),
    "GRU": (nn.GRU, {}),
}


class RNN(nn.Module):
    """[B, K, F] -> new_fc -> `rnn_type` over time (input D) -> last step's output -> Linear(hidden, C).

    `dropout` acts between stacked layers only (PyTorch's convention), so it is unused with one layer.
    """

    def __init__(self, num_segments, in_dim, num_class, img_feature_dim=256, rnn_type="LSTM",
                 hidden_size=256, num_layers=1, dropout=0.2):
        super().__init__()
        self.new_fc = make_new_fc(in_dim, img_feature_dim)
        cls, kwargs = RNN_TYPES[rnn_type]
        self.rnn = cls(img_feature_dim, hidden_size, num_layers=num_layers, batch_first=True,
                       dropout=dropout if num_layers > 1 else 0.0, **kwargs)
        self.classifier = nn.Linear(hidden_size, num_class)

    def forward(self, x):
        out, _ = self.rnn(self.new_fc(x))
        return self.classifier(out[:, -1])


class BLSTM(nn.Module):
    """Bidirectional LSTM, hidden_size // 2 units per direction (128 by default): the final state of
    the forward pass (after frame K) and of the backward pass (after frame 1) are concatenated and
    classified by Linear(hidden_size, C)."""

    def __init__(self, num_segments, in_dim, num_class, img_feature_dim=256, hidden_size=256, num_layers=1,
                 dropout=0.2):
        super().__init__()
        if hidden_size % 2:
            raise ValueError(f"BLSTM splits --rnn_hidden_size over two directions: it must be even, got {hidden_size}")
        self.new_fc = make_new_fc(in_dim, img_feature_dim)
        self.rnn = nn.LSTM(img_feature_dim, hidden_size // 2, num_layers=num_layers, batch_first=True,
                           bidirectional=True, dropout=dropout if num_layers > 1 else 0.0)
        self.classifier = nn.Linear(hidden_size, num_class)

    def forward(self, x):
        _, (h, _) = self.rnn(self.new_fc(x))
        return self.classifier(torch.cat([h[-2], h[-1]], dim=1))


@CONSENSUS.register("RNN_TANH")
def rnn_tanh(num_segments, in_dim, num_class, img_feature_dim, rnn_hidden_size=256, rnn_layer=1, rnn_dropout=0.2):
    return RNN(num_segments, in_dim, num_class, img_feature_dim, "RNN_TANH", rnn_hidden_size, rnn_layer, rnn_dropout)


@CONSENSUS.register("RNN_RELU")
def rnn_relu(num_segments, in_dim, num_class, img_feature_dim, rnn_hidden_size=256, rnn_layer=1, rnn_dropout=0.2):
    return RNN(num_segments, in_dim, num_class, img_feature_dim, "RNN_RELU", rnn_hidden_size, rnn_layer, rnn_dropout)


@CONSENSUS.register("LSTM")
def lstm(num_segments, in_dim, num_class, img_feature_dim, rnn_hidden_size=256, rnn_layer=1, rnn_dropout=0.2):
    return RNN(num_segments, in_dim, num_class, img_feature_dim, "LSTM", rnn_hidden_size, rnn_layer, rnn_dropout)


@CONSENSUS.register("GRU")
def gru(num_segments, in_dim, num_class, img_feature_dim, rnn_hidden_size=256, rnn_layer=1, rnn_dropout=0.2):
    return RNN(num_segments, in_dim, num_class, img_feature_dim, "GRU", rnn_hidden_size, rnn_layer, rnn_dropout)


@CONSENSUS.register("BLSTM")
def blstm(num_segments, in_dim, num_class, img_feature_dim, rnn_hidden_size=256, rnn_layer=1, rnn_dropout=0.2):
    return BLSTM(num_segments, in_dim, num_class, img_feature_dim, rnn_hidden_size, rnn_layer, rnn_dropout)
