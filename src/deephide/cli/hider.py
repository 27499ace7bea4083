"""The hider's commands: ``train-hider``, ``protect`` (a set, or a data owner's folder into its mirror), ``verify``,
``reveal`` and ``trace``.

``add_hider_parsers`` and ``add_trace_parser`` are called by ``cli.main.build_parser``; the commands register in
``dispatch.COMMANDS``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import DeephideError
from .dispatch import command
from .options import parse_kv


#: a warm start (--init) with no --profile: the init hider's own profile, this many steps at this share of its lr (a
#: small folder's fine-tune: a fresh Adam at the full lr undid photo-class's hiding, 21 -> 13 dB in 300 steps)
WARM_START_ITERATIONS = 300
WARM_START_LR_SCALE = 0.1


def warm_start_profile(profile: str | None, init: str | None) -> tuple[str, dict[str, Any]]:
    """(profile name, overrides) of a train-hider call: the given profile as it is; with --init and no --profile,
    the init hider's own profile for WARM_START_ITERATIONS steps at WARM_START_LR_SCALE of its lr; else cpu."""
    if profile is not None or init is None:
        return profile or "cpu", {}
    from ..hiding.checkpoint import read_checkpoint
    from ..hiding.hiderdir import checkpoint_dir, resolve_hider
    from ..hiding.profiles import get_hider_profile

    own = read_checkpoint(checkpoint_dir(resolve_hider(init))).get("profile") or "cpu"
    return own, {"iterations": WARM_START_ITERATIONS, "lr": get_hider_profile(own)["lr"] * WARM_START_LR_SCALE}


@command("train-hider")
def cmd_train_hider(a: argparse.Namespace) -> int:
    from ..data.registry import test_spec_for
    from ..data import load_dataset
    from ..fsutil import remove_output_dir
    from ..hiding.profiles import get_hider_profile
    from ..hiding.hiderdir import BANK, CHECKPOINT, HIDER_DIR_ENTRIES
    from ..pipeline import train_hider_job

    out = Path(a.out)
    train = load_dataset(a.data, "train")
    test_spec = a.test or test_spec_for(a.data)
    test = load_dataset(test_spec, "test") if test_spec else None
    name, warm = warm_start_profile(a.profile, a.init)
    prof = get_hider_profile(name, **{**warm, **parse_kv(a.set, "--set")})
    if a.iterations:
        prof["iterations"] = a.iterations
    if a.force:
        remove_output_dir(out, HIDER_DIR_ENTRIES, "hider")
    elif out.is_dir() and any(out.iterdir()) and not (out / CHECKPOINT).is_dir() and not (out / BANK).is_dir():
        raise DeephideError(f"{out}: exists and is not a hider directory; choose another --out")
    s = train_hider_job(train, test, a.secrets, a.mode, prof, out, seed=a.seed, lfc_iterations=a.lfc_iterations,
                        device=a.device, progress=not a.quiet, time_limit_s=a.time_limit, init=a.init,
                        **parse_kv(a.secret_option, "--secret-option"))
    last = s.get("last_log") or {}
    print(f"hider in {out}: {s['iterations_done']}/{s['iterations']} iterations, {s['seconds']:.0f} s; "
          f"reveal PSNR {last.get('reveal_psnr', float('nan')):.2f} dB, PSNR(x_ue, x_c) "
          f"{last.get('psnr_stego', float('nan')):.2f} dB, "
          f"mean |delta| {last.get('mean_levels', float('nan')):.2f} levels")
    return 0


