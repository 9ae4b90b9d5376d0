"""The drum network in torch: log-mel in, per-frame onset logits and velocities out.

Built for a CPU budget (training and inference): the log-mel and its positive first difference
(spectral flux, the classic onset cue) are stacked as 160 channels, two 1-D convolutions over time
(the second dilated, residual) give a local embedding, and a bidirectional GRU adds context
(hi-hat open vs closed, cymbal decays, the groove). 1-D convolutions over mel channels run as
plain matrix products, several times faster on a CPU than small 2-D convolutions.
"""

from __future__ import annotations

import torch
from torch import nn

from stemscribe.transcription.drum_model import N_CLASSES, N_MELS


class DrumNet(nn.Module):
    """Input (batch, frames, N_MELS) log-mel; `forward` returns onset logits and velocities in
    0..1, each (batch, frames, N_CLASSES)."""

    def __init__(self, width: int = 128, hidden: int = 64) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(N_MELS))
        self.register_buffer("std", torch.ones(N_MELS))
        self.conv1 = nn.Conv1d(2 * N_MELS, width, 5, padding=2)
        self.bn1 = nn.BatchNorm1d(width)
        self.conv2 = nn.Conv1d(width, width, 3, padding=2, dilation=2)
        self.bn2 = nn.BatchNorm1d(width)
        self.drop = nn.Dropout(0.1)
        self.gru = nn.GRU(width, hidden, batch_first=True, bidirectional=True)
        self.onset = nn.Linear(2 * hidden + width, N_CLASSES)
        self.velocity = nn.Linear(2 * hidden + width, N_CLASSES)

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (mel - self.mean) / self.std
        flux = torch.relu(x[:, 1:] - x[:, :-1])
        flux = torch.cat([torch.zeros_like(x[:, :1]), flux], dim=1)
        x = torch.cat([x, flux], dim=2).transpose(1, 2)  # (B, 2 * N_MELS, T)
        x = torch.relu(self.bn1(self.conv1(x)))
        x = x + torch.relu(self.bn2(self.conv2(x)))
        x = self.drop(x.transpose(1, 2))  # (B, T, width)
        h, _ = self.gru(x)
        h = torch.cat([h, x], dim=-1)
        return self.onset(h), torch.sigmoid(self.velocity(h))


class ExportWrapper(nn.Module):
    """The graph shipped in ONNX: probabilities rather than logits."""

    def __init__(self, net: DrumNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, velocity = self.net(mel)
        return torch.sigmoid(logits), velocity
