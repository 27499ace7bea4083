"""Countermeasures against hand-computed examples, plus registry and determinism checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deephide.countermeasures import COUNTERMEASURES, PAPER_COLUMNS, Countermeasure, base, build_countermeasure
from deephide.countermeasures.adversarial import pgd_linf
from deephide.countermeasures.bdr import bdr_lut
from deephide.countermeasures.cutmix import cutmix
from deephide.countermeasures.cutout import cutout, paper_cutout_size
from deephide.countermeasures.mixup import mixup
from deephide.errors import DeephideError

# a 3x3 single-channel patch: sorted 1 2 3 4 5 7 8 9 100, sum 139
PATCH = np.array([[9, 1, 7], [3, 100, 5], [2, 8, 4]], dtype=np.uint8)


def as_set(img2d: np.ndarray) -> np.ndarray:
    """(H, W) -> uint8 (1, H, W, 1)."""
    return img2d[None, :, :, None].astype(np.uint8)


def rand_images(n: int, h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)


# ---------------------------------------------------------------------------------------------
# registry


def test_paper_columns_registered_and_every_name_builds():
    assert len(PAPER_COLUMNS) == 13
    for name in PAPER_COLUMNS:
        assert name in COUNTERMEASURES
    for name in COUNTERMEASURES:
        cm = build_countermeasure(name)
        assert isinstance(cm, Countermeasure)
        assert cm.name == name
        assert cm.stage in base.STAGES
        assert COUNTERMEASURES.help(name)  # one line for `deephide list countermeasures`
        assert "\n" not in COUNTERMEASURES.help(name)


def test_unknown_name_and_bad_params_raise_deephide_error():
    with pytest.raises(DeephideError, match="unknown countermeasure"):
        build_countermeasure("NoSuchThing")
    with pytest.raises(DeephideError):
        build_countermeasure("JPEG", quality=0)
    with pytest.raises(DeephideError):
        build_countermeasure("BDR", bits=9)
    with pytest.raises(DeephideError):
        build_countermeasure("Cutout", nonsense=1)
    with pytest.raises(DeephideError, match="fixes quality"):
        build_countermeasure("JPEG10", quality=20)


def test_flags_and_params():
    assert build_countermeasure("EarlyStop").select == "best"
    assert build_countermeasure("Vanilla").select == "final"
    assert build_countermeasure("MeanF").test_transform is False
    assert build_countermeasure("MeanF", test_transform=True).test_transform is True
    assert build_countermeasure("JPEG10").params == {"quality": 10}
    assert build_countermeasure("BDR").params == {"bits": 2}
    assert build_countermeasure("AT").config()["stage"] == "step"


# ---------------------------------------------------------------------------------------------
# data stage


def test_bdr_two_bits_on_ramp():
    ramp = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    out = build_countermeasure("BDR").apply_data(ramp, seed=0).ravel()
    expected = np.concatenate([np.full(43, 0), np.full(85, 85), np.full(85, 170), np.full(43, 255)])
    np.testing.assert_array_equal(out, expected)
    # the integer quantiser equals the float formula round(round(x*L)/L*255) at every depth
    for bits in range(1, 9):
        lv = 2**bits - 1
        ref = np.round(np.round(np.arange(256) / 255 * lv) / lv * 255)
        np.testing.assert_array_equal(bdr_lut(bits), ref)
    assert build_countermeasure("BDR-1").apply_data(ramp, 0).max() == 255


def test_median_filter_known_patch():
    out = build_countermeasure("MedianF").apply_data(as_set(PATCH), seed=0)[0, :, :, 0]
    assert out[1, 1] == 5
    # replicated border: the corner window is [9 9 1; 9 9 1; 3 3 100] -> median 9 (a zero border gives 0)
    assert out[0, 0] == 9


def test_mean_filter_known_patch():
    out = build_countermeasure("MeanF").apply_data(as_set(PATCH), seed=0)[0, :, :, 0]
    assert out[1, 1] == round(139 / 9)  # 15
    # reflect-101 border: corner window rows (1,0,1) x cols (1,0,1) sums to 417 -> 46
    assert out[0, 0] == 46


def test_gray_luma_on_known_colours():
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0], [10, 200, 30]],
                       dtype=np.uint8).reshape(1, 1, 6, 3)
    out = build_countermeasure("Gray").apply_data(colours, seed=0)
    assert out.shape == colours.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, 0, :, 0], [76, 150, 29, 255, 0, 124])
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    gray = rand_images(2, 5, 5, 1)
    np.testing.assert_array_equal(build_countermeasure("Gray").apply_data(gray, 0), gray)


def test_jpeg_changes_pixels_keeps_shape_dtype_and_threads_agree():
    imgs = rand_images(300, 32, 32, 3)
    one = build_countermeasure("JPEG10", workers=1).apply_data(imgs, seed=0)
    two = build_countermeasure("JPEG10", workers=2).apply_data(imgs, seed=0)
    assert one.shape == imgs.shape and one.dtype == np.uint8
    np.testing.assert_array_equal(one, two)
    assert np.abs(one.astype(int) - imgs).mean() > 10
    # higher quality stays closer to the input
    q90 = build_countermeasure("JPEG90").apply_data(imgs[:20], seed=0)
    assert np.abs(q90.astype(int) - imgs[:20]).mean() < np.abs(one[:20].astype(int) - imgs[:20]).mean()
    g = rand_images(3, 28, 28, 1)
    gj = build_countermeasure("ISS-JPEG10").apply_data(g, seed=0)
    assert gj.shape == g.shape and not np.array_equal(gj, g)


def test_gaussf_identity_at_paper_sigma():
    imgs = rand_images(4, 9, 7, 3)
    np.testing.assert_array_equal(build_countermeasure("GaussF").apply_data(imgs, 0), imgs)
    assert not np.array_equal(build_countermeasure("GaussF-0.8").apply_data(imgs, 0), imgs)


@pytest.mark.parametrize("shape", [(3, 32, 32, 3), (2, 28, 28, 1), (2, 5, 7, 3), (2, 1, 4, 1)])
def test_data_stage_any_size_and_channels(shape):
    imgs = rand_images(*shape)
    for name in COUNTERMEASURES:
        cm = build_countermeasure(name)
        if cm.stage != "data":
            continue
        a, b = cm.apply_data(imgs, seed=3), cm.apply_data(imgs, seed=3)
        assert a.shape == imgs.shape and a.dtype == np.uint8, name
        np.testing.assert_array_equal(a, b)


def test_chunking_does_not_change_results(monkeypatch):
    imgs = rand_images(37, 8, 8, 3)
    whole = build_countermeasure("MedianF").apply_data(imgs, 0)
    monkeypatch.setattr(base, "CHUNK_VALUES", 5 * 8 * 8 * 3)
    assert len(list(base.chunk_slices(37, 8 * 8 * 3))) == 8
    np.testing.assert_array_equal(build_countermeasure("MedianF").apply_data(imgs, 0), whole)


def test_data_stage_rejects_bad_arrays():
    with pytest.raises(DeephideError):
        build_countermeasure("MeanF").apply_data(np.zeros((2, 4, 4, 3), np.float32), 0)
    with pytest.raises(DeephideError):
        build_countermeasure("JPEG10").apply_data(np.zeros((2, 4, 4, 2), np.uint8), 0)


# ---------------------------------------------------------------------------------------------
# batch stage


def test_cutout_zeroes_exactly_size_squared_inside():
    x = torch.ones(3, 2, 32, 32)
    cy, cx = torch.tensor([16, 8, 0]), torch.tensor([16, 24, 0])
    out = cutout(x, cy, cx, 16)
    zeros = (out == 0).sum(dim=(2, 3))
    assert zeros[0].tolist() == [256, 256] and zeros[1].tolist() == [256, 256]
    assert zeros[2].tolist() == [64, 64]  # clipped at the corner: [0, 8) x [0, 8)
    assert torch.all(out[0, :, 8:24, 8:24] == 0) and out[0, :, 7, 8:24].eq(1).all()
    # the registered transform draws its centres (cy then cx) from the generator
    seed = 5
    g = torch.Generator().manual_seed(seed)
    cy, cx = torch.randint(0, 32, (3,), generator=g), torch.randint(0, 32, (3,), generator=g)
    got, y = build_countermeasure("Cutout").apply_batch(x, torch.arange(3), 10, torch.Generator().manual_seed(seed))
    torch.testing.assert_close(got, cutout(x, cy, cx, 16))
    assert y.tolist() == [0, 1, 2]
    assert paper_cutout_size(32) == 16 and paper_cutout_size(224) == 116


def test_cutmix_box_semantics_and_area_weights():
    n, c, h, w = 4, 3, 32, 32
    x = torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 3])
    perm = torch.tensor([1, 2, 3, 0])
    ratio = torch.tensor([0.5, 0.5, 0.25, 1.0])
    cy, cx = torch.tensor([16, 0, 10, 16]), torch.tensor([16, 0, 20, 16])
    out, target = cutmix(x, y, 4, perm, ratio, cy, cx)
    # image 0: 16x16 box [8, 24)^2 from image 1, the rest untouched
    torch.testing.assert_close(out[0, :, 8:24, 8:24], x[1, :, 8:24, 8:24])
    inside = torch.zeros(h, w, dtype=torch.bool)
    inside[8:24, 8:24] = True
    torch.testing.assert_close(out[0][:, ~inside], x[0][:, ~inside])
    # image 1: box [-8, 8) clipped to [0, 8): area 64 / 1024
    torch.testing.assert_close(out[1, :, :8, :8], x[2, :, :8, :8])
    # image 2: 8x8 box [6, 14) x [16, 24); image 3: the whole image
    torch.testing.assert_close(out[2, :, 6:14, 16:24], x[3, :, 6:14, 16:24])
    torch.testing.assert_close(out[3], x[0])
    areas = torch.tensor([256 / 1024, 64 / 1024, 64 / 1024, 1.0])
    expected = (1 - areas)[:, None] * F.one_hot(y, 4) + areas[:, None] * F.one_hot(y[perm], 4)
    torch.testing.assert_close(target, expected.float())


def test_cutmix_registered_weights_equal_pasted_fraction():
    n = 16
    x = torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = torch.arange(n)  # one class per image, so target[i, j] is the share of image j in image i
    out, target = build_countermeasure("CutMix").apply_batch(x, y, n, torch.Generator().manual_seed(2))
    assert target.shape == (n, n) and target.dtype == torch.float32
    torch.testing.assert_close(target.sum(1), torch.ones(n))
    changed = (out != x).any(1).float().mean((1, 2))  # random images: a pasted pixel always differs
    for i in range(n):
        if target[i, i] < 1:
            j = int(torch.nonzero(target[i] * (torch.arange(n) != i)).flatten()[0])
            assert abs(float(target[i, j]) - float(changed[i])) < 1e-6


def test_mixup_keeps_int_labels_and_blends():
    n = 8
    x = torch.rand(n, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    y = torch.arange(n) % 3
    g = torch.Generator().manual_seed(7)
    perm, lam = torch.randperm(n, generator=g), torch.rand(n, generator=g)
    out, target = build_countermeasure("Mixup").apply_batch(x, y, 3, torch.Generator().manual_seed(7))
    assert target.dtype == torch.int64 and torch.equal(target, y)
    torch.testing.assert_close(out, lam.view(-1, 1, 1, 1) * x + (1 - lam.view(-1, 1, 1, 1)) * x[perm])
    torch.testing.assert_close(mixup(x, torch.arange(n), torch.full((n,), 0.3)), x)
    _, soft = build_countermeasure("Mixup", mix_labels=True).apply_batch(x, y, 3, torch.Generator().manual_seed(7))
    assert soft.shape == (n, 3)
    torch.testing.assert_close(soft.sum(1), torch.ones(n))


def test_gauss_noise_std_close_to_sigma():
    x = torch.full((64, 3, 32, 32), 0.5)
    for name, sigma in (("GaussN", 0.1), ("GaussN-0.05", 0.05)):
        out, y = build_countermeasure(name).apply_batch(x, torch.zeros(64, dtype=torch.long), 10,
                                                        torch.Generator().manual_seed(0))
        assert abs(float((out - x).std()) - sigma) < 0.02 * sigma
        assert abs(float((out - x).mean())) < 0.01 * sigma * 10
        assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("name", ["Cutout", "CutMix", "Mixup", "GaussN", "UEraser"])
def test_batch_stage_deterministic_for_a_seed(name):
    x = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y = torch.arange(8) % 4
    cm = build_countermeasure(name)
    state = torch.get_rng_state()
    a = cm.apply_batch(x, y, 4, torch.Generator().manual_seed(11))
    b = cm.apply_batch(x, y, 4, torch.Generator().manual_seed(11))
    c = cm.apply_batch(x, y, 4, torch.Generator().manual_seed(12))
    assert torch.equal(state, torch.get_rng_state())  # the global RNG stream is not consumed
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    assert a[0].shape == x.shape and a[0].min() >= 0 and a[0].max() <= 1


def test_ueraser_gray_input():
    x = torch.rand(4, 1, 28, 28)
    out, y = build_countermeasure("UEraser").apply_batch(x, torch.zeros(4, dtype=torch.long), 10,
                                                         torch.Generator().manual_seed(0))
    assert out.shape == x.shape


# ---------------------------------------------------------------------------------------------
# step stage


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


def test_at_pgd_within_eps_in_range_and_raises_loss():
    torch.manual_seed(0)
    model = TinyNet().train()
    x = torch.rand(16, 3, 8, 8)
    y = torch.randint(0, 3, (16,))
    cm = build_countermeasure("AT")
    bn_before = model.bn.running_mean.clone()
    x_adv = cm.perturb(model, x, y)
    assert model.training  # mode restored
    assert torch.equal(model.bn.running_mean, bn_before)  # the attack ran in eval mode
    assert all(p.grad is None for p in model.parameters())
    assert x_adv.shape == x.shape and not x_adv.requires_grad
    assert float((x_adv - x).abs().max()) <= 8 / 255 + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    model.eval()
    with torch.no_grad():
        assert F.cross_entropy(model(x_adv), y) > F.cross_entropy(model(x), y)
    # with a generator the random start, hence the result, is reproducible
    a = pgd_linf(model, x, y, 8 / 255, 2 / 255, 3, torch.Generator().manual_seed(1))
    b = pgd_linf(model, x, y, 8 / 255, 2 / 255, 3, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
