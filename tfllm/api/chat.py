"""A conversation with a model in its chat template: `tfllm.generate --chat`.

The template is the run's own (chat_template.jinja of a chat fine-tuning run, else that of
the checkpoint it was imported from, kept in RUN/pretrained/), or a pretrained model's
(`hf:DIR`, `gguf:FILE`). Each answer is generated from the whole conversation rendered
with the generation prompt, and ends at the template's end-of-turn token.
"""

from tfllm.data.chat_examples import chat_encoder
from tfllm.errors import UserError
from tfllm.runs.chat_template import chat_template_of


class ChatSession:
    """The messages so far and the model answering them.

    Example:
        >>> session = ChatSession("runs/chat", system="Answer in French.")
        >>> session.reply("Good morning!")
    """

    def __init__(self, spec, system=None, checkpoint=None, template_file=None,
                 max_new_tokens=200, temperature=0.0, top_k=0, top_p=1.0, seed=0):
        from tfllm.runs.run_directory import find_run

        config, self.tokenizer, _ = find_run(spec, checkpoint)
        text, origin = chat_template_of(spec, template_file)
        self.encoder = chat_encoder(config.data.train_on, self.tokenizer, text, origin)
        self.end_token = self.encoder.end_of_turn()
        self.spec, self.checkpoint = spec, checkpoint
        self.settings = (max_new_tokens, temperature, top_k, top_p, seed)
        self.max_length = config.model.max_length
        self.messages = [{"role": "system", "content": system}] if system else []
        self.model = None

    def reply(self, text, on_text=None):
        """The model's answer to a user message (the conversation goes on with it)."""
        from tfllm.inference import generate
        from tfllm.runs.run_directory import load_run

        if not text.strip():
            raise UserError("the message is empty; type some text.")
        self.messages.append({"role": "user", "content": text})
        prompt = self.encoder.prompt(self.messages)
        max_new, temperature, top_k, top_p, seed = self.settings
        if len(prompt) + max_new > self.max_length:
            max_new = self.max_length - len(prompt)
            if max_new < 1:
                raise UserError(f"the conversation is {len(prompt)} tokens, the model reads "
                                f"{self.max_length}; start a new chat.")
        if self.model is None:
            self.model = load_run(self.spec, self.checkpoint)[2]
        stream = _Stream(self.tokenizer, self.end_token, on_text) if on_text else None
        ids = generate(self.model, prompt, max_new, temperature, top_k, top_p, seed, 1,
                       end_token=self.end_token, stream=stream, chunk_size=4)[0]
        ids = [int(i) for i in ids]
        if ids and ids[-1] == self.end_token:
            ids = ids[:-1]
        answer = self.tokenizer.decode(ids)
        self.messages.append({"role": "assistant", "content": answer})
        return answer


class _Stream:
    def __init__(self, tokenizer, end_token, on_text):
        self.tokenizer, self.end_token, self.on_text, self.ids = tokenizer, end_token, on_text, []

    def __call__(self, chunk):
        self.ids.extend(int(i) for i in chunk[0] if int(i) != self.end_token)
        text = self.tokenizer.decode(self.ids)
        self.on_text(text[:-1] if text.endswith("\ufffd") else text)
