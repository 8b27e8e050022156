"""`python tools/speedrun.py` = `python -m tfllm.speedrun` (see there): time to a target
validation loss."""

from tfllm import cli
from tfllm.speedrun import main

if __name__ == "__main__":
    cli.run(main)
