"""Campaigns: tables of victim cells accumulated run by run, on any machine, from committed inputs.

A campaign is declared in a YAML file (rows and the commands that make their sets, ablation hiders, grid passes:
:mod:`.declaration`); the engine regenerates the sets, checks each against the set ledger (:mod:`.ledger`), runs
the grids' cells until the time given and logs the run (:mod:`.engine`); the tables read the cells back by their
training bytes (:mod:`.records`). The reference campaign is experiments/reference-fmnist/campaign.yaml, run by
experiments/reference-fmnist/campaign.py.
"""

from .declaration import AblationHider, Campaign, load_campaign
from .engine import main, run, status
from .ledger import check_set, current_ledger, recipe, row_ledger, visual_cost
from .records import grid_records, ledger_row, row_fingerprints

__all__ = ["AblationHider", "Campaign", "load_campaign", "main", "run", "status", "check_set", "current_ledger",
           "recipe", "row_ledger", "visual_cost", "grid_records", "ledger_row", "row_fingerprints"]