@command("protect")
def cmd_protect(a: argparse.Namespace) -> int:
    from ..data.registry import test_spec_for
    from ..data import load_dataset
    from ..data.interop.class_folders import export_class_folders
    from ..data.interop.png_folder import export_png_folder
    from ..data.stored import imageset_writer
    from ..fsutil import check_new_output, outputs_or_nothing
    from ..hiding.hiderdir import hider_bank_dir, open_hider
    from ..ops.budget import parse_eps
    from ..protect import protect, verify
    from ..semantic import bank_for

    if _is_owner_folder(a.data):
        return _protect_folder(a)
    levels = parse_eps(a.eps or "8/255")
    check_new_output(a.out, a.force)
    for extra in (a.export_png, a.export_folder):
        if extra:
            check_new_output(extra, a.force)
    ds = load_dataset(a.data, "train", mmap=True)  # a stored set is streamed, not read whole
    hider, info = open_hider(a.hider, image_size=ds.shape[0])
    secrets = a.secrets or (str(hider_bank_dir(a.hider)) if hider_bank_dir(a.hider) else None)
    if secrets is None:
        raise DeephideError(f"{a.hider}: no secret bank saved with this hider; give --secrets")
    # a hider used at another size than its bank's (photo-class): the secrets resized to the images, as for photos
    bank = bank_for(ds, secrets, a.mode, a.seed).resized(*ds.shape[:2])
    test_spec = test_spec_for(a.data, ds)
    with outputs_or_nothing([a.out, a.export_png, a.export_folder]):  # all outputs or none
        # protected batches go straight into the output file: memory does not grow with the set
        with imageset_writer(a.out, len(ds), ds.shape, force=a.force) as w:
            prot = protect(ds, hider, bank, a.mode, levels=levels, seed=a.seed, batch_size=a.batch_size,
                           device=a.device, bf16=a.bf16, progress=not a.quiet, hider_info=info, out=w.images)
            if test_spec:
                prot = prot.replace(test_spec=test_spec)
            w.finish(prot)
        if a.export_png:
            export_png_folder(prot, a.export_png, force=a.force)
        if a.export_folder:
            export_class_folders(prot, a.export_folder, force=a.force)
    v = verify(ds, prot, levels=levels)
    p = prot.provenance["protection"]
    print(f"protected {len(prot)} images -> {a.out} ({a.mode}-wise, eps {levels}/255): "
          f"L-inf {v['linf_levels']} levels, "
          f"mean |delta| {v['mean_abs_levels']:.2f}, PSNR {v['psnr']:.2f} dB, SSIM {v['ssim']:.4f}, "
          f"{p['images_per_s']:.0f} images/s")
    return 0


def _is_owner_folder(spec: str) -> bool:
    """``folder:DIR`` without options: a data owner's folder, protected into its mirror (``folder:DIR?size=N`` is the
    square-resized dataset of the experiments)."""
    return spec.startswith("folder:") and "?" not in spec


def _protect_folder(a: argparse.Namespace) -> int:
    from ..owner import protect_folder
    from ..ops.budget import parse_eps

    if a.export_png or a.export_folder or a.secrets:
        raise DeephideError("protect: --export-png, --export-folder and --secrets are for datasets; a folder is "
                            "protected into its mirror (--out) with the hider's own secrets")
    s = protect_folder(a.data[len("folder:"):], a.out, a.hider, strength=a.strength,
                       levels=parse_eps(a.eps) if a.eps else None, mode=a.mode, fmt=a.format, labels_csv=a.labels,
                       skip_bad=a.skip_bad, seed=a.seed, force=a.force, progress=not a.quiet)
    print(f"protected {s['protected']} images -> {a.out} ({s['mode']}-wise, strength {s['strength']}, "
          f"{s['levels']}/255): PSNR mean {s['psnr_mean']:.2f} dB (lowest {s['psnr_min']:.2f}), largest change "
          f"{s['max_change']:.0f} levels" + (f"; {len(s['bad'])} bad file(s) left out" if s["bad"] else "")
          + f"; report: {Path(a.out) / 'report.html'}")
    return 0


