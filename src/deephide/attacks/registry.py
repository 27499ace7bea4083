"""The attack registry: name -> ``fn(train, *, eps_levels=8, profile="cpu", seed=0, device="auto", progress=True,
**options) -> ImageSet`` (the contract in ``deephide.attacks``). A leaf that every attack module imports to register
itself; importing ``deephide.attacks`` fills it."""

from ..registry import Registry

ATTACKS: Registry = Registry("attack")
