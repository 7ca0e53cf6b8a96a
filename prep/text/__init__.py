"""BabyLM text: read the corpora as the original did, train/load the tokenizer, tokenize into shards."""
