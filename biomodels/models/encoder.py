"""Our Megatron-BERT encoder and its NER, RE and QA heads, with fused attention.

Why not transformers' MegatronBert: its attention is eager only (separate matmul, softmax and
dropout kernels over a materialised score matrix; `_supports_sdpa` is False). Here the three
projections run as one matmul and attention goes through `torch.nn.functional.
scaled_dot_product_attention`: flash or memory-efficient kernels on a GPU, the fused kernel on a
CPU. `attention="eager"` (config `biomed_attention`) keeps the explicit path for comparison.

Megatron-BERT, as Megatron-LM computes it: word + position + token-type embeddings summed (no
LayerNorm), pre-LayerNorm blocks (`x + attn(LN(x))`, then `x + mlp(LN(x))`), one final LayerNorm,
GeLU in the form the checkpoint was trained with (`hidden_act`: `gelu` erf or `gelu_pytorch_tanh`).

Every parameter has transformers' MegatronBert name (`bert.encoder.layer.N.attention.self.query
.weight`, ...), so the same model directories load here and in transformers' classes, both ways:
query, key and value stay three parameters and are concatenated for the one fused matmul (a copy
of 3 x hidden^2 numbers per layer and step, under 1% of the layer's work at 512 tokens a batch).
The classes subclass transformers' `MegatronBertPreTrainedModel` for `from_pretrained`,
`save_pretrained` (which writes transformers' class name in `architectures`), weight init and
embedding resizing.

Tested in `tests/biomodels/models/test_encoder.py`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import MegatronBertConfig
from transformers.modeling_outputs import (
    BaseModelOutputWithPooling,
    MaskedLMOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers.models.megatron_bert.modeling_megatron_bert import MegatronBertPreTrainedModel

from biomodels.models.presets import ATTENTION_BACKENDS
from corpora.errors import ConfigError

_GELU = {"gelu": "none", "gelu_pytorch_tanh": "tanh", "gelu_new": "tanh", "gelu_fast": "tanh"}


def attention_backend(config: MegatronBertConfig) -> str:
    backend = getattr(config, "biomed_attention", "sdpa")
    if backend not in ATTENTION_BACKENDS:
        raise ConfigError(f"attention must be one of {', '.join(ATTENTION_BACKENDS)}, got {backend!r}")
    return backend


def _gelu_approximation(config: MegatronBertConfig) -> str:
    act = config.hidden_act
    if act not in _GELU:
        raise ConfigError(f"hidden_act {act!r} is not a GeLU form this encoder knows ({', '.join(_GELU)})")
    return _GELU[act]


class Embeddings(nn.Module):
    def __init__(self, config: MegatronBertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None) -> torch.Tensor:
        seq, positions = input_ids.shape[1], self.position_embeddings.num_embeddings
        if seq > positions:
            raise ConfigError(f"{seq} tokens, more than the model's {positions} positions")
        x = self.word_embeddings(input_ids) + self.position_embeddings.weight[:seq]
        if token_type_ids is None:
            x = x + self.token_type_embeddings.weight[0]
        else:
            x = x + self.token_type_embeddings(token_type_ids)
        return self.dropout(x)


class SelfAttention(nn.Module):
    """Q, K, V (three parameters, one matmul) and scaled dot-product attention."""

    def __init__(self, config: MegatronBertConfig) -> None:
        super().__init__()
        if config.hidden_size % config.num_attention_heads:
            raise ConfigError(
                f"hidden size {config.hidden_size} is not a multiple of {config.num_attention_heads} heads"
            )
        self.heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout_p = config.attention_probs_dropout_prob
        self.backend = attention_backend(config)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        batch, seq, hidden = x.shape
        weight = torch.cat([self.query.weight, self.key.weight, self.value.weight])
        bias = torch.cat([self.query.bias, self.key.bias, self.value.bias])
        qkv = F.linear(x, weight, bias).view(batch, seq, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [batch, heads, seq, head_dim]
        dropout = self.dropout_p if self.training else 0.0
        if self.backend == "sdpa":
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, dropout_p=dropout)
        else:
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.head_dim)
            if key_mask is not None:
                scores = scores.masked_fill(~key_mask, torch.finfo(scores.dtype).min)
            context = F.dropout(scores.softmax(-1), dropout, self.training) @ v
        return context.transpose(1, 2).reshape(batch, seq, hidden)


class SelfOutput(nn.Module):
    def __init__(self, config: MegatronBertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)


class Attention(nn.Module):
    def __init__(self, config: MegatronBertConfig) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.self = SelfAttention(config)
        self.output = SelfOutput(config)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        return x + self.output.dropout(self.output.dense(self.self(self.ln(x), key_mask)))


class Dense(nn.Module):
    """A Linear under transformers' module name (`intermediate.dense`, `output.dense`)."""

    def __init__(self, n_in: int, n_out: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dense = nn.Linear(n_in, n_out)
        self.dropout = nn.Dropout(dropout)


class Layer(nn.Module):
    def __init__(self, config: MegatronBertConfig) -> None:
        super().__init__()
        self.attention = Attention(config)
        self.ln = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.intermediate = Dense(config.hidden_size, config.intermediate_size)
        self.output = Dense(config.intermediate_size, config.hidden_size, config.hidden_dropout_prob)
        self.approximate = _gelu_approximation(config)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        x = self.attention(x, key_mask)
        h = F.gelu(self.intermediate.dense(self.ln(x)), approximate=self.approximate)
        return x + self.output.dropout(self.output.dense(h))


class Encoder(nn.Module):
    def __init__(self, config: MegatronBertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(Layer(config) for _ in range(config.num_hidden_layers))
        self.ln = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        for layer in self.layer:
            x = layer(x, key_mask)
        return self.ln(x)


class Pooler(nn.Module):
    def __init__(self, config: MegatronBertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))


class MegatronBertEncoderModel(MegatronBertPreTrainedModel):
    """The encoder: embeddings, layers, final LayerNorm, an optional pooler (`bert.` in the heads)."""

    def __init__(self, config: MegatronBertConfig, add_pooling_layer: bool = True) -> None:
        super().__init__(config)
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)
        self.pooler = Pooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **_: object,
    ) -> BaseModelOutputWithPooling:
        key_mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            key_mask = attention_mask.bool()[:, None, None, :]  # [batch, 1, 1, keys]: True = attend
        hidden = self.encoder(self.embeddings(input_ids, token_type_ids), key_mask)
        pooled = self.pooler(hidden) if self.pooler is not None else None
        return BaseModelOutputWithPooling(last_hidden_state=hidden, pooler_output=pooled)


