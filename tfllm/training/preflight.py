"""tfllm.train's checks before TensorFlow loads: the config as the run would train it (a
checkpoint's architecture, a prepared dataset's tokenizer), its teacher, where it runs,
and the run directory it would resume. Each answers bad input in about a second."""

from tfllm import config as config_lib
from tfllm.adapt.chat_tuning import is_chat_source, run_template
from tfllm.errors import UserError
from tfllm.data.prepared_dataset import is_prepared, read_manifest
from tfllm.data.sources import adopt_prepared, open_prepared
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
    checkpoint = None
    if path is not None:
        checkpoint = check_checkpoint(path, config.model.max_length)
        config, _ = adopt_pretrained(config, checkpoint)
        config = config_lib.validate(config)
    else:
        config = adopt_resumed_import(config, run_dir, init_from)
    if is_prepared(config.data.source):
        config, _ = adopt_prepared(config, open_prepared(config.data.source))
    check_teacher(config)
    if config.eval.tasks:
        from tfllm.harness.tasks import check_tasks

        check_tasks(config.eval.tasks, strategy)
    check_resume(run_dir, config, init_from)
    if is_chat_source(config.data.source):
        check_chat(config, strategy, path is not None or bool(init_from))
        run_template(run_dir, config.data, checkpoint and checkpoint.chat_template, True)
        if checkpoint is not None and is_prepared(config.data.source):
            from tfllm.data.chat_data import check_prepared_tokenizer

            check_prepared_tokenizer(read_manifest(config.data.source), config.data.source,
                                     checkpoint.tokenizer())


def check_chat(config, strategy, pretrained):
    """UserError for what chat data does not combine with."""
    t = config.train
    refused = [(t.batch_size_start or t.seq_len_start, "the batch or window warm-up "
                "(train.batch_size_start, train.seq_len_start)"),
               (t.optimizer == "sophia", "train.optimizer='sophia'"),
               (strategy == "dtensor", "--strategy=dtensor"),
               (config.model.name != "gpt", f"model.name={config.model.name!r}")]
    for bad, what in refused:
        if bad:
            raise UserError(f"chat data (--config.data.source={config.data.source}) does not "
                            f"combine with {what}; leave it out.")
    if not pretrained:
        raise UserError(f"--config.data.source={config.data.source} is chat data (.jsonl), "
                        "which needs a pretrained model and its tokenizer; start from one with "
                        "--init_from=hf:DIR or --init_from=gguf:FILE.")
