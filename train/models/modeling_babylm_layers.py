"""Decoder layers, attention masks and KV-cache handling of the BabyLM Flamingo and GIT models.

Ships in exported folders as Hugging Face remote code. It is plain torch on purpose: the decoder
internals of transformers (OPT/GIT layers, `create_causal_mask`, `DynamicCache(config=...)`)
change between releases, and an export must load on every release from 4.46 to the newest 5.x.
Module and parameter names are those of transformers' OPT and GIT layers, so checkpoints written
when the models were built from those layers load unchanged.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "gelu_new": lambda: nn.GELU(approximate="tanh"),
    "gelu_pytorch_tanh": lambda: nn.GELU(approximate="tanh"),
    "silu": nn.SiLU,
    "swish": nn.SiLU,
}


def activation(name: str) -> nn.Module:
    """The activation module transformers' ACT2FN gives for `name` (the ones these models use)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unsupported activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class KVCache:
    """The past keys and values of one forward call, whatever form they come in.

    `generate` passes a transformers `Cache` (a `DynamicCache` on 4.56 and every 5.x release); its
    `update(key, value, layer_idx)` and `get_seq_length()` are the same on both lines, so it is
    used as is and returned. Without one (a direct call, or 4.46's generate) the cache is a legacy
    tuple of (key, value) per layer, (B, heads, length, head_dim), which is plain torch.
    """

    def __init__(self, past, use_cache: bool):
        self.past = past
        self.is_object = past is not None and hasattr(past, "update")
        self.use_cache = use_cache
        self.new: list[tuple[torch.Tensor, torch.Tensor]] = []

    def length(self) -> int:
        """Positions already cached (image tokens included for GIT)."""
        if self.past is None:
            return 0
        if self.is_object:
            return int(self.past.get_seq_length())
        return int(self.past[0][0].shape[-2]) if len(self.past) else 0

    def update(self, layer_idx: int, key: torch.Tensor, value: torch.Tensor):
        """Keys and values of all positions so far for `layer_idx`, storing the new ones."""
        if self.is_object:
            return self.past.update(key, value, layer_idx)
        if self.past is not None and len(self.past) > layer_idx:
            key = torch.cat([self.past[layer_idx][0], key], dim=-2)
            value = torch.cat([self.past[layer_idx][1], value], dim=-2)
        if self.use_cache:
            self.new.append((key, value))
        return key, value

    def result(self):
        """What the model returns as `past_key_values`: the object it got, or the new tuples."""
        if not self.use_cache:
            return None
        return self.past if self.is_object else tuple(self.new)


def attention_bias(
    attention_mask: torch.Tensor | None,
    batch: int,
    query_len: int,
    past_len: int,
    dtype: torch.dtype,
    device: torch.device,
    bidirectional_prefix: int = 0,
) -> torch.Tensor:
    """Additive mask (B, 1, query_len, past_len + query_len): 0 where attending is allowed.

    Causal, minus padded keys (`attention_mask` (B, keys), 1 = a token; a shorter mask is taken to
    miss its leading positions, which are then attended). The first `bidirectional_prefix`
    positions (GIT's image tokens) also see each other. A row that sees nothing gets the same
    large negative bias everywhere, so softmax stays finite (it is padding, never scored).
    """
    keys = past_len + query_len
    q_pos = torch.arange(past_len, keys, device=device)[:, None]
    k_pos = torch.arange(keys, device=device)[None, :]
    allowed = k_pos <= q_pos
    if bidirectional_prefix:
        allowed = allowed | ((q_pos < bidirectional_prefix) & (k_pos < bidirectional_prefix))
    allowed = allowed[None, None].expand(batch, 1, query_len, keys)
    if attention_mask is not None:
        mask = attention_mask.to(device=device, dtype=torch.bool)
        if mask.shape[-1] < keys:
            mask = torch.cat([mask.new_ones(batch, keys - mask.shape[-1]), mask], dim=-1)
        allowed = allowed & mask[:, None, None, -keys:]
    # bfloat16's lowest value is finite in float32 and bfloat16 alike, so the bias stays finite
    # when CUDA autocast hands it to a bfloat16 attention (float32's lowest rounds to -inf there,
    # and a fully masked row of -inf gives NaN that leaks into every row through the values).
    lowest = torch.finfo(torch.float16 if dtype == torch.float16 else torch.bfloat16).min
    bias = torch.zeros(allowed.shape, dtype=dtype, device=device)
    return bias.masked_fill(~allowed, lowest)


# ---- OPT (Flamingo's decoder) ---------------------------------------------------------------------
class OPTLearnedPositionalEmbedding(nn.Embedding):
    """OPT's learned positions: ids offset by 2, as the pretrained OPT checkpoints have them."""

    offset = 2

    def __init__(self, num_embeddings: int, embedding_dim: int):
        super().__init__(num_embeddings + self.offset, embedding_dim)

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        return super().forward(position_ids + self.offset)