@command("verify")
def cmd_verify(a: argparse.Namespace) -> int:
    from ..data import load_dataset
    from ..fsutil import write_json
    from ..ops.budget import parse_eps
    from ..protect import verify

    levels = parse_eps(a.eps)
    if a.hider:
        return _verify_hider(a, levels)
    if not a.protected:
        raise DeephideError("verify: give --protected (a set to check) or --hider (the reveal gate), or both")
    clean = load_dataset(a.clean, "train", mmap=True)  # verify streams both sets chunk by chunk
    prot = load_dataset(a.protected, "train", mmap=True)
    v = verify(clean, prot, levels=levels)
    if v["labels_equal"] and clean.shape[0] % 2 == 0 and clean.shape[1] % 2 == 0:
        from ..evaluation.perturbation import perturbation_stats

        v["perturbation"] = perturbation_stats(clean, prot)  # what a victim can see in it (first 20k images)
    if a.out:
        write_json(a.out, v)
    status = "OK" if v["ok"] else f"FAILED: {v['violations']} images over budget"
    bound = f"L0 {v['max_changed_pixels']}/{v['budget'][3:]} pixels, L-inf {v['linf_levels']}" \
        if v["budget_levels"] is None \
        else f"L-inf {v['linf_levels']}/{levels}"
    print(f"{a.protected}: {status}; {bound} levels, mean |delta| {v['mean_abs_levels']:.2f}, "
          f"at bound {100 * v['frac_at_bound']:.1f}%, PSNR {v['psnr']:.2f} dB, SSIM {v['ssim']:.4f}, labels "
          f"{'equal' if v['labels_equal'] else 'DIFFER'}")
    if "perturbation" in v:
        p = v["perturbation"]
        print("  perturbation: Haar energy " + ", ".join(f"{b} {100 * e:.0f}%" for b, e in p["band_energy"].items())
              + f", lag-1 autocorrelation {p['lag1_autocorr']:+.2f}, class means explain {100 * p['class_share']:.1f}% "
              f"of its variance, nearest class mean names {p['ncm_accuracy']:.1f}% of held-out images")
    for bad in v["violating"]:
        print(f"  image {bad['index']}: L-inf {bad['linf']} levels")
    return 0 if v["ok"] else 1


def _verify_hider(a: argparse.Namespace, levels: int) -> int:
    """verify --hider: the reveal gate on held-out covers (the clean loader's test split), from stored uint8."""
    from ..data.registry import test_spec_for
    from ..data import load_dataset
    from ..fsutil import write_json
    from ..hiding.hiderdir import hider_bank_dir, open_hider
    from ..protect import reveal_gate
    from ..semantic import load_bank

    test_spec = a.test or test_spec_for(a.clean)
    if not test_spec:
        raise DeephideError(f"{a.clean}: cannot tell which held-out covers go with it; give --test")
    covers = load_dataset(test_spec, "test")
    hider, info = open_hider(a.hider, image_size=covers.shape[0])
    bank_dir = hider_bank_dir(a.hider)
    if bank_dir is None:
        raise DeephideError(f"{a.hider}: no secret bank saved with this hider; the reveal gate needs the secrets")
    mode = a.mode or (info["training"].get("run") or {}).get("mode")
    if mode not in ("class", "sample"):
        raise DeephideError(f"{a.hider}: the checkpoint does not say its protection mode; give --mode class|sample")
    bank = load_bank(bank_dir).resized(*covers.shape[:2])  # a hider used at another size than its bank's
    g = reveal_gate(covers, hider, bank, mode, levels=levels, seed=a.seed, limit=a.limit, device=a.device)
    if a.out:
        write_json(a.out, {"reveal_gate": g, "hider": info})
    verdict = "HIDES" if g["hides"] else f"DOES NOT HIDE (needs {g['gate_margin_db']:.0f} dB over the trivial answer)"
    print(f"{a.hider}: {verdict}; {mode}-wise reveal from stored uint8 on {g['n']} held-out covers: PSNR "
          f"{g['reveal_psnr']:.2f} dB, SSIM {g['reveal_ssim']:.3f}; trivial answer {g['trivial_psnr']:.2f} dB, "
          f"SSIM {g['trivial_ssim']:.3f} (margin {g['margin_db']:+.2f} dB); class-mean perturbation vs its secret: "
          f"correlation {g['corr_own_mean']:+.3f} (vs other classes' secrets {g['corr_other_mean']:+.3f})")
    return 0 if g["hides"] else 1


@command("reveal")
def cmd_reveal(a: argparse.Namespace) -> int:
    import numpy as np

    from ..data import load_dataset
    from ..data.stored import save_imageset
    from ..fsutil import check_new_output
    from ..hiding.hiderdir import hider_bank_dir, open_hider
    from ..ops.metrics import psnr
    from ..protect import reveal, ssim
    from ..semantic import load_bank

    check_new_output(a.out, a.force)
    ds = load_dataset(a.data, "train")
    if a.limit:
        ds = ds.subset(np.arange(min(a.limit, len(ds))), note=f"first {a.limit}")
    hider, _ = open_hider(a.hider, image_size=ds.shape[0])
    rev = reveal(ds, hider, batch_size=a.batch_size, device=a.device, progress=not a.quiet)
    out = ds.replace(images=rev, note="revealed")
    save_imageset(out, a.out, force=a.force)
    msg = f"revealed {len(ds)} images -> {a.out}"
    assign = ds.provenance.get("protection", {}).get("assignment")
    bank_dir = hider_bank_dir(a.hider)
    if assign is not None and bank_dir is not None:
        bank = load_bank(bank_dir).resized(*ds.shape[:2])
        hidden = bank.images[np.asarray(assign)[: len(ds)]]
        msg += f"; against the hidden images: PSNR {psnr(rev, hidden):.2f} dB, SSIM {ssim(rev, hidden):.4f}"
    print(msg)
    return 0


