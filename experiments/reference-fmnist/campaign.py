"""The reference campaign on Fashion-MNIST (issue 18): every table of results/reference-fmnist/README.md,
accumulated run by run on any machine from committed inputs.

The campaign is its declaration, campaign.yaml beside this script (rows and the commands that make their sets, the
ablation hiders, the grid passes; the grids themselves in configs/); deephide.evaluation.campaign is the engine:
it regenerates each row's set, checks it against the set ledger (results/reference-fmnist/sets.jsonl), runs grid
cells until the time given and logs the session in campaign.jsonl. summarise.py then writes README.md.

Commands (repository root, after `make setup`):
  make reference HOURS=2.5                                                     # = run --hours 2.5, then summarise
  .venv/bin/python experiments/reference-fmnist/campaign.py run --hours 2.5 [--device cuda] [--executor local]
  .venv/bin/python experiments/reference-fmnist/campaign.py status             # sets and cells done / left
  .venv/bin/python experiments/reference-fmnist/summarise.py                   # README.md from the results files
"""

from pathlib import Path

from deephide.evaluation.campaign import load_campaign, main

DECLARATION = Path(__file__).with_name("campaign.yaml")

if __name__ == "__main__":
    main(load_campaign(DECLARATION), description=__doc__.split("\n\n")[0])
