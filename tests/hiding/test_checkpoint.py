"""deephide.hiding.checkpoint: save and load a hider with its training state; refused files."""

from __future__ import annotations

import json

import pytest
import torch

from deephide.errors import DeephideError
from deephide.hiding import (
    HIDER_PROFILES,
    Hider,
    HiderConfig,
    freq_loss,
    get_hider_profile,
    hider_config,
    load_hider,
    load_training_state,
    read_checkpoint,
    reveal_loss,
    save_hider,
)


# ---------------------------------------------------------------- checkpoints

def test_checkpoint_roundtrip_with_optimizer(tmp_path, tiny_hider, randomise) -> None:
    h = tiny_hider(size=8, blocks=2, growth=4)
    randomise(h, 0.05, seed=4)
    prof = get_hider_profile("tiny")
    opt = torch.optim.Adam(h.parameters(), lr=prof["lr"], betas=prof["betas"], eps=prof["adam_eps"],
                           weight_decay=prof["weight_decay"])
    cover, secret = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)

    def step(model: Hider, o: torch.optim.Optimizer) -> None:
        o.zero_grad()
        stego, _ = model.hide(cover, secret)
        (reveal_loss(model.reveal(stego), secret) + freq_loss(stego, cover)).backward()
        o.step()

    step(h, opt)
    step(h, opt)
    ckpt = tmp_path / "hider"
    save_hider(ckpt, h, profile="tiny", training={"iteration": 2}, optimizer=opt)
    assert sorted(p.name for p in ckpt.iterdir()) == ["config.json", "optimizer.safetensors", "weights.safetensors"]
    meta = read_checkpoint(ckpt)
    assert meta["hider"] == h.config and meta["profile"] == "tiny"

    h2 = load_hider(ckpt, image_size=8)
    for (k, a), b in zip(h.state_dict().items(), h2.state_dict().values()):
        assert torch.equal(a, b), k
    opt2 = torch.optim.Adam(h2.parameters(), lr=1.0)
    assert load_training_state(ckpt, opt2) == {"iteration": 2}
    assert opt2.param_groups[0]["lr"] == prof["lr"] and opt2.param_groups[0]["betas"] == (0.5, 0.999)
    step(h, opt)
    step(h2, opt2)
    for a, b in zip(h.parameters(), h2.parameters()):
        assert torch.equal(a, b)  # resuming is bit-exact

    with pytest.raises(DeephideError, match="already exists"):
        save_hider(ckpt, h)
    save_hider(ckpt, h, overwrite=True)
    with pytest.raises(DeephideError, match="no optimizer state"):
        load_training_state(ckpt, opt2)


def test_checkpoint_errors(tmp_path, tiny_hider) -> None:
    h = tiny_hider(size=8, blocks=2, growth=4)
    ckpt = tmp_path / "hider"
    save_hider(ckpt, h)
    with pytest.raises(DeephideError, match="trained for 8x8 images, data is 32x32"):
        load_hider(ckpt, image_size=32)
    with pytest.raises(DeephideError, match="not a hider checkpoint directory"):
        load_hider(tmp_path / "nope")

    cfg_file = ckpt / "config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["hider"]["growth"] = 8  # another architecture than the weights
    cfg_file.write_text(json.dumps(cfg))
    with pytest.raises(DeephideError, match=r"weights\.safetensors.*has shape"):
        load_hider(ckpt)
    cfg["hider"]["growth"], cfg["hider"]["blocks"] = 4, 3
    cfg_file.write_text(json.dumps(cfg))
    with pytest.raises(DeephideError, match=r"weights\.safetensors.*missing tensor"):
        load_hider(ckpt)
    cfg["hider"]["blocks"] = 2
    cfg["hider"]["depth"] = 1
    cfg_file.write_text(json.dumps(cfg))
    with pytest.raises(DeephideError, match=r"config\.json.*unknown hider config keys"):
        load_hider(ckpt)
    cfg_file.write_text("{not json")
    with pytest.raises(DeephideError, match=r"config\.json: unreadable JSON"):
        load_hider(ckpt)
    del cfg["hider"]["depth"]
    cfg_file.write_text(json.dumps(cfg))
    (ckpt / "weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(DeephideError, match=r"weights\.safetensors: unreadable"):
        load_hider(ckpt)
    (ckpt / "weights.safetensors").unlink()
    with pytest.raises(DeephideError, match=r"weights\.safetensors: missing"):
        load_hider(ckpt)
    cfg_file.unlink()
    with pytest.raises(DeephideError, match=r"config\.json: missing"):
        load_hider(ckpt)


def test_checkpoint_rejects_nonfinite_weights(tmp_path, tiny_hider) -> None:
    h = tiny_hider(size=8, blocks=1, growth=4)
    with torch.no_grad():
        h.blocks[0].phi.convs[0].weight[0, 0, 0, 0] = float("nan")
    save_hider(tmp_path / "h", h)
    with pytest.raises(DeephideError, match="NaN"):
        load_hider(tmp_path / "h")


def test_grey_covers_config_validation_and_old_checkpoints(tmp_path) -> None:
    with pytest.raises(DeephideError, match="grey_covers must be one of rgb, shared"):
        HiderConfig(blocks=1, growth=4, clamp=2.0, image_size=8, grey_covers="gray")
    h = Hider(HiderConfig(blocks=1, growth=4, clamp=2.0, image_size=8, grey_covers="shared"))
    save_hider(tmp_path / "h", h, profile="tiny")
    assert load_hider(tmp_path / "h").config.grey_covers == "shared"
    cfg = json.loads((tmp_path / "h" / "config.json").read_text())
    del cfg["hider"]["grey_covers"]  # a checkpoint written before the option existed
    (tmp_path / "h" / "config.json").write_text(json.dumps(cfg))
    assert load_hider(tmp_path / "h").config.grey_covers == "rgb"
    assert hider_config(get_hider_profile("tiny", grey_covers="shared"), 8).grey_covers == "shared"
    # the paper's INN; cpu and photo (greyscale photos stay greyscale) share the perturbation on grey covers
    assert all(p["grey_covers"] == "rgb" for name, p in HIDER_PROFILES.items() if name not in ("cpu", "photo"))
    assert HIDER_PROFILES["cpu"]["grey_covers"] == "shared"
