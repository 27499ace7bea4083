"""Why the JPEG table is not monotonic in the quality: what each JPEG quality leaves of the perturbation, block by block.

The reference campaign measured DH-C's victim accuracy after a JPEG round trip of the training set at qualities 2, 4,
6, 8, 10, 50 (results/reference-fmnist/README.md): 2, 4 and 8 erase the poison (~86%, as Clean), 6, 10 and 50 leave it
working (~50%). A lower quality removes more of the image, so why would quality 8 erase what 6 and 10 keep?

The mechanism tested here: Fashion-MNIST's background is pure black. A black 8x8 luminance block has the JPEG DC
coefficient -1024 (8 x its mean after the level shift of 128); the quantiser rounds DC / step to an integer, where the
step is the luminance table's DC entry at that quality. The clip on write makes a protected image's perturbation on
black non-negative and at most 8 grey levels, so it can raise a black block's DC by at most 64. Whether that moves
the block to another quantisation bin depends on where -1024 sits inside its bin, not on the step's size: the bin
boundary above -1024 is 9.25 grey levels away at quality 8 (step 100), out of the budget's reach, but 3.3 levels away
at quality 6 (step 133) and 3.0 at quality 10 (step 80). Where the boundary is out of reach, every black block of
the protected image decodes exactly like the clean one, and the hider's signal there is gone.

For each quality this script reports: the DC step Pillow wrote (read back from the file), the mean luminance shift a
black block needs to change bin (the prediction, in grey levels), the measured share of black blocks (and of the other
blocks) whose decoded luminance differs between the protected and the clean image, and how much class information
the surviving perturbation JPEG(protected) - JPEG(clean) still carries: the test accuracy of a nearest-centroid
probe predicting the label from it alone (fitted on the first half of the images, tested on the second; 10% is
chance), on the whole image and on the black blocks alone. Beside them: the victim's accuracy from the campaign's
results files (final, mean ± std over seeds 0-2; fastcnn, Vanilla after the JPEG round trip).

Command (repository root; the sets come from `make reference`, under runs/reference/sets/):
  .venv/bin/python experiments/reference-fmnist/jpeg_blocks.py                    # DH-C and DH-S, 10,000 images
  .venv/bin/python experiments/reference-fmnist/jpeg_blocks.py --rows DH-C --n 2000 --out /tmp/jb
Writes results/reference-fmnist/jpeg-blocks.md and .json (the summary's JPEG section links them).
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from deephide.countermeasures.jpeg import jpeg_images
from deephide.data import load_dataset
from deephide.errors import DeephideError
from deephide.evaluation.campaign import current_ledger, grid_records, load_campaign, row_fingerprints
from deephide.evaluation.stats import aggregate
from deephide.fsutil import atomic_file, write_json
from deephide.training.trainer import data_fingerprint

#: the reference campaign (its declaration beside this script): where its sets and results are
CAMPAIGN = load_campaign(Path(__file__).with_name("campaign.yaml"))

#: the JPEG table's qualities (jpeg.yaml: 2-8; main.yaml: 10, 50) and 20, a quality no victim was trained at
QUALITIES = (2, 4, 6, 8, 10, 20, 50)
#: the budget's reach on a black block: the clip on write keeps the perturbation there in [0, 8] grey levels
BUDGET_LEVELS = 8
BLOCK = 8  # JPEG's DCT block (luminance is not subsampled)
#: a block "changed" when its decoded luminance differs by more than this mean absolute value (grey levels)
CHANGED_ABOVE = 0.5


def dc_step(quality: int) -> int:
    """The DC entry of the luminance quantisation table Pillow writes at ``quality`` (read back from the file)."""
    buf = io.BytesIO()
    Image.new("L", (BLOCK, BLOCK)).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as im:
        return int(im.quantization[0][0])


def black_block_reach(step: int) -> float:
    """Mean luminance rise (grey levels) that moves a black block's DC (-1024) into the next bin up.

    libjpeg rounds DC / step to the nearest integer, halves away from zero, so a DC of -1024 sits in bin
    q0 = -round(1024 / step) and leaves it above (q0 + 1/2) * step; a mean rise of m levels adds 8 m to the DC.
    """
    q0 = -int(np.floor(1024 / step + 0.5))
    return ((q0 + 0.5) * step + 1024) / BLOCK


def luminance(images: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of uint8 (n, H, W, 3) images, as JPEG computes it: float32 (n, H, W)."""
    x = images.astype(np.float32)
    return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]


