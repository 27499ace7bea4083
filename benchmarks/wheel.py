"""The package as a user installs it (issue 36, item 1): the wheel's size, what the shipped hiders weigh in it, and
whether an installed wheel finds its hiders and protects.

    # WHEEL.md (~3 min: a fresh venv, its dependencies installed from the machine's package index):
    python benchmarks/wheel.py
    python benchmarks/wheel.py --quick --out /tmp/wheel.md   # the wheel installed --no-deps beside this venv (~30 s)

Steps, in one run:
  build    `pip wheel . --no-deps --no-build-isolation` (this venv's setuptools; nothing downloaded)
  inspect  the wheel's size, the shipped hiders' share of it, and that no optimizer state or snapshot is in it
  install  full: a fresh `python -m venv`, `pip install -c requirements-cpu.txt WHEEL` (the CPU torch pin);
           --quick: `pip install --no-deps --target DIR WHEEL`, run with DIR first on PYTHONPATH (this venv's
           dependencies, the wheel's deephide: the run checks which deephide it imported)
  use      `deephide list hiders` and `deephide protect` of 100 synthetic 32x32 images with the shipped fmnist-class,
           from a directory outside the repository
Targets: the shipped hiders <= 20 MB in all; the installed wheel lists them and protects.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGET_HIDERS_MB = 20.0
PROTECT_DATA = "synthetic?n=100&size=32&classes=10"


def run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[float, str]:
    """Seconds and stdout of ``cmd``; a failure exits with its output."""
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    if res.returncode != 0:
        sys.exit(f"wheel.py: {' '.join(cmd[:4])} ... failed (exit {res.returncode}):\n{res.stdout[-2000:]}{res.stderr[-2000:]}")
    return time.perf_counter() - t0, res.stdout


def inspect(whl: Path) -> dict:
    """Sizes (MiB) of the wheel and of its shipped hiders, and any training state that should not be there."""
    with zipfile.ZipFile(whl) as z:
        infos = z.infolist()
    hiders = [i for i in infos if "/hiders/" in i.filename]
    names = sorted({i.filename.split("/hiders/")[1].split("/")[0] for i in hiders})
    stray = [i.filename for i in hiders if i.filename.endswith(("optimizer.safetensors", "surrogate.safetensors"))
             or "/snapshots/" in i.filename]
    mib = 2**20
    return {"wheel": whl.name, "wheel_mb": round(whl.stat().st_size / mib, 2),
            "hiders_mb": round(sum(i.file_size for i in hiders) / mib, 2), "hiders": names,
            "per_hider_mb": {n: round(sum(i.file_size for i in hiders if f"/hiders/{n}/" in i.filename) / mib, 2)
                             for n in names},
            "files": len(infos), "training_state_in_wheel": stray}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE / "WHEEL.md")
    ap.add_argument("--quick", action="store_true", help="install --no-deps beside this venv instead of a fresh venv")
    a = ap.parse_args(argv)
    from deephide.runtime import versions

    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        t_build, _ = run([py, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp / "dist")])
        whl = next((tmp / "dist").glob("deephide-*.whl"))
        res = {"build_s": round(t_build, 1), **inspect(whl), "mode": "quick" if a.quick else "fresh venv"}
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DEEPHIDE_HIDERS")}
        if a.quick:
            t_inst, _ = run([py, "-m", "pip", "install", "--no-deps", "-q", "--target", str(tmp / "site"), str(whl)])
            env["PYTHONPATH"] = str(tmp / "site")
            user_py = py
        else:
            t_venv, _ = run([py, "-m", "venv", str(tmp / "venv")])
            user_py = str(tmp / "venv" / "bin" / "python")
            t_inst, _ = run([user_py, "-m", "pip", "install", "-q", "-c", str(ROOT / "requirements-cpu.txt"), str(whl)])
            t_inst += t_venv
        res["install_s"] = round(t_inst, 1)
        work = tmp / "user"  # outside the repository: nothing of the source tree is on the path
        work.mkdir()
        _, where = run([user_py, "-c", "import deephide, sys; print(deephide.__file__)"], env=env, cwd=work)
        res["imported_from"] = where.strip().replace(str(tmp), "$TMP")
        if not where.strip().startswith(str(tmp)):
            sys.exit(f"wheel.py: the installed deephide was not the one imported ({where.strip()})")
        cli = [user_py, "-m", "deephide"]
        _, listed = run([*cli, "list", "hiders"], env=env, cwd=work)
        res["listed"] = [ln.split("\t")[0] for ln in listed.splitlines() if ln.strip()]
        t_prot, out = run([*cli, "protect", "--data", PROTECT_DATA, "--hider", "fmnist-class", "--out",
                           str(work / "protected"), "--quiet"], env=env, cwd=work)
        manifest = json.loads((work / "protected" / "manifest.json").read_text())
        res["protect_s"] = round(t_prot, 1)
        res["protected_images"] = manifest.get("n") or manifest.get("count") or len(manifest.get("labels", [])) or None
    res["ok"] = (res["hiders_mb"] <= TARGET_HIDERS_MB and not res["training_state_in_wheel"]
                 and set(res["hiders"]) <= set(res["listed"]) and "fmnist-class" in res["listed"])
    res["machine"] = {k: v for k, v in versions().items() if k.startswith("cpu") or k in ("torch", "python")}
    res["measured_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    lines = [
        "# The package as a user installs it (benchmarks/wheel.py)", "",
        f"Measured {res['measured_at']} on {res['machine'].get('cpu_model')} ({res['machine'].get('cpu_threads')} "
        f"threads); install: {res['mode']}. Command: `python benchmarks/wheel.py{' --quick' if a.quick else ''}`.", "",
        "| what | value |", "|---|---|",
        f"| wheel | {res['wheel']}, {res['wheel_mb']} MB, {res['files']} files, built in {res['build_s']} s |",
        f"| shipped hiders in it | {res['hiders_mb']} MB (target <= {TARGET_HIDERS_MB:g}): "
        + ", ".join(f"{n} {m} MB" for n, m in res["per_hider_mb"].items()) + " |",
        f"| training state in it | {', '.join(res['training_state_in_wheel']) or 'none'} |",
        f"| install | {res['install_s']} s |",
        f"| `deephide list hiders` | {', '.join(res['listed'])} |",
        f"| `deephide protect` of 100 synthetic images with fmnist-class | {res['protect_s']} s (deephide imported from "
        f"`{res['imported_from']}`) |",
        "", f"**{'met' if res['ok'] else 'NOT met'}**: the hiders fit, no training state ships, the installed wheel "
        "lists its hiders and protects.", ""]
    a.out.write_text("\n".join(lines))
    a.out.with_suffix(".json").write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")
    print("\n".join(lines))
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
