"""Training configs (ml_collections). Installed as `tfllm.configs`; pass one with
`--config=configs/<name>.py` or by name, `--config=<name>`."""
