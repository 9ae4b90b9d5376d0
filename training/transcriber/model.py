"""The transcription network in torch (training only; inference runs the ONNX export).

Input (B, N_CHANNELS, T, 88): basic-pitch's note and onset posteriors and the harmonic stack of
`stemscribe.transcription.network`. A pitch-shared convolutional net: 3x3 convolutions over (time,
pitch) with time dilations 1..16 (about +-0.37 s of context), an octave convolution (pitch -12, 0,
+12) so a note can be told from its own partials, and a per-frame context vector pooled over all
pitches (which instruments are playing) added back to every pitch.

The head is factorised (`N_RAW` channels): a pitch's onset, frame and velocity logits, whatever plays
it, and logits over the nine families of who plays it. A family's onset posterior is then the pitch's
onset posterior times that family's share (`family_posteriors`): the pitch part learns from every
note whatever its family, and the family part is a classification, which is what a few CPU hours can
train. Two families on one pitch at once share it (a unison across instruments is rare in the data).
"""

from __future__ import annotations

import torch
from torch import nn

from stemscribe.transcription.network import N_CHANNELS, N_FAMILIES

DILATIONS = (1, 2, 4, 8, 16)
N_RAW = 3 + N_FAMILIES  # onset, frame, velocity logits of the pitch; family logits
ONSET_PRIOR = -4.0  # initial logits: onsets and sounding frames are rare, start the net there
FRAME_PRIOR = -2.0


class _Block(nn.Module):
    def __init__(self, width: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(width, width, (3, 3), padding=(dilation, 1), dilation=(dilation, 1))
        self.norm = nn.BatchNorm2d(width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + torch.relu(self.norm(self.conv(h)))


class NoteNet(nn.Module):
    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.width = width
        self.stem = nn.Sequential(
            nn.Conv2d(N_CHANNELS, width, (3, 3), padding=1), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.early = nn.ModuleList([_Block(width, d) for d in DILATIONS[:2]])
        self.octave = nn.Sequential(
            nn.Conv2d(width, width, (1, 3), padding=(0, 12), dilation=(1, 12)),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        )
        self.late = nn.ModuleList([_Block(width, d) for d in DILATIONS[2:]])
        self.context = nn.Linear(width, width)
        self.head = nn.Conv2d(width, N_RAW, 1)
        with torch.no_grad():
            self.head.bias.zero_()
            self.head.bias[0] = ONSET_PRIOR
            self.head.bias[1] = FRAME_PRIOR

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for block in self.early:
            h = block(h)
        h = h + self.octave(h)
        for block in self.late:
            h = block(h)
        g = torch.relu(self.context(h.mean(dim=3).transpose(1, 2))).transpose(1, 2)  # (B, W, T)
        h = h + g.unsqueeze(3)
        return self.head(h)


def family_posteriors(raw: torch.Tensor) -> torch.Tensor:
    """(B, 3 * 9, T, 88) posteriors (onset, frame, velocity per family) of (B, N_RAW, T, 88) logits."""
    share = torch.softmax(raw[:, 3:], dim=1)  # (B, 9, T, 88)
    onset = torch.sigmoid(raw[:, 0:1]) * share
    frame = torch.sigmoid(raw[:, 1:2]) * share
    velocity = torch.sigmoid(raw[:, 2:3]).expand_as(share)
    return torch.cat([onset, frame, velocity], dim=1)


def fused_family_posteriors(raw: torch.Tensor) -> torch.Tensor:
    """`family_posteriors` spelled so that its ONNX graph runs fast: the softmax over the families
    (axis 1) as exp / sum, with the pitch's sigmoids divided by the sum once (1 channel) instead of
    every family's share (9). onnxruntime runs a Softmax over a non-last axis through two transposes
    of the whole (B, 9, T, 88) tensor, a quarter of the network's time. Equal to `family_posteriors`
    up to float rounding (~1e-7)."""
    logits = raw[:, 3:]
    weights = torch.exp(logits - logits.amax(dim=1, keepdim=True))  # (B, 9, T, 88)
    inverse = 1.0 / weights.sum(dim=1, keepdim=True)
    onset = weights * (torch.sigmoid(raw[:, 0:1]) * inverse)
    frame = weights * (torch.sigmoid(raw[:, 1:2]) * inverse)
    velocity = torch.sigmoid(raw[:, 2:3]).expand_as(weights)
    return torch.cat([onset, frame, velocity], dim=1)


class Exported(nn.Module):
    """What ships: the net and its family posteriors (`fused_family_posteriors`, or with
    `fused_head=False` `family_posteriors` as trained), so the ONNX graph gives per-family posteriors."""

    def __init__(self, net: NoteNet, *, fused_head: bool = True) -> None:
        super().__init__()
        self.net = net
        self.fused_head = fused_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raw = self.net(x)
        return fused_family_posteriors(raw) if self.fused_head else family_posteriors(raw)


def widen(net: NoteNet, width: int) -> NoteNet:
    """A `NoteNet` of `width` channels computing exactly what `net` computes (a function-preserving
    widening, so a trained net can grow without starting over). The new channels start from a fresh
    initialisation and read the old ones; no old channel (nor the head) reads a new one until training
    moves those weights away from zero."""
    if width < net.width:
        raise ValueError(f"cannot narrow a width-{net.width} net to {width}")
    wide = NoteNet(width)
    old = net.state_dict()
    state = wide.state_dict()
    with torch.no_grad():
        for name, grown in state.items():
            kept = old[name]
            if kept.dim() == 0:  # BatchNorm's step counter
                grown.copy_(kept)
                continue
            grown[tuple(slice(0, n) for n in kept.shape)] = kept
            if kept.dim() >= 2 and kept.shape[1] < grown.shape[1]:  # old outputs ignore new inputs
                grown[: kept.shape[0], kept.shape[1] :] = 0.0
    wide.load_state_dict(state)
    return wide