class _TaskModel(MegatronBertPreTrainedModel):
    """What the three heads share: saving under transformers' own class name."""

    hf_name = ""

    def save_pretrained(self, save_directory: str | os.PathLike, *args: object, **kwargs: object) -> None:
        super().save_pretrained(save_directory, *args, **kwargs)
        # transformers writes the class's own name; transformers' name lets its Auto classes load it
        path = Path(save_directory) / "config.json"
        saved = json.loads(path.read_text(encoding="utf-8"))
        saved["architectures"] = [self.hf_name]
        path.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        self.config.architectures = [self.hf_name]

    def get_input_embeddings(self) -> nn.Embedding:
        return self.bert.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.bert.embeddings.word_embeddings = value


class TokenClassifier(_TaskModel):
    """NER: a label per token (`labels` -100 where no label applies)."""

    hf_name = "MegatronBertForTokenClassification"

    def __init__(self, config: MegatronBertConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = MegatronBertEncoderModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **_: object,
    ) -> TokenClassifierOutput:
        hidden = self.bert(input_ids, attention_mask, token_type_ids).last_hidden_state
        logits = self.classifier(self.dropout(hidden))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, self.num_labels).float(), labels.view(-1), ignore_index=-100)
        return TokenClassifierOutput(loss=loss, logits=logits)


