"""What a data owner looks at before publishing: OUT/report.html (one self-contained page: per class a few before /
after / difference x16 thumbnails, a sortable table of every image's PSNR, SSIM and largest change, the totals and
the time taken) and OUT/report.csv (the same table).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

#: thumbnails per class on the page, and their longest side (pixels)
PER_CLASS, THUMB = 3, 160
#: the difference image: |after - before| x this, on black
DIFF_GAIN = 16
CSV_FIELDS = ("path", "output", "class", "width", "height", "mode", "output_mode", "format", "psnr_db", "ssim",
              "max_change_levels", "mean_change_levels", "jpeg_kept", "note")


def thumbs(before: Image.Image, after: Image.Image) -> dict[str, str]:
    """Before / after / difference x16 as base64 PNG data URLs, the longest side THUMB (pixels kept: no smoothing
    of the difference)."""
    def rgb(im: Image.Image) -> np.ndarray:
        if im.mode == "I;16":
            return np.repeat((np.asarray(im, dtype=np.float64) / 257.0).round().astype(np.uint8)[..., None], 3, 2)
        return np.asarray(im.convert("RGB"))

    a, b = rgb(before), rgb(after)
    diff = np.clip(np.abs(b.astype(np.int16) - a.astype(np.int16)) * DIFF_GAIN, 0, 255).astype(np.uint8)
    w, h = before.size
    scale = THUMB / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    out = {}
    for key, arr in (("before", a), ("after", b), ("diff", diff)):
        im = Image.fromarray(arr, "RGB").resize(size, Image.Resampling.NEAREST if scale > 1 else
                                                Image.Resampling.BOX)
        buf = io.BytesIO()
        im.save(buf, "PNG")
        out[key] = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    return out


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else round(r[k], 4) if isinstance(r.get(k), float) else r[k])
                        for k in CSV_FIELDS})


def _num(x: Any, fmt: str) -> str:
    return "–" if x is None else format(x, fmt)


_CSS = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
        "th{cursor:pointer;background:#f3f3f3}.cls{display:flex;gap:1.5em;flex-wrap:wrap}"
        "figure{margin:0}figcaption{font-size:80%;color:#555}img{image-rendering:pixelated;border:1px solid #ddd}"
        ".bad{color:#a00}")
_JS = """
function sortBy(th){const t=th.closest('table'),i=[...th.parentNode.children].indexOf(th),
 asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';const rows=[...t.tBodies[0].rows];
 rows.sort((a,b)=>{const x=a.cells[i].dataset.v??a.cells[i].textContent,y=b.cells[i].dataset.v??b.cells[i].textContent;
 const nx=parseFloat(x),ny=parseFloat(y);const c=(isNaN(nx)||isNaN(ny))?x.localeCompare(y):nx-ny;return asc?c:-c});
 rows.forEach(r=>t.tBodies[0].appendChild(r));}
document.querySelectorAll('th').forEach(th=>th.addEventListener('click',()=>sortBy(th)));
window.addEventListener('load',()=>{const imgs=[...document.images];
 document.body.dataset.imagesLoaded=imgs.filter(i=>i.complete&&i.naturalWidth>0).length+'/'+imgs.length;});
"""


def write_html(path: Path, summary: dict[str, Any], rows: list[dict[str, Any]],
               examples: dict[str, list[dict[str, Any]]]) -> None:
    """The report page: ``summary`` (totals, settings, notes), ``rows`` (one per image, as the CSV) and
    ``examples`` (class -> a few rows with their ``thumbs``)."""
    e = html.escape
    s = summary
    head = [f"<h1>deephide: {e(str(s['source']))} protected</h1>",
            f"<p><b>{s['protected']}</b> images protected into <code>{e(str(s['out']))}</code> with the hider "
            f"<code>{e(str(s['hider']))}</code> ({e(s['mode'])}-wise), strength <b>{e(s['strength'])}</b> "
            f"({s['levels']}/255 per value); {s['run_now']} of them in the last run, {s['seconds']:.1f} s "
            f"({s['images_per_s']:.2f} images/s).</p>",
            "<ul>",
            f"<li>PSNR mean {_num(s['psnr_mean'], '.2f')} dB (lowest {_num(s['psnr_min'], '.2f')}), SSIM mean "
            f"{_num(s['ssim_mean'], '.4f')}, largest change {_num(s['max_change'], '.2f')} levels of 255, mean "
            f"change {_num(s['mean_change'], '.3f')}.</li>",
            *(f"<li>{e(n)}</li>" for n in s["notes"]),
            "</ul>"]
    if s.get("bad"):
        head += ["<h2 class=bad>Files not protected and not written (--skip-bad)</h2><ul>",
                 *(f"<li class=bad>{e(r)}: {e(w)}</li>" for r, w in s["bad"]), "</ul>"]
    if s.get("others"):
        head += [f"<p>{len(s['others'])} file(s) that are not images were not copied: "
                 + ", ".join(f"<code>{e(o)}</code>" for o in s["others"][:50])
                 + (" ..." if len(s["others"]) > 50 else "") + "</p>"]
    ex = ["<h2>Before / after / difference x16, per class</h2>"]
    for cls, items in examples.items():
        ex.append(f"<h3>{e(cls)}</h3><div class=cls>")
        for r in items:
            t = r["thumbs"]
            ex.append("<figure>" + "".join(f'<img src="{t[k]}" alt="{k} {e(r["path"])}" title="{k}">'
                                           for k in ("before", "after", "diff"))
                      + f"<figcaption>{e(r['path'])}: PSNR {_num(r['psnr_db'], '.1f')} dB, largest change "
                      f"{_num(r['max_change_levels'], '.0f')}</figcaption></figure>")
        ex.append("</div>")
    cols = [("path", "image"), ("class", "class"), ("width", "width"), ("height", "height"), ("mode", "mode"),
            ("psnr_db", "PSNR (dB)"), ("ssim", "SSIM"), ("max_change_levels", "largest change"),
            ("mean_change_levels", "mean change"), ("output", "written as")]
    table = ["<h2>Every image (click a column to sort)</h2><table><thead><tr>"
             + "".join(f"<th>{e(h)}</th>" for _, h in cols) + "</tr></thead><tbody>"]
    for r in rows:
        cells = []
        for k, _ in cols:
            v = r.get(k)
            shown = _num(v, ".4f" if k == "ssim" else ".2f") if isinstance(v, float) or v is None else e(str(v))
            cells.append(f'<td data-v="{"" if v is None else e(str(v))}">{shown}</td>')
        table.append("<tr>" + "".join(cells) + "</tr>")
    table.append("</tbody></table>")
    page = ("<!doctype html><html lang=en><head><meta charset=utf-8><title>deephide report</title>"
            f"<style>{_CSS}</style></head><body>" + "\n".join(head + ex + table)
            + f"<script>{_JS}</script></body></html>\n")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