def block_means(a: np.ndarray) -> np.ndarray:
    """Mean of each 8x8 block of (n, H, W) (H, W multiples of 8): (n, H/8, W/8)."""
    n, h, w = a.shape
    return a.reshape(n, h // BLOCK, BLOCK, w // BLOCK, BLOCK).mean(axis=(2, 4))


def probe_accuracy(features: np.ndarray, labels: np.ndarray) -> float:
    """Test accuracy (%) of a nearest-centroid probe (Euclidean) fitted on the first half, tested on the second.

    Written out rather than sklearn's NearestCentroid, which refuses features that are all zero (what a JPEG quality
    that erases the black blocks leaves there); on them this probe predicts one class: chance.
    """
    half = len(labels) // 2
    x = features.reshape(len(labels), -1).astype(np.float32)
    classes = np.unique(labels[:half])
    centroids = np.stack([x[:half][labels[:half] == c].mean(axis=0) for c in classes])
    # |x - c|^2 = |x|^2 - 2 x.c + |c|^2; |x|^2 is the same for every class
    scores = x[half:] @ centroids.T * 2 - (centroids ** 2).sum(axis=1)
    return float(100.0 * (classes[scores.argmax(axis=1)] == labels[half:]).mean())


def victim_accuracy(fps: dict[str, set[str]]) -> dict[tuple[str, int], dict[str, Any]]:
    """(row, quality) -> the campaign's fastcnn final accuracy after JPEG at that quality (mean, std, seeds), from the
    cells of each row's accepted sets ``fps`` (deephide.evaluation.campaign.row_fingerprints)."""
    recs = grid_records(CAMPAIGN, "jpeg", fps)[1] + grid_records(CAMPAIGN, "main", fps)[1]
    out = {}
    for (row, model, cm, _), agg in aggregate([r for r in recs if r["model"] == "fastcnn"], "final").items():
        q = jpeg_quality(cm)
        if q is not None:
            out[(row, q)] = {"mean": agg.mean, "std": agg.std, "seeds": agg.n}
    return out


def jpeg_quality(label: str) -> int | None:
    """The quality of a JPEG column's label (JPEG2 ... JPEG50), None for any other column."""
    return int(label[4:]) if label.startswith("JPEG") and label[4:].isdigit() else None


def load_row(row: str, n: int, fps: dict[str, set[str]]) -> tuple[np.ndarray, str]:
    """The first ``n`` images of the campaign's set for ``row`` and the set's fingerprint; refuses a set that is not
    one of the row's accepted sets ``fps`` (deephide.evaluation.campaign.row_fingerprints)."""
    path = CAMPAIGN.set_dir(row)
    if not path.exists():
        raise DeephideError(f"{path}: no set for row {row}; make it with `make reference` (the campaign) first")
    ds = load_dataset(str(path), mmap=True)
    fp = data_fingerprint(ds)
    if fp not in fps.get(row, set()):
        raise DeephideError(f"{path}: fingerprint {fp} is not an accepted set of row {row} in "
                            f"{CAMPAIGN.ledger}; regenerate it with the campaign")
    return np.asarray(ds.images[:n]), fp


def analyse(protected: np.ndarray, clean: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Per quality, what JPEG leaves of ``protected - clean`` (uint8 (n, 32, 32, 3) both)."""
    black = block_means(luminance(clean)) == 0  # (n, 4, 4): blocks with no foreground at all
    pix_black = np.repeat(np.repeat(black, BLOCK, axis=1), BLOCK, axis=2)[..., None]
    raw = protected.astype(np.float32) - clean.astype(np.float32)
    out = {"black_block_share": float(black.mean()),
           "none": {"mean_abs_levels": float(np.abs(raw).mean()), "probe": probe_accuracy(raw, labels),
                    "probe_black": probe_accuracy(raw * pix_black, labels)},
           "qualities": []}
    for q in QUALITIES:
        jp, jc = jpeg_images(protected, q), jpeg_images(clean, q)
        d = jp.astype(np.float32) - jc.astype(np.float32)
        changed = block_means(np.abs(luminance(jp) - luminance(jc))) > CHANGED_ABOVE
        step = dc_step(q)
        out["qualities"].append({
            "quality": q, "dc_step": step, "reach_levels": black_block_reach(step),
            "black_changed": float(changed[black].mean()), "other_changed": float(changed[~black].mean()),
            "mean_abs_levels": float(np.abs(d).mean()), "probe": probe_accuracy(d, labels),
            "probe_black": probe_accuracy(d * pix_black, labels)})
    return out


def markdown(res: dict[str, Any]) -> str:
    L = ["# What JPEG leaves of the perturbation, block by block (why the JPEG table is not monotonic)", "",
         f"Generated by `experiments/reference-fmnist/jpeg_blocks.py` from the campaign's sets ({res['n']:,} first "
         "training images of each; set fingerprints below). The script's docstring states the mechanism under test.",
         "", "Columns: the luminance DC step Pillow writes; *reach*: the mean luminance rise (grey levels) a black 8x8 "
         f"block needs to change DC bin (the clip on write allows at most {BUDGET_LEVELS} there); the measured share of "
         f"black / other blocks whose decoded luminance differs between protected and clean (mean |diff| > "
         f"{CHANGED_ABOVE}); mean |JPEG(protected) - JPEG(clean)|; the nearest-centroid probe's label accuracy from "
         "that difference alone, whole image and black blocks only (chance 10%); the victim's final accuracy after "
         "the same JPEG (fastcnn, Vanilla, mean ± std over seeds 0-2, from the results files; – where not run).", ""]
    for row, r in res["rows"].items():
        L += [f"## {row} (set {r['fingerprint']}; black blocks: {100 * r['black_block_share']:.1f}% of all)", "",
              "| JPEG quality | DC step | reach (levels) | black blocks changed (%) | other blocks changed (%) | "
              "mean abs diff (levels) | probe, whole (%) | probe, black blocks (%) | victim final (%) |",
              "|---|---|---|---|---|---|---|---|---|",
              f"| none | – | – | – | – | {r['none']['mean_abs_levels']:.2f} | {r['none']['probe']:.1f} | "
              f"{r['none']['probe_black']:.1f} | – |"]
        for e in r["qualities"]:
            v = e["victim_final"]
            vs = "–" if v is None else f"{v['mean']:.2f} ± {v['std']:.2f}" if v["seeds"] > 1 else f"{v['mean']:.2f}"
            L.append(f"| {e['quality']} | {e['dc_step']} | {e['reach_levels']:.2f}"
                     f"{'' if e['reach_levels'] <= BUDGET_LEVELS else ' (out of reach)'} | "
                     f"{100 * e['black_changed']:.1f} | {100 * e['other_changed']:.1f} | {e['mean_abs_levels']:.2f} | "
                     f"{e['probe']:.1f} | {e['probe_black']:.1f} | {vs} |")
        L.append("")
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", nargs="+", default=["DH-C", "DH-S"], help="campaign rows whose sets to analyse")
    p.add_argument("--n", type=int, default=10_000, help="first N training images of each set")
    p.add_argument("--out", type=Path, default=CAMPAIGN.results / "jpeg-blocks", help="writes OUT.md and OUT.json")
    a = p.parse_args(argv)
    try:
        clean_ds = load_dataset("fashion-mnist")
        clean, labels = clean_ds.images[: a.n], np.asarray(clean_ds.labels[: a.n])
        fps = row_fingerprints(current_ledger(CAMPAIGN))  # each row's accepted sets, read once
        res: dict[str, Any] = {"n": int(len(labels)), "rows": {}}
        for row in a.rows:
            protected, fp = load_row(row, a.n, fps)
            print(f"{row}: {len(protected):,} images, set {fp}", flush=True)
            res["rows"][row] = {"fingerprint": fp, **analyse(protected, clean, labels)}
        victims = victim_accuracy(fps)
        for row, r in res["rows"].items():
            for e in r["qualities"]:
                e["victim_final"] = victims.get((row, e["quality"]))
        text = markdown(res)
        write_json(a.out.with_suffix(".json"), res)
        with atomic_file(a.out.with_suffix(".md"), "w") as f:
            f.write(text + "\n")
    except DeephideError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
