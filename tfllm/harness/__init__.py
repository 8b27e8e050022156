"""tfllm models in EleutherAI's lm-evaluation-harness (`pip install 'tfllm[eval]'`).

`import tfllm.harness` registers the lm-eval model `tfllm` (where lm-eval is installed),
which loads a run directory, `hf:DIR` or `gguf:FILE`; `python -m tfllm.lm_eval` is
lm-eval's own command line with it registered; `eval.tasks` scores tasks during training
(tfllm.harness.tasks).

Example:
    >>> import lm_eval, tfllm.harness
    >>> lm_eval.simple_evaluate(model="tfllm", model_args="run_dir=runs/chat",
    ...                         tasks=["hellaswag"], limit=100)
"""

import importlib.util

if importlib.util.find_spec("lm_eval") is not None:
    from tfllm.harness.model import TfllmLM, register  # noqa: F401

    register()