class OPTAttention(nn.Module):
    """OPT's multi-head self-attention (queries scaled before the product, as OPT does)."""

    def __init__(self, config, layer_idx: int):
        super().__init__()
        dim, self.num_heads = config.hidden_size, config.num_attention_heads
        if dim % self.num_heads:
            raise ValueError(f"hidden_size {dim} is not a multiple of num_attention_heads {self.num_heads}")
        self.head_dim = dim // self.num_heads
        self.scaling = self.head_dim**-0.5
        self.dropout = config.attention_dropout
        self.layer_idx = layer_idx
        bias = config.enable_bias
        self.k_proj = nn.Linear(dim, dim, bias=bias)
        self.v_proj = nn.Linear(dim, dim, bias=bias)
        self.q_proj = nn.Linear(dim, dim, bias=bias)
        self.out_proj = nn.Linear(dim, dim, bias=bias)

    def forward(self, hidden: torch.Tensor, bias: torch.Tensor | None, cache: KVCache) -> torch.Tensor:
        b, n, _ = hidden.shape
        shape = (b, n, self.num_heads, self.head_dim)
        q = (self.q_proj(hidden) * self.scaling).view(shape).transpose(1, 2)
        k = self.k_proj(hidden).view(shape).transpose(1, 2)
        v = self.v_proj(hidden).view(shape).transpose(1, 2)
        k, v = cache.update(self.layer_idx, k, v)
        # No bias: a plain causal block without padding or cache, where SDPA's is_causal lets torch
        # pick its fused (flash / memory-efficient) kernels, as transformers' own OPT path does.
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=bias,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=bias is None and n > 1,
            scale=1.0,
        )
        return self.out_proj(out.transpose(1, 2).reshape(b, n, -1))


class OPTDecoderLayer(nn.Module):
    """OPT's decoder layer: self-attention and feed-forward, layer norm before (125M) or after.
    `bias` None means plainly causal (no padding, nothing cached)."""

    def __init__(self, config, layer_idx: int):
        super().__init__()
        dim, affine = config.hidden_size, config.layer_norm_elementwise_affine
        self.self_attn = OPTAttention(config, layer_idx)
        self.do_layer_norm_before = config.do_layer_norm_before
        self.dropout = config.dropout
        self.activation_fn = activation(config.activation_function)
        self.self_attn_layer_norm = nn.LayerNorm(dim, elementwise_affine=affine)
        self.fc1 = nn.Linear(dim, config.ffn_dim, bias=config.enable_bias)
        self.fc2 = nn.Linear(config.ffn_dim, dim, bias=config.enable_bias)
        self.final_layer_norm = nn.LayerNorm(dim, elementwise_affine=affine)

    def forward(self, hidden: torch.Tensor, bias: torch.Tensor | None, cache: KVCache) -> torch.Tensor:
        residual = hidden
        if self.do_layer_norm_before:
            hidden = self.self_attn_layer_norm(hidden)
        hidden = self.self_attn(hidden, bias, cache)
        hidden = residual + F.dropout(hidden, p=self.dropout, training=self.training)
        if not self.do_layer_norm_before:
            hidden = self.self_attn_layer_norm(hidden)
        residual = hidden
        if self.do_layer_norm_before:
            hidden = self.final_layer_norm(hidden)
        hidden = self.fc2(self.activation_fn(self.fc1(hidden)))
        hidden = residual + F.dropout(hidden, p=self.dropout, training=self.training)
        if not self.do_layer_norm_before:
            hidden = self.final_layer_norm(hidden)
        return hidden


# ---- GIT ------------------------------------------------------------------------------------------
class GitEmbeddings(nn.Module):
    """GIT's text embeddings: words plus absolute positions, LayerNorm, dropout."""

    def __init__(self, config):
        super().__init__()
        self.word_embeddings = nn.Embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self, input_ids: torch.Tensor | None, position_ids: torch.Tensor, inputs_embeds: torch.Tensor | None
    ) -> torch.Tensor:
        embeddings = self.word_embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        embeddings = embeddings + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings))


class GitSelfAttention(nn.Module):
    """GIT's (BERT's) self-attention, computed eagerly as transformers' GIT does."""

    def __init__(self, config, layer_idx: int):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // self.num_heads
        self.layer_idx = layer_idx
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def forward(self, hidden: torch.Tensor, bias: torch.Tensor, cache: KVCache) -> torch.Tensor:
        b, n, _ = hidden.shape
        shape = (b, n, self.num_heads, self.head_dim)
        q = self.query(hidden).view(shape).transpose(1, 2)
        k, v = cache.update(
            self.layer_idx,
            self.key(hidden).view(shape).transpose(1, 2),
            self.value(hidden).view(shape).transpose(1, 2),
        )
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim) + bias
        probs = self.dropout(F.softmax(scores, dim=-1))
        return torch.matmul(probs, v).transpose(1, 2).reshape(b, n, -1)


class GitResidualOutput(nn.Module):
    """Dense, dropout, then LayerNorm of the sum with the block's input (post-norm, as BERT)."""

    def __init__(self, config, in_dim: int):
        super().__init__()
        self.dense = nn.Linear(in_dim, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class GitAttention(nn.Module):
    def __init__(self, config, layer_idx: int):
        super().__init__()
        self.self = GitSelfAttention(config, layer_idx)
        self.output = GitResidualOutput(config, config.hidden_size)

    def forward(self, hidden: torch.Tensor, bias: torch.Tensor, cache: KVCache) -> torch.Tensor:
        return self.output(self.self(hidden, bias, cache), hidden)


class GitIntermediate(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = activation(config.hidden_act)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(hidden))


class GitLayer(nn.Module):
    """GIT's layer: attention block, then feed-forward block, each post-norm."""

    def __init__(self, config, layer_idx: int):
        super().__init__()
        self.attention = GitAttention(config, layer_idx)
        self.intermediate = GitIntermediate(config)
        self.output = GitResidualOutput(config, config.intermediate_size)

    def forward(self, hidden: torch.Tensor, bias: torch.Tensor, cache: KVCache) -> torch.Tensor:
        attended = self.attention(hidden, bias, cache)
        return self.output(self.intermediate(attended), attended)


class GitEncoder(nn.Module):
    """Holds the layers, so parameter names read `git.encoder.layer.N...` as in transformers."""

    def __init__(self, config):
        super().__init__()
        self.layer = nn.ModuleList(GitLayer(config, i) for i in range(config.num_hidden_layers))
