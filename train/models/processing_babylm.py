"""Processor shipped with exported BabyLM multimodal models (Hugging Face remote code).

It pairs the vision encoder's image processor with the tokenizer and behaves like transformers'
own processors for text: text goes first or by keyword (`processor("a b")`,
`processor(text=[...], padding=True)`), and every keyword that is not an image-processing one
reaches the tokenizer (`return_offsets_mapping`, `add_special_tokens`, `truncation`, ...), which
the BabyLM 2025 evaluation relies on. It adds `token_type_ids` because the BabyLM 2024 DevBench
loader pops them and transformers 5 tokenizers no longer return them by default. Imports only
transformers, and works on every release from 4.46 to the newest 5.x.
"""

import transformers
from transformers import BatchFeature, ProcessorMixin

_TRANSFORMERS_MAJOR = int(transformers.__version__.split(".")[0])

# Keyword arguments of image processors; everything else goes to the tokenizer.
_IMAGE_KWARGS = {
    "do_resize",
    "size",
    "resample",
    "do_rescale",
    "rescale_factor",
    "do_normalize",
    "image_mean",
    "image_std",
    "do_center_crop",
    "crop_size",
    "do_convert_rgb",
    "do_pad",
    "data_format",
    "input_data_format",
    "device",
}


def _is_text(value) -> bool:
    """A string, a list of strings, or a list of (text, text_pair) pairs."""
    if isinstance(value, str):
        return True
    if isinstance(value, (list, tuple)) and value:
        first = value[0]
        if isinstance(first, (list, tuple)):
            return bool(first) and all(isinstance(x, str) for x in first)
        return isinstance(first, str)
    return False


class BabyLMProcessor(ProcessorMixin):
    """`processor(text, images=...)` -> input_ids, attention_mask, token_type_ids (+ pixel_values).

    `image_token` is the token that places an image in a prompt ("<image>" for Flamingo), or
    None where the image goes before the text on its own (GIT); the tokenizer carries it too.
    """

    # transformers 4.x picks the sub-processors from these; 5.x reads the __init__ signature and
    # warns that `image_processor_class` is deprecated, so there they are not defined.
    attributes = ["image_processor", "tokenizer"]
    if _TRANSFORMERS_MAJOR < 5:
        image_processor_class = "AutoImageProcessor"
        tokenizer_class = "AutoTokenizer"

    def __init__(self, image_processor, tokenizer, image_token=None, **kwargs):
        super().__init__(image_processor, tokenizer, **kwargs)
        self.image_token = image_token
        # The 2025 pipeline reads the token from the tokenizer (`processor.tokenizer.image_token`).
        tokenizer.image_token = image_token
        tokenizer.image_token_id = (
            None if image_token is None else tokenizer.convert_tokens_to_ids(image_token)
        )
        self.image_token_id = tokenizer.image_token_id

    def __call__(self, images=None, text=None, *args, return_tensors=None, **kwargs):
        """Tokenise `text` and/or preprocess `images`. Text may come first (`processor("a b")`),
        as transformers' processors take it; a list of texts is padded to the longest unless
        `padding` says otherwise. Text alone gives the tokenizer's own BatchEncoding."""
        if args:
            raise TypeError("pass at most text and images positionally; the rest by keyword")
        if _is_text(images) and not _is_text(text):
            images, text = text, images
        if images is None and text is None:
            raise ValueError("pass images, text or both")
        text_kwargs = {**kwargs.pop("common_kwargs", {}), **kwargs.pop("text_kwargs", {})}
        image_kwargs = kwargs.pop("images_kwargs", {})
        for key, value in kwargs.items():
            (image_kwargs if key in _IMAGE_KWARGS else text_kwargs)[key] = value
        encoding = None
        if text is not None:
            text_kwargs.setdefault("padding", True)
            text_kwargs.setdefault("return_token_type_ids", True)
            encoding = self.tokenizer(text, return_tensors=return_tensors, **text_kwargs)
            if images is None:
                return encoding
        pixels = self.image_processor(images, return_tensors=return_tensors, **image_kwargs)
        data = {**encoding} if encoding is not None else {}
        data["pixel_values"] = pixels["pixel_values"]
        return BatchFeature(data=data, tensor_type=return_tensors)

    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "token_type_ids", "pixel_values"]
