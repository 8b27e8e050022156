"""What the commands do, as Python functions: generate (generation), evaluate
(evaluation), export (export) and benchmark the training step (step_benchmark). The
common ones are `tfllm.generate_text`, `tfllm.evaluate_run` and `tfllm.export_run`."""
