"""``nn.MultiheadAttention`` with feedback: its projections learn with the layer's rule.

For an input x (L, N, E) attention computes

    [q k v] = x W_in^T + b_in                    W_in = ``in_proj_weight`` (3E, E): one feedback matrix B_in
    A_h     = softmax(q_h k_h^T / sqrt(d) + M)   per head h (d = E / H), M the additive masks
    o       = concat_h(A_h v_h)                  (L, N, E)
    y       = o W_out^T + b_out                  W_out = ``out_proj.weight``: a converted ``FeedbackLinear``

The backward of the two projections sends the error through the rule's B in place of W:
grad_x = [delta_q delta_k delta_v] s B_in and grad_o = delta_y s B_out (grad_W as backprop). What flows through the
attention product itself is exact backprop, and it transports no weight: A_h v_h and q_h k_h^T are products of two
activities, so delta_v = A_h^T delta_o, delta_A = delta_o v_h^T, delta_q = (dsoftmax delta_A) k_h / sqrt(d) and
delta_k = (dsoftmax delta_A)^T q_h / sqrt(d) read only the forward's own activities (no synaptic matrix sits in them
for a feedback pathway to replace). With rule ``bp`` the module computes exactly what ``nn.MultiheadAttention`` does.

Supported: self- and cross-attention with one packed ``in_proj_weight`` (``kdim == vdim == embed_dim``), batched or
not, ``batch_first``, ``key_padding_mask``, ``attn_mask``, ``is_causal``, ``need_weights``, dropout. A module with
``bias_k`` / ``bias_v``, ``add_zero_attn`` or separate q/k/v weights is not converted (the conversion refuses it
with the usual message unless it is excluded).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .functional import feedback_linear
from .layers import FEEDBACK_CLASSES, FeedbackLayer


class FeedbackMultiheadAttention(FeedbackLayer, nn.MultiheadAttention):
    """``nn.MultiheadAttention`` whose in-projection (``weight`` = ``in_proj_weight``, shape (3E, E)) learns with the
    layer's rule and whose ``out_proj`` is called as a module (so it is converted like any linear layer)."""

    calls_out_proj = True  # see biocircuits.core.layers.attention_owned

    @property
    def weight(self) -> Tensor:
        """The in-projection ``in_proj_weight`` (3E, E): the matrix the rule's B stands in for."""
        return self.in_proj_weight

    @classmethod
    def can_convert(cls, module: nn.Module) -> bool:
        """Only the packed form (one ``in_proj_weight``) without key/value biases or zero attention."""
        return (
            getattr(module, "_qkv_same_embed_dim", False)
            and module.bias_k is None
            and module.bias_v is None
            and not module.add_zero_attn
        )

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        if not self._needs_feedback(query, self.in_proj_weight) and not key.requires_grad and not value.requires_grad:
            return nn.MultiheadAttention.forward(
                self, query, key, value, key_padding_mask, need_weights, attn_mask, average_attn_weights, is_causal
            )
        batched = query.dim() == 3
        if self.batch_first and batched:  # to (L, N, E), keeping which inputs are one tensor
            same_kv = key is value
            same_qk = query is key
            query = query.transpose(1, 0)
            key = query if same_qk else key.transpose(1, 0)
            value = key if same_kv else value.transpose(1, 0)
        if not batched:
            same = (query is key, key is value)
            query = query.unsqueeze(1)
            key = query if same[0] else key.unsqueeze(1)
            value = key if same[1] else value.unsqueeze(1)
            key_padding_mask = None if key_padding_mask is None else key_padding_mask.unsqueeze(0)
        q, k, v = self._project(query, key, value)
        out, weights = self._attend(q, k, v, key_padding_mask, need_weights, attn_mask, is_causal)
        tgt_len, bsz = query.shape[:2]
        out = self.out_proj(out).view(tgt_len, bsz, -1)
        if weights is not None:
            weights = weights.view(bsz, self.num_heads, tgt_len, -1)
            weights = weights.mean(dim=1) if average_attn_weights else weights
            weights = weights if batched else weights.squeeze(0)
        if not batched:
            out = out.squeeze(1)
        elif self.batch_first:
            out = out.transpose(1, 0)
        return out, weights

    def _in_proj(self, x: Tensor) -> Tensor:
        """x W_in^T + b_in, (L, N, 3E), whose backward uses the rule's B_in (appended to ``probe_outputs`` while a
        probe collects them, `biocircuits/probes/attention.py`)."""
        out = self._with_feedback(feedback_linear, x, self.in_proj_weight, self.in_proj_bias)
        captured = self.__dict__.get("probe_outputs")
        if captured is not None:
            captured.append(out)
        return out

    def _project(self, query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """q, k, v (each (L or S, N, E)) as torch's packed in-projection computes them. For cross-attention each
        input is projected through all of W_in and the rows it needs are kept (B_in is one (3E, E) matrix)."""
        E = self.embed_dim
        if query is key and key is value:
            qkv = self._in_proj(query).unflatten(-1, (3, E)).unsqueeze(0).transpose(0, -2).squeeze(-2).contiguous()
            return qkv[0], qkv[1], qkv[2]
        q = self._in_proj(query)[..., :E].contiguous()
        if key is value:
            kv = self._in_proj(key)[..., E:]
            kv = kv.unflatten(-1, (2, E)).unsqueeze(0).transpose(0, -2).squeeze(-2).contiguous()
            return q, kv[0], kv[1]
        return q, self._in_proj(key)[..., E : 2 * E].contiguous(), self._in_proj(value)[..., 2 * E :].contiguous()

    def _masks(self, key_padding_mask, attn_mask, need_weights, is_causal, q: Tensor, bsz: int, src_len: int):
        """The additive mask M ((1 or N*H, L, S) or None) and whether sdpa may take ``is_causal``, as torch's
        ``multi_head_attention_forward`` builds them."""
        key_padding_mask = F._canonical_mask(
            mask=key_padding_mask,
            mask_name="key_padding_mask",
            other_type=F._none_or_dtype(attn_mask),
            other_name="attn_mask",
            target_type=q.dtype,
        )
        if is_causal and attn_mask is None:
            raise RuntimeError("Need attn_mask if specifying the is_causal hint.")
        if is_causal and key_padding_mask is None and not need_weights:
            attn_mask = None
        else:
            attn_mask = F._canonical_mask(
                mask=attn_mask,
                mask_name="attn_mask",
                other_type=None,
                other_name="",
                target_type=q.dtype,
                check_other=False,
            )
            is_causal = is_causal and key_padding_mask is None
        if attn_mask is not None and attn_mask.dim() == 2:
            attn_mask = attn_mask.unsqueeze(0)
        if key_padding_mask is not None:
            pad = key_padding_mask.view(bsz, 1, 1, src_len).expand(-1, self.num_heads, -1, -1)
            pad = pad.reshape(bsz * self.num_heads, 1, src_len)
            attn_mask = pad if attn_mask is None else attn_mask + pad
        return attn_mask, is_causal

    def _attend(
        self, q: Tensor, k: Tensor, v: Tensor, key_padding_mask, need_weights: bool, attn_mask, is_causal: bool
    ) -> tuple[Tensor, Tensor | None]:
        """concat_h softmax(q_h k_h^T / sqrt(d) + M) v_h as (L*N, E) rows, and the attention weights
        (N*H, L, S) when ``need_weights``: activity x activity, plain autograd."""
        tgt_len, bsz, E = q.shape
        src_len, H = k.shape[0], self.num_heads
        d = E // H
        attn_mask, is_causal = self._masks(key_padding_mask, attn_mask, need_weights, is_causal, q, bsz, src_len)
        q = q.view(tgt_len, bsz * H, d).transpose(0, 1)
        k = k.view(src_len, bsz * H, d).transpose(0, 1)
        v = v.view(src_len, bsz * H, d).transpose(0, 1)
        dropout_p = self.dropout if self.training else 0.0
        if need_weights:
            q_scaled = q * math.sqrt(1.0 / float(d))
            logits = (
                torch.baddbmm(attn_mask, q_scaled, k.transpose(-2, -1))
                if attn_mask is not None
                else torch.bmm(q_scaled, k.transpose(-2, -1))
            )
            weights = F.softmax(logits, dim=-1)
            if dropout_p > 0.0:
                weights = F.dropout(weights, p=dropout_p)
            out = torch.bmm(weights, v).transpose(0, 1).reshape(tgt_len * bsz, E)
            return out, weights
        if attn_mask is not None:
            attn_mask = attn_mask.view(bsz, H, -1, src_len) if attn_mask.size(0) != 1 else attn_mask.unsqueeze(0)
        q, k, v = (t.view(bsz, H, -1, d) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal)
        return out.permute(2, 0, 1, 3).contiguous().view(bsz * tgt_len, E), None


FEEDBACK_CLASSES[nn.MultiheadAttention] = FeedbackMultiheadAttention
