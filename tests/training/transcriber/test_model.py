"""The network's function-preserving widening: a trained net grows without forgetting."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from stemscribe.transcription.network import N_CHANNELS  # noqa: E402
from training.transcriber.model import NoteNet, widen  # noqa: E402


def trained_like(width: int) -> NoteNet:
    """A net whose weights and BatchNorm statistics are not at their initial values."""
    torch.manual_seed(1)
    net = NoteNet(width)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
        net.train()
        for _ in range(3):  # running statistics move off 0 / 1
            net(torch.randn(2, N_CHANNELS, 24, 88))
    return net


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_a_widened_net_computes_what_the_narrow_one_did(mode: str) -> None:
    narrow = trained_like(8)
    wide = widen(narrow, 12)
    assert wide.width == 12 and sum(p.numel() for p in wide.parameters()) > sum(
        p.numel() for p in narrow.parameters()
    )
    x = torch.randn(2, N_CHANNELS, 40, 88)
    for net in (narrow, wide):
        getattr(net, mode)()
    with torch.no_grad():
        assert torch.allclose(wide(x), narrow(x), atol=1e-5)


def test_the_new_channels_learn() -> None:
    wide = widen(trained_like(8), 12)
    wide.train()
    wide(torch.randn(2, N_CHANNELS, 24, 88)).square().mean().backward()
    grad = wide.head.weight.grad
    assert grad is not None and grad[:, 8:].abs().sum() > 0  # the head starts to read the new channels


def test_a_net_does_not_narrow() -> None:
    with pytest.raises(ValueError, match="narrow"):
        widen(NoteNet(8), 4)