def _read_images(items: list[str]) -> tuple[list[str], "object"]:
    """Image files, or a single set spec, as names + uint8 (N, H, W, 3)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from ..data import load_dataset

    if len(items) == 1 and not items[0].lower().endswith((".png", ".jpg", ".jpeg", ".bmp", ".webp")):
        ds = load_dataset(items[0], "train").to_rgb()
        return [f"{items[0]}#{i}" for i in range(len(ds))], ds.images
    arrs = []
    for f in items:
        try:
            with Image.open(f) as im:
                arrs.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
        except FileNotFoundError:
            raise DeephideError(f"{f}: no such file") from None
        except (UnidentifiedImageError, OSError) as e:
            raise DeephideError(f"{f}: not a readable image ({e})") from None
    shapes = {a.shape for a in arrs}
    if len(shapes) != 1:
        raise DeephideError(f"trace: images have different sizes {sorted(shapes)}; the hider needs one size")
    return items, np.stack(arrs)


@command("trace")
def cmd_trace(a: argparse.Namespace) -> int:
    from ..data import load_dataset
    from ..hiding.hiderdir import open_hider
    from ..semantic.logo import read_logo
    from ..trace import calibrate, trace_scores

    names, imgs = _read_images(a.images)
    hider, _ = open_hider(a.hider, image_size=imgs.shape[1])
    logo = read_logo(a.logo, imgs.shape[1])
    if a.threshold is not None:
        thr = a.threshold
    elif a.calibrate:
        clean = load_dataset(a.calibrate, "train").to_rgb()
        thr = calibrate(trace_scores(clean.images[: a.calibrate_n], hider, logo, device=a.device), a.fpr)
    else:
        raise DeephideError("trace: give --calibrate CLEAN_SET (clean images of the same kind) or --threshold")
    scores = trace_scores(imgs, hider, logo, device=a.device)
    hits = scores > thr
    if not a.summary_only:
        for n, sc, h in zip(names, scores, hits):
            print(f"{n}\t{sc:.4f}\t{'LOGO' if h else '-'}")
    print(f"{int(hits.sum())} of {len(hits)} images carry the logo (threshold {thr:.4f}, calibrated for FPR {a.fpr:g})")
    return 0


def add_hider_parsers(sub: Any) -> None:
    """Add train-hider, protect, verify and reveal to ``sub`` (an argparse sub-parsers object)."""
    th = sub.add_parser("train-hider", help="train the INN hider on a set and a secret source")
    th.add_argument("--data", required=True, help="training covers (set spec)")
    th.add_argument("--test", help="clean test set, for the LFC feature network (default: the loader's test split)")
    th.add_argument("--secrets", help="semantic source name or a saved bank directory (default: the --init hider's "
                                      "bank, else sig)")
    th.add_argument("--secret-option", action="append", metavar="KEY=VALUE", help="option of the semantic source")
    th.add_argument("--mode", choices=["class", "sample"], default="class")
    th.add_argument("--profile", help="hider profile (default: cpu; with --init, the init hider's own profile for "
                                      f"{WARM_START_ITERATIONS} iterations at {WARM_START_LR_SCALE} x its lr)")
    th.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a hider profile setting "
                                                                        "(e.g. w_lfc=0)")
    th.add_argument("--iterations", type=int)
    th.add_argument("--lfc-iterations", type=int, help="training iterations of the L_LFC feature network "
                                                       "(the profile's lfc_model; cached)")
    th.add_argument("--time-limit", type=float, help="stop (resumably) after this many seconds")
    th.add_argument("--seed", type=int, default=0)
    th.add_argument("--device", default="auto")
    th.add_argument("--out", required=True, help="hider directory (resumed when it exists)")
    th.add_argument("--force", action="store_true", help="start over instead of resuming")
    th.add_argument("--init", metavar="HIDER", help="start from this hider's weights and (unless --secrets is given) "
                    "secret bank (a directory, checkpoint or shipped name), with this profile's objective and a fresh "
                    "optimizer")
    th.add_argument("--quiet", action="store_true")

    pr = sub.add_parser("protect", help="hide secrets in every image of a set (guaranteed budget)")
    pr.add_argument("--data", required=True)
    pr.add_argument("--hider", required=True, help="a train-hider output directory or a shipped hider's name "
                                                   "(`deephide list hiders`)")
    pr.add_argument("--mode", choices=["class", "sample"], default="class")
    pr.add_argument("--eps", help="budget (default 8/255; for a folder, --strength sets it unless this is given)")
    pr.add_argument("--strength", choices=["low", "mid", "high"], default="mid",
                    help="a folder's budget: 4, 8 (default, the tables') or 16 levels of 255")
    pr.add_argument("--format", choices=["png", "jpeg"], default="png",
                    help="a folder's output: lossless PNG (default), or JPEG kept as JPEG (quality 95)")
    pr.add_argument("--labels", help="a folder's classes from a CSV (path,label) instead of the first folder level")
    pr.add_argument("--skip-bad", action="store_true",
                    help="leave out (and list) files that cannot be protected instead of stopping")
    pr.add_argument("--secrets", help="semantic source or bank dir (default: the hider's own bank)")
    pr.add_argument("--seed", type=int, default=0)
    pr.add_argument("--batch-size", type=int, default=256)
    pr.add_argument("--bf16", action="store_true", help="bf16 INN pass (faster on CPUs with bf16; budget still exact)")
    pr.add_argument("--device", default="auto")
    pr.add_argument("--out", required=True)
    pr.add_argument("--export-png", help="also write the APBench/ISS PNG-folder layout here")
    pr.add_argument("--export-folder", help="also write images back as <dir>/<class>/<file> (folder: input)")
    pr.add_argument("--force", action="store_true")
    pr.add_argument("--quiet", action="store_true")

    vf = sub.add_parser("verify", help="recompute budget, PSNR and SSIM of a protected set")
    vf.add_argument("--clean", required=True)
    vf.add_argument("--protected", help="the protected set to check against --clean")
    vf.add_argument("--hider", help="instead: the reveal gate of this hider (directory or shipped name) on held-out "
                                    "covers (--clean's test split); exit 1 when it does not hide")
    vf.add_argument("--test", help="held-out covers for --hider (default: the loader's test split)")
    vf.add_argument("--mode", choices=["class", "sample"], help="protection mode for --hider "
                                                                "(default: the one it was trained for)")
    vf.add_argument("--limit", type=int, default=2000, help="held-out covers for --hider")
    vf.add_argument("--seed", type=int, default=0)
    vf.add_argument("--device", default="auto")
    vf.add_argument("--eps", default="8/255")
    vf.add_argument("--out", help="write the report (JSON) here")

    rv = sub.add_parser("reveal", help="recover hidden images from protected ones (INN inverse)")
    rv.add_argument("--data", required=True)
    rv.add_argument("--hider", required=True)
    rv.add_argument("--out", required=True)
    rv.add_argument("--limit", type=int, help="only the first N images")
    rv.add_argument("--batch-size", type=int, default=256)
    rv.add_argument("--device", default="auto")
    rv.add_argument("--force", action="store_true")
    rv.add_argument("--quiet", action="store_true")


def add_trace_parser(sub: Any) -> None:
    """Add trace to ``sub``."""
    tr = sub.add_parser("trace", help="do these images carry my logo? (reveal + correlation, calibrated threshold)")
    tr.add_argument("images", nargs="+", help="image files, or one set spec")
    tr.add_argument("--hider", required=True)
    tr.add_argument("--logo", required=True, help="the picture hidden with `protect --secrets` "
                                                  "from `semantic --source logo`")
    tr.add_argument("--calibrate", help="clean images (set spec) to calibrate the threshold on")
    tr.add_argument("--calibrate-n", type=int, default=2000, help="how many clean images to calibrate on")
    tr.add_argument("--fpr", type=float, default=0.01, help="target false-positive rate on clean images")
    tr.add_argument("--threshold", type=float, help="a fixed threshold instead of calibrating")
    tr.add_argument("--summary-only", action="store_true")
    tr.add_argument("--device", default="auto")
