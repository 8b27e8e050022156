"""tfllm.train's checks before TensorFlow loads: the config as the run would train it (a
checkpoint's architecture, a prepared dataset's tokenizer), its teacher, where it runs,
and the run directory it would resume. Each answers bad input in about a second."""

from tfllm import config as config_lib
from tfllm.data.prepared_dataset import PreparedDataset, is_prepared
from tfllm.data.sources import adopt_prepared
from tfllm.distribute.placement import check_placement
from tfllm.pretrained.checkpoint import adopt_pretrained, check_checkpoint, pretrained_path
from tfllm.runs.resume_check import adopt_resumed_import, check_resume
from tfllm.training.teacher import check_teacher


def check_before_training(config, run_dir, init_from, strategy="auto", mesh=None):
    """tfllm.train's check before TensorFlow loads: the config as the run would train it
    (a checkpoint's architecture, a prepared dataset's tokenizer) placed by `strategy`
    and `mesh` (the --strategy and --mesh flags), against the run it would resume.
    Raises UserError naming the fix."""
    check_placement(strategy, mesh, config)
    path = pretrained_path(init_from)
    if path is not None:
        config, _ = adopt_pretrained(config, check_checkpoint(path, config.model.max_length))
        config = config_lib.validate(config)
    else:
        config = adopt_resumed_import(config, run_dir, init_from)
    if is_prepared(config.data.source):
        config, _ = adopt_prepared(config, PreparedDataset(config.data.source))
    check_teacher(config)
    check_resume(run_dir, config, init_from)
