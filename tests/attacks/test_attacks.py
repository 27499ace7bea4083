"""Baseline attacks: budget, determinism, class-/sample-wise structure, OPS's L0 = 1, provenance, CLI."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from deephide.attacks import ATTACKS, attack_profile, run_attack
from deephide.attacks.ar import _stable_coefficients, ar_generate, ar_noise
from deephide.attacks.lsp import lsp_noise
from deephide.cli.attack import add_attack_parser, cmd_attack
from deephide.data import load_dataset, load_imageset
from deephide.errors import DeephideError

SPEC = "synthetic?n=64&size=32&classes=4"
LINF_ATTACKS = ["EM", "EM-C", "REM", "LSP", "PIL", "AR", "random-noise-C", "semantic-added-C", "semantic-added-S", "ISGAN"]
MODEL_BASED = ["EM", "EM-C", "REM", "ISGAN"]
# the secret source of the semantic attacks: next-class needs nothing beyond the training set
OPTS = {"semantic-added-C": {"source": "next-class"}, "semantic-added-S": {"source": "next-class"},
        "ISGAN": {"source": "next-class"}}


def attack(name: str, ds, **kw):
    return run_attack(name, ds, profile="tiny", progress=False, **{**OPTS.get(name, {}), **kw})


@pytest.fixture(scope="module")
def ds():
    return load_dataset(SPEC)


@pytest.fixture(scope="module")
def results(ds):
    return {name: attack(name, ds) for name in ATTACKS.names()}


def delta(out, ds) -> np.ndarray:
    return out.images.astype(np.int16) - ds.images.astype(np.int16)


def interior(ds, levels: int = 8) -> np.ndarray:
    """Mask (N, H, W, C) of clean values a full +-levels change cannot clip at 0 or 255."""
    return (ds.images >= levels) & (ds.images <= 255 - levels)


def test_registry_lists_every_attack():
    assert set(ATTACKS.names()) == {"EM", "EM-C", "REM", "LSP", "PIL", "AR", "OPS", "random-noise-C",
                                    "semantic-added-C", "semantic-added-S", "ISGAN"}
    for name in ATTACKS.names():
        assert ATTACKS.help(name)
        for prof in ("paper", "cpu", "tiny"):
            assert attack_profile(name, prof)["shortening"]["note"]


@pytest.mark.parametrize("name", sorted(ATTACKS.names()))
def test_shapes_labels_and_provenance(results, ds, name):
    out = results[name]
    assert out.images.dtype == np.uint8 and out.images.shape == ds.images.shape
    assert np.array_equal(out.labels, ds.labels) and out.class_names == ds.class_names
    p = out.provenance["protection"]
    assert p["method"] == name and p["profile"] == "tiny" and p["seed"] == 0 and p["eps"] == "8/255"
    assert isinstance(p["params"], dict) and "note" in p["shortening"] and "changed" in p["shortening"]
    cost = p["cost"]
    assert cost["seconds"] >= 0 and {"forward_passes", "backward_passes", "forward_images", "backward_images"} <= set(cost)
    if name in MODEL_BASED:
        assert cost["forward_images"] > 0 and cost["backward_images"] > 0
        assert p["shortening"]["changed"]  # the tiny profile shortens the paper's optimisation
    assert not np.array_equal(out.images, ds.images)


@pytest.mark.parametrize("name", LINF_ATTACKS)
def test_linf_budget_respected(results, ds, name):
    assert np.abs(delta(results[name], ds)).max() <= 8
    assert results[name].provenance["protection"]["budget"] == "Linf=8/255"


@pytest.mark.parametrize("name", ["random-noise-C", "LSP", "AR", "EM-C", "semantic-added-S"])
def test_smaller_budget(ds, name):
    out = attack(name, ds, eps_levels=3)
    assert np.abs(delta(out, ds)).max() <= 3 and out.provenance["protection"]["eps"] == "3/255"


@pytest.mark.parametrize("name", sorted(ATTACKS.names()))
def test_deterministic_for_a_seed(results, ds, name):
    assert np.array_equal(attack(name, ds).images, results[name].images)


@pytest.mark.parametrize("name", ["EM", "EM-C", "LSP", "AR", "random-noise-C", "semantic-added-S"])
def test_seed_changes_the_noise(results, ds, name):
    assert not np.array_equal(attack(name, ds, seed=1).images, results[name].images)


def assert_classwise(out, ds) -> None:
    """Every image of a class received the same delta wherever clipping could not interfere."""
    d, m = delta(out, ds), interior(ds)
    for k in range(ds.num_classes):
        idx = np.flatnonzero(ds.labels == k)
        ref = d[idx[0]]
        for i in idx[1:]:
            both = m[i] & m[idx[0]]
            assert both.sum() > 0.5 * both.size
            assert np.array_equal(d[i][both], ref[both])


@pytest.mark.parametrize("name", ["random-noise-C", "EM-C", "semantic-added-C"])
def test_classwise_attacks_share_the_noise_within_a_class(results, ds, name):
    assert_classwise(results[name], ds)
    assert results[name].provenance["protection"]["mode"] == "class"


def test_lsp_classwise_option(ds):
    assert_classwise(attack("LSP", ds, classwise=True), ds)


@pytest.mark.parametrize("name", ["EM", "REM", "LSP", "AR", "semantic-added-S"])
def test_samplewise_attacks_differ_within_a_class(results, ds, name):
    d, m = delta(results[name], ds), interior(ds)
    idx = np.flatnonzero(ds.labels == 0)
    both = m[idx[0]] & m[idx[1]]
    assert not np.array_equal(d[idx[0]][both], d[idx[1]][both])
    assert results[name].provenance["protection"]["mode"] == "sample"


def test_lsp_noise_is_linearly_separable():
    labels = np.repeat(np.arange(5), 40)
    noise = lsp_noise(labels, 5, (32, 32, 3), attack_profile("LSP", "paper"), 8, np.random.default_rng(0))
    assert noise.shape == (200, 3, 32, 32)
    # constant over each 8x8 patch, and L2 norm sqrt(d) * 6/255 (LSP's default)
    assert np.allclose(noise[:, :, :8, :8], noise[:, :, :1, :1])
    assert np.allclose(np.linalg.norm(noise.reshape(200, -1), axis=1), np.sqrt(3072) * 6 / 255, rtol=1e-5)
    flat = np.clip(noise, -8 / 255, 8 / 255).reshape(200, -1)
    means = np.stack([flat[labels == k].mean(0) for k in range(5)])
    pred = np.argmin(((flat[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert (pred == labels).mean() >= 0.95


def test_ar_noise_follows_its_class_filter():
    s = attack_profile("AR", "paper")
    rng = np.random.default_rng(0)
    coef, _ = _stable_coefficients(3, 3, (36, 36), s, rng)
    labels = np.array([0, 0, 1, 1, 2, 2])
    raw = ar_generate(coef[labels], (36, 36), rng)
    # the AR filter (its coefficients, -1 at the pixel) annihilates its own process, not the others
    filt = torch.from_numpy(coef.copy())
    filt[:, :, 2, 2] = -1.0
    x = torch.from_numpy(raw)
    for i, k in enumerate(labels):
        own = torch.nn.functional.conv2d(x[i:i + 1], filt[k].unsqueeze(1), groups=3).abs().max()
        other = torch.nn.functional.conv2d(x[i:i + 1], filt[(k + 1) % 3].unsqueeze(1), groups=3).abs().max()
        assert own < 1e-9 < other
    scaled = ar_noise(labels, coef, (32, 32, 3), s, 8, rng)
    assert scaled.shape == (6, 3, 32, 32)
    assert np.allclose(np.abs(scaled).reshape(6, -1).max(1), 8 / 255)  # norm=linf: exactly eps


def test_ar_records_one_filter_per_class(results, ds):
    coef = np.asarray(results["AR"].provenance["protection"]["ar_coefficients"])
    assert coef.shape == (ds.num_classes, 3, 3, 3)
    assert np.allclose(coef[:, :, 2, 2], 0) and np.allclose(coef.sum(axis=(2, 3)), 1)


def test_ops_changes_exactly_one_pixel_per_image(results, ds):
    out = results["OPS"]
    p = out.provenance["protection"]
    assert p["budget"] == "L0=1" and len(p["ops_pixels"]) == ds.num_classes
    changed = (out.images != ds.images).any(axis=3)
    for px in p["ops_pixels"]:
        idx = np.flatnonzero(ds.labels == px["class"])
        colour = np.array(px["colour"], dtype=np.uint8) * 255
        at = ds.images[idx, px["row"], px["col"]]
        already = (at == colour).all(axis=1)
        counts = changed[idx].reshape(idx.size, -1).sum(1)
        assert np.array_equal(counts, np.where(already, 0, 1))
        assert (out.images[idx, px["row"], px["col"]] == colour).all()
    assert p["unchanged_images"] == int(sum(
        (ds.images[ds.labels == q["class"], q["row"], q["col"]] == np.array(q["colour"]) * 255).all(1).sum()
        for q in p["ops_pixels"]))


def test_one_channel_data():
    gray = load_dataset("synthetic?n=32&size=32&classes=4&channels=1")
    for name in ("LSP", "AR", "OPS", "EM-C", "semantic-added-C"):
        out = attack(name, gray)
        assert out.images.shape == gray.images.shape
        if name != "OPS":
            assert np.abs(delta(out, gray)).max() <= 8


def test_options_are_typed_and_checked(ds):
    out = attack("EM-C", ds, pgd_steps="3", max_rounds="1")
    p = out.provenance["protection"]
    assert p["params"]["pgd_steps"] == 3 and p["shortening"]["changed"]["pgd_steps"] == {"paper": 1, "used": 3}
    with pytest.raises(DeephideError, match="unknown option 'nope'"):
        attack("LSP", ds, nope=1)
    with pytest.raises(DeephideError, match="pgd_steps"):
        attack("EM", ds, pgd_steps="many")
    with pytest.raises(DeephideError, match="eps_levels"):
        attack("LSP", ds, eps_levels=0)
    with pytest.raises(DeephideError, match="unknown attack"):
        run_attack("TAP", ds)
    with pytest.raises(DeephideError, match="profile"):
        run_attack("LSP", ds, profile="huge")


def test_isgan_records_its_hider(results):
    p = results["ISGAN"].provenance["protection"]
    assert "discriminator" in p and "hider_final_losses" in p and "reveal_psnr_after_budget" in p


def _cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_attack_parser(parser.add_subparsers(dest="cmd"))
    return parser.parse_args(argv)


def test_cli_writes_a_stored_set(ds, tmp_path, capsys):
    out = tmp_path / "lsp"
    argv = ["attack", "LSP", "--data", SPEC, "--out", str(out), "--profile", "tiny", "--quiet",
            "--option", "classwise=true"]
    assert cmd_attack(_cli(argv)) == 0
    saved = load_imageset(out)
    assert saved.provenance["test_spec"] == SPEC
    assert saved.provenance["protection"]["params"]["classwise"] is True
    assert np.abs(delta(saved, ds)).max() <= 8
    assert "LSP" in capsys.readouterr().out
    with pytest.raises(DeephideError, match="already exists"):
        cmd_attack(_cli(argv))
    assert cmd_attack(_cli(argv + ["--force", "--eps", "4/255"])) == 0
    assert np.abs(delta(load_imageset(out), ds)).max() <= 4
    with pytest.raises(DeephideError, match="KEY=VALUE"):
        cmd_attack(_cli(["attack", "LSP", "--data", SPEC, "--out", str(tmp_path / "x"), "--option", "oops"]))


def test_verify_checks_the_budget_each_attack_declares(results, ds):
    from deephide.protect import verify

    ops = verify(ds, results["OPS"])  # L0=1: one pixel per image, by any amount
    assert ops["ok"] and ops["budget"] == "L0=1" and ops["max_changed_pixels"] == 1 and ops["linf_levels"] > 8
    lsp = verify(ds, results["LSP"])
    assert lsp["ok"] and lsp["budget"] == "Linf=8/255" and lsp["linf_levels"] <= 8
    two = results["OPS"].images.copy()
    two[0, 0, 0] = 255 - two[0, 0, 0]  # a second changed pixel breaks the L0 budget
    bad = verify(ds, results["OPS"].replace(images=two))
    assert not bad["ok"] and bad["violations"] >= 1


def test_cli_main_runs_attack_and_lists_it(tmp_path, capsys):
    from deephide.cli import main

    assert main(["list", "attacks"]) == 0
    assert "OPS" in capsys.readouterr().out
    out = tmp_path / "ops"
    assert main(["attack", "OPS", "--data", SPEC, "--out", str(out), "--profile", "tiny", "--quiet"]) == 0
    assert main(["verify", "--clean", SPEC, "--protected", str(out)]) == 0
    assert "L0 1/1 pixels" in capsys.readouterr().out
    assert main(["attack", "NOPE", "--data", SPEC, "--out", str(tmp_path / "n")]) == 2
    assert "unknown attack" in capsys.readouterr().err


def test_pil_linear_surrogate_learns_and_its_noise_carries_the_label(ds):
    """PIL (Liu et al., ICLR 2026): the noise alone tells a linear model the class, and the image without it does
    not; the stored image is x - noise, within the budget, sample-wise."""
    from deephide.training.linear import LinearSurrogate

    m = LinearSurrogate(12, 3)
    assert m(torch.ones(2, 3, 2, 2)).shape == (2, 3) and all(lin.bias is None for lin in (m.w1, m.w2))
    out = run_attack("PIL", ds, profile="tiny", seed=0, progress=False, steps=10, surrogate_epochs=5)
    p = out.provenance["protection"]
    assert p["mode"] == "sample" and p["budget"] == "Linf=8/255" and p["params"]["lmd"] == 0.9
    assert p["linear_acc_noise_alone"] > 90 and p["linear_acc_image_minus_noise"] < p["linear_acc_noise_alone"]
    assert np.abs(out.images.astype(int) - ds.images.astype(int)).max() <= 8
    again = run_attack("PIL", ds, profile="tiny", seed=0, progress=False, steps=10, surrogate_epochs=5)
    assert np.array_equal(again.images, out.images)  # seeded
    assert attack_profile("PIL", "cpu")["shortening"]["changed"] == {}  # the cpu profile is the paper's