class SequenceClassifier(_TaskModel):
    """RE: one label per input, from the pooled first token."""

    hf_name = "MegatronBertForSequenceClassification"

    def __init__(self, config: MegatronBertConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = MegatronBertEncoderModel(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **_: object,
    ) -> SequenceClassifierOutput:
        pooled = self.bert(input_ids, attention_mask, token_type_ids).pooler_output
        logits = self.classifier(self.dropout(pooled))
        loss = None if labels is None else F.cross_entropy(logits.float(), labels.view(-1))
        return SequenceClassifierOutput(loss=loss, logits=logits)


class SpanExtractor(_TaskModel):
    """QA: start and end logits per token; the loss averages both, positions outside the input ignored."""

    hf_name = "MegatronBertForQuestionAnswering"

    def __init__(self, config: MegatronBertConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = MegatronBertEncoderModel(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
        **_: object,
    ) -> QuestionAnsweringModelOutput:
        hidden = self.bert(input_ids, attention_mask, token_type_ids).last_hidden_state
        start_logits, end_logits = self.qa_outputs(hidden).split(1, dim=-1)
        start_logits, end_logits = start_logits.squeeze(-1).contiguous(), end_logits.squeeze(-1).contiguous()
        loss = None
        if start_positions is not None and end_positions is not None:
            ignored = start_logits.shape[1]  # transformers' rule: clamp, then ignore what lies outside
            start = start_positions.view(-1).clamp(0, ignored)
            end = end_positions.view(-1).clamp(0, ignored)
            loss = (
                F.cross_entropy(start_logits.float(), start, ignore_index=ignored)
                + F.cross_entropy(end_logits.float(), end, ignore_index=ignored)
            ) / 2
        return QuestionAnsweringModelOutput(loss=loss, start_logits=start_logits, end_logits=end_logits)


class LMTransform(nn.Module):
    """dense, GeLU, LayerNorm before the tied decoder (transformers' `cls.predictions.transform`)."""

    def __init__(self, config: MegatronBertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.approximate = _gelu_approximation(config)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(F.gelu(self.dense(hidden), approximate=self.approximate))


class LMPredictions(nn.Module):
    def __init__(self, config: MegatronBertConfig) -> None:
        super().__init__()
        self.transform = LMTransform(config)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))


class LMHead(nn.Module):
    def __init__(self, config: MegatronBertConfig) -> None:
        super().__init__()
        self.predictions = LMPredictions(config)


class MaskedLM(_TaskModel):
    """Masked-language-model pretraining: the word-embedding matrix doubles as the output layer.

    With `labels` (-100 where nothing was masked) the vocabulary logits are computed for the masked
    positions only (about 15% of the tokens), which is most of the saving of pretraining on a CPU;
    `logits` then holds those rows, in the order of `labels != -100`. Without labels: every position.
    The decoder has no parameter of its own (`cls.predictions.decoder` in transformers is tied to the
    word embeddings and `cls.predictions.bias`), so the saved file loads in `MegatronBertForMaskedLM`.
    """

    hf_name = "MegatronBertForMaskedLM"

    def __init__(self, config: MegatronBertConfig) -> None:
        super().__init__(config)
        self.bert = MegatronBertEncoderModel(config, add_pooling_layer=False)
        self.cls = LMHead(config)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, LMPredictions):
            module.bias.data.zero_()
            return
        super()._init_weights(module)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **_: object,
    ) -> MaskedLMOutput:
        hidden = self.bert(input_ids, attention_mask, token_type_ids).last_hidden_state
        predictions = self.cls.predictions
        if labels is not None:
            picked = labels != -100
            hidden, targets = hidden[picked], labels[picked]
        logits = F.linear(predictions.transform(hidden), self.bert.embeddings.word_embeddings.weight, predictions.bias)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float(), targets)
        return MaskedLMOutput(loss=loss, logits=logits)


TASK_CLASSES = {"ner": TokenClassifier, "re": SequenceClassifier, "qa": SpanExtractor, "mlm": MaskedLM}

__all__ = [
    "ATTENTION_BACKENDS",
    "MaskedLM",
    "MegatronBertEncoderModel",
    "SequenceClassifier",
    "SpanExtractor",
    "TASK_CLASSES",
    "TokenClassifier",
    "attention_backend",
]
