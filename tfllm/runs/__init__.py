"""A run directory, which every command reads: its config, tokenizer, checkpoints and
lock (run_directory), and whether a config may resume it (resume_check). TensorFlow-free
until a model is restored."""
