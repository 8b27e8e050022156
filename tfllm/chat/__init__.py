"""Chat and instruction data: templates rendered as transformers renders them
(tfllm.chat.template), conversations to ids and loss masks (tfllm.chat.encoding), and the
JSON Lines rows they come from (tfllm.chat.records). docs/chat.md."""
