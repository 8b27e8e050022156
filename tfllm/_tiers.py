"""The package's tiers, lowest first: a module imports only from its own package and from
packages on lower tiers. tests/test_layout.py parses every import (those inside functions
too) and fails on an import against this order or on a cycle between packages.

A package is named by its dotted path below `tfllm`; a top-level module (`tfllm.cli`) is
a package of its own. Each name stands on exactly one tier.
"""

TIERS = (
    # what every tier may use: the Keras import, lazy names, errors, atomic files, log
    # filtering, the bundled config files, the CPU's flags
    ("errors", ("errors", "_lazy", "_tiers")),
    ("base", ("_keras", "files", "native_logs", "configs", "hardware")),
    ("parts", ("layers", "tokenizers", "chat", "losses")),    # Keras layers; tokenizers;
                                                               # chat templates; chunked loss
    ("models", ("models",)),                                   # GPT, RecurrentLM, their registry
    ("formats", ("data", "pretrained", "compression", "inference")),  # corpora, checkpoints,
                                                               # QAT/pruning, decoding/export
    ("optimization", ("optim",)),                              # optimizers, schedules
    ("methods", ("adapt", "distribute")),                      # LoRA, distillation; strategies
    ("config", ("config",)),                                   # validation and run identity
    ("runs", ("runs",)),                                       # run directories
    ("evaluation", ("harness",)),                              # lm-evaluation-harness model
    ("measurement", ("bench",)),                               # MFU, generation speed, scaling
    ("training", ("training",)),                               # the loop and its preflight
    ("api", ("api",)),                                         # what the commands do, in Python
    ("cli", ("cli",)),                                         # flags, errors, exit codes
    ("commands", ("train", "evaluate", "generate", "export", "prepare", "benchmark",
                  "lr_find", "speedrun", "launch_workers", "lm_eval", "__init__")),
)


def tier_of(package):
    """The index in TIERS of a package name (as in TIERS), or None if it stands on none."""
    for index, (_, packages) in enumerate(TIERS):
        if package in packages:
            return index
    return None
