"""`python tools/launch_workers.py` = `python -m tfllm.launch_workers` (see there): starts N
tfllm workers on this machine with the TF_CONFIG each needs."""

from tfllm.launch_workers import main

if __name__ == "__main__":
    main()
