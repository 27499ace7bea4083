"""Training below the methods: the victim trainer (``trainer``), batched GPU/CPU augmentation (``augment``) and
the collective helpers for torchrun jobs (``distributed``). Used by hiding, attacks, evaluation and the CLI;
imports only data, models and the runtime. Importing this package imports none of its modules.
"""
