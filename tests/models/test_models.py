"""Victim model zoo: shapes at 32 and 224, features(), channel/class variants, counts, errors, determinism."""

from __future__ import annotations

import pytest
import torch

from deephide.errors import DeephideError
from deephide.models import MODELS, VictimNet, build_model, count_parameters

NAMES = ["airbench", "densenet121", "fastcnn", "resnet18", "resnet20", "resnet50", "vgg19", "vit"]

# Parameters at num_classes=10, in_channels=3, image_size=32. The first five match pytorch-cifar /
# He et al. exactly; a change here means an architecture changed.
PARAMS_32 = {
    "airbench": 1_972_792,
    "densenet121": 6_956_298,
    "fastcnn": 278_976,
    "resnet18": 11_173_962,
    "resnet20": 269_722,
    "resnet50": 23_520_842,
    "vgg19": 20_040_522,
    "vit": 8_335_114,
}

# features() shape (C', h, w) for 32x32 and 224x224 inputs.
FEATURES = {
    "airbench": ((256, 3, 3), (256, 7, 7)),
    "densenet121": ((1024, 4, 4), (1024, 7, 7)),
    "fastcnn": ((128, 4, 4), (128, 14, 14)),
    "resnet18": ((512, 4, 4), (512, 7, 7)),
    "resnet20": ((64, 8, 8), (64, 14, 14)),
    "resnet50": ((2048, 4, 4), (2048, 7, 7)),
    "vgg19": ((512, 2, 2), (512, 14, 14)),
    "vit": ((384, 8, 8), (384, 14, 14)),
}


def _build(name: str, **kw: int) -> VictimNet:
    torch.manual_seed(0)
    return build_model(name, **{"num_classes": 10, **kw}).eval()


def test_registry_lists_every_model_with_one_line_help() -> None:
    assert MODELS.names() == NAMES
    for name in NAMES:
        text = MODELS.help(name)
        assert text and "\n" not in text


@pytest.mark.parametrize("name", NAMES)
def test_shapes_params_and_channels_last_at_32(name: str) -> None:
    model = _build(name)
    assert isinstance(model, VictimNet)
    assert count_parameters(model) == PARAMS_32[name]
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        feats = model.features(x)
        logits = model(x)
        # channels_last input must work (no .view on permuted strides) and give the same answer.
        logits_cl = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    assert feats.shape == (2, *FEATURES[name][0])
    assert feats.shape[1] == model.feature_channels
    assert logits.shape == (2, 10) and logits.dtype == torch.float32
    torch.testing.assert_close(logits_cl, logits, rtol=1e-4, atol=1e-4)
    # forward is pool + linear on features, so features() is what the classifier sees.
    torch.testing.assert_close(model.head(torch.flatten(model.pool(feats), 1)), logits)


@pytest.mark.parametrize("name", NAMES)
def test_shapes_at_224(name: str) -> None:
    model = _build(name, image_size=224)
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        feats = model.features(x)
        logits = model.head(torch.flatten(model.pool(feats), 1))
    assert feats.shape == (2, *FEATURES[name][1])
    assert logits.shape == (2, 10)


@pytest.mark.parametrize("name", NAMES)
def test_grey_input_and_100_classes(name: str) -> None:
    model = _build(name, num_classes=100, in_channels=1)
    with torch.no_grad():
        logits = model(torch.rand(2, 1, 32, 32))
    assert logits.shape == (2, 100)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", ["resnet20", "airbench", "fastcnn"])
def test_bf16_channels_last_train_step(name: str) -> None:
    """The CPU profile's recipe: bf16 autocast + channels_last, a full SGD step, batch-norm in train mode."""
    torch.manual_seed(0)
    model = build_model(name, 10).to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.rand(8, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    before = [p.detach().clone() for p in model.parameters()]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = torch.nn.functional.cross_entropy(model(x), torch.arange(8) % 10)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_input_is_rescaled_to_centred_range() -> None:
    """features() maps [0, 1] pixels to [-0.5, 0.5] before the first layer (the paper's scaling)."""
    model = _build("resnet20")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.features(x), model.body(x - 0.5))


@pytest.mark.parametrize("name", NAMES)
def test_native_fashion_mnist_size_28(name: str) -> None:
    """Fashion-MNIST's native 28x28 fits every net (VGG's five pools leave a 1x1 map there)."""
    model = _build(name, image_size=28)
    with torch.no_grad():
        assert model(torch.rand(2, 3, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("name", ["resnet20", "vit", "airbench"])
def test_construction_is_deterministic_under_manual_seed(name: str) -> None:
    a, b = _build(name).state_dict(), _build(name).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    torch.manual_seed(1)
    c = build_model(name, 10).state_dict()
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_unknown_model_name_is_a_one_line_error() -> None:
    with pytest.raises(DeephideError, match="unknown model 'resnet19'.*resnet18") as exc:
        build_model("resnet19", 10)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_classes": 0},
        {"num_classes": 10.0},
        {"num_classes": 10, "in_channels": 0},
        {"num_classes": 10, "image_size": 8},
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, float]) -> None:
    with pytest.raises(DeephideError, match="must be an integer"):
        build_model("resnet20", **kwargs)


def test_vit_refuses_mismatched_sizes() -> None:
    with pytest.raises(DeephideError, match="divisible"):
        build_model("vit", 10, image_size=30)
    model = _build("vit")
    with pytest.raises(DeephideError, match="image_size=28"):
        model(torch.rand(1, 3, 28, 28))
