"""Experiment grid: one YAML config -> cells (train set x model x countermeasure x seed [x mixture]).

Each cell trains one victim model (``train_victim``) and appends one JSON line to the results file.
A cell's key is a hash of everything that defines it, so a rerun of the same config skips every
cell already in the file: an interrupted grid resumes where it stopped. Two executors: ``local``
(cells one after another in this process) and ``ray`` (one Ray task per cell; the driver is the
only writer and appends each line as its task finishes).

Config keys (YAML mapping; unknown keys and wrong types are errors naming the file and key)::

    name: main-cpu                 # optional, default: the file's stem
    out: results/main-cpu.jsonl    # results (JSONL); a sidecar <out stem>.config.json records the config
    test: fashion-mnist            # test set spec (loaded with split "test")
    train_sets: {Clean: fashion-mnist, DH-C: runs/dh-class}   # row label -> set spec (split "train")
    models: [resnet20]
    countermeasures: paper         # or a list: names, NAME?k=v, or {label: NAME?k=v}
    seeds: [0, 1, 2]
    profile: cpu                   # victim profile (deephide.profiles)
    overrides: {iterations: 700}   # optional profile settings
    mixtures: [0.2, 0.8]           # optional: fraction of protected images (Tables F/G) ...
    clean: fashion-mnist           # ... mixed with the clean images of this set (required with mixtures)
    resources: {cpus: 1, gpus: 0}  # optional, per Ray task
    device: auto                   # optional
    paper_table: "K,class-wise"    # optional: paper rows for the report (see report.py)
    paper_csv: path/to/paper-tables.csv   # optional
    notes: free text shown in the report
    identity: content              # optional: key cells by the training set's sha256, not its label and path
    reuse: [results/other.jsonl]   # optional: results files whose cells with the same key are copied, not rerun
                                   # ([]: none, e.g. the same cells again at another thread count)

Relative paths (``out``, set paths) are relative to the current directory, not to the config file.

Modules: ``config`` (the schema and its validation), ``cells`` (expansion, keys, a cell's data and run),
``results`` (the results file), ``executors`` (local and Ray; ``run_grid``).
"""

from .cells import (DATA_CACHE_SIZE, _DATA_CACHE as _DATA_CACHE, IDENTITY_FILE, cached_dataset, cell_key, expand,
                    mix_sets, mixture_indices, resolve_spec, run_cell, set_identity)
from .config import CMEntry, GridConfig, load_config, parse_config
from .executors import EXECUTORS, GridSummary, grid_status, run_grid
from .results import ResultsWriter, read_results, sidecar_path

__all__ = ["CMEntry", "DATA_CACHE_SIZE", "EXECUTORS", "GridConfig", "GridSummary", "IDENTITY_FILE", "ResultsWriter",
           "cached_dataset", "cell_key", "expand", "grid_status", "load_config", "mix_sets",
           "mixture_indices", "parse_config",
           "read_results", "resolve_spec", "run_cell", "run_grid", "set_identity", "sidecar_path"]
