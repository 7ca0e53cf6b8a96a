"""Processor shipped with exported BabyLM multimodal models (Hugging Face remote code).

It pairs the vision encoder's image processor with the tokenizer. It exists rather than a stock
processor because the BabyLM 2024 DevBench loader pops `token_type_ids` from the processor's
output, and transformers 5 tokenizers no longer return them by default. Imports only transformers,
and works on every release from 4.46 to the newest 5.x.
"""

import transformers
from transformers import BatchFeature, ProcessorMixin

_TRANSFORMERS_MAJOR = int(transformers.__version__.split(".")[0])

# Keyword arguments that belong to the tokenizer; everything else goes to the image processor.
_TEXT_KWARGS = {
    "add_special_tokens",
    "padding",
    "padding_side",
    "truncation",
    "max_length",
    "stride",
    "pad_to_multiple_of",
    "return_attention_mask",
    "return_length",
    "verbose",
}


class BabyLMProcessor(ProcessorMixin):
    """`processor(images=..., text=...)` -> pixel_values, input_ids, attention_mask, token_type_ids."""

    # transformers 4.x picks the sub-processors from these; 5.x reads the __init__ signature and
    # warns that `image_processor_class` is deprecated, so there they are not defined.
    attributes = ["image_processor", "tokenizer"]
    if _TRANSFORMERS_MAJOR < 5:
        image_processor_class = "AutoImageProcessor"
        tokenizer_class = "AutoTokenizer"

    def __init__(self, image_processor, tokenizer, **kwargs):
        super().__init__(image_processor, tokenizer, **kwargs)

    def __call__(self, images=None, text=None, return_tensors=None, **kwargs) -> BatchFeature:
        """Tokenise `text` and/or preprocess `images`; a list of texts is padded to the longest."""
        if images is None and text is None:
            raise ValueError("pass images, text or both")
        text_kwargs = {k: v for k, v in kwargs.items() if k in _TEXT_KWARGS}
        image_kwargs = {k: v for k, v in kwargs.items() if k not in _TEXT_KWARGS}
        data = {}
        if text is not None:
            text_kwargs.setdefault("padding", True)
            encoding = self.tokenizer(
                text, return_token_type_ids=True, return_tensors=return_tensors, **text_kwargs
            )
            data.update(encoding)
        if images is not None:
            pixels = self.image_processor(images, return_tensors=return_tensors, **image_kwargs)
            data["pixel_values"] = pixels["pixel_values"]
        return BatchFeature(data=data, tensor_type=return_tensors)

    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "token_type_ids", "pixel_values"]
