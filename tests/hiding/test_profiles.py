"""deephide.hiding.profiles: the hider profiles and what each sets."""

from __future__ import annotations

import math

import pytest

from deephide.errors import DeephideError
from deephide.hiding import (
    HIDER_PROFILES,
    get_hider_profile,
    hider_config,
    loss_weights,
)


def test_profiles() -> None:
    assert set(HIDER_PROFILES) == {"paper", "cpu", "long", "robust", "photo", "tiny"}
    for name in HIDER_PROFILES:
        prof = get_hider_profile(name)
        assert prof["profile"] == name
        cfg = hider_config(prof, 32)
        assert cfg.image_size == 32 and cfg.channels == 3
        if name != "robust":  # the paper's training path unless asked for
            assert prof["reveal_distortions"] == () and prof["sv_views"] == () and prof["sv_adv_levels"] == 0
    # robust (issue 33): no L_freq / L_LFC, the surrogate through the countermeasure families, the budget used
    r = get_hider_profile("robust")
    assert loss_weights(r) == {"hide": 1.0, "reveal": 1.0, "freq": 0.0, "lfc": 0.0, "use": 0.1, "sv": 0.1, "lin": 0.0, "lin_bdr": 0.0,
                                  "quiet": 0.0, "class": 0.0, "smooth": 0.0}
    assert {"jpeg-any", "bdr", "noise", "median", "gray", "cutout", "mixup", "cutmix"} <= set(r["sv_views"])
    assert "none" in r["reveal_distortions"]
    # the paper's weights (w1 = w2 = 1, w3 = 1e-4) in paper and tiny; cpu's short run is rebalanced (profiles.py)
    assert [loss_weights(get_hider_profile(n)) for n in ("paper", "tiny")] == [
        {"hide": 1.0, "reveal": 1.0, "freq": 1.0, "lfc": 1e-4, "use": 0.0, "sv": 0.0, "lin": 0.0, "lin_bdr": 0.0, "quiet": 0.0,
         "class": 0.0, "smooth": 0.0}] * 2
    assert loss_weights(get_hider_profile("cpu")) == {"hide": 1.0, "reveal": 1.0, "freq": 0.01, "lfc": 0.01, "use": 0.0, "sv": 0.0,
                                                        "lin": 0.0, "lin_bdr": 0.0, "quiet": 0.0, "class": 0.0, "smooth": 0.0}
    # photo (issue 35): a seventh of the 4-block INN's FLOPs, no labels needed (no L_LFC), a quiet perturbation
    ph = get_hider_profile("photo")
    assert (ph["blocks"], ph["growth"]) == (2, 16) and not ph["lfc"] and ph["grey_covers"] == "shared"
    assert loss_weights(ph)["quiet"] == 1.0 and ph["secret_zoom"] == 0.5
    assert all(get_hider_profile(n)["w_quiet"] == 0.0 and get_hider_profile(n)["secret_zoom"] == 0.0
               for n in HIDER_PROFILES if n != "photo")
    p = get_hider_profile("paper")
    assert (p["blocks"], p["growth"], p["clamp"]) == (16, 32, 2.0)
    assert math.isclose(p["lr"], 10**-4.5) and p["betas"] == (0.5, 0.999)
    assert loss_weights(get_hider_profile("tiny", lfc=False))["lfc"] == 0.0
    with pytest.raises(DeephideError, match="unknown hider setting"):
        get_hider_profile("tiny", depth=3)
    with pytest.raises(DeephideError, match="unknown hider profile"):
        get_hider_profile("huge")
