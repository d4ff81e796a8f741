"""The outer (meta) step on the modality weights: a real bi-level gradient through one unrolled inner update.

Inner problem: model parameters theta minimise the training loss L_in(theta, alpha) (Adam).
Outer problem: modality weights alpha minimise the validation task loss L_out(theta*(alpha), alpha).
Like DARTS, theta*(alpha) is approximated by one differentiable look-ahead step of the inner optimiser,

    theta'(alpha) = theta - lr * AdamDirection(grad_theta L_in(theta, alpha); Adam's current moments),

and dL_out(theta'(alpha), alpha)/dalpha is taken by autograd through that step (second order: it
includes d theta'/d alpha, a Hessian-vector term). The look-ahead mirrors the real inner optimiser (Adam
with its running moments) rather than plain SGD, so the unrolled step has the size of a real update.
`first_order=True` drops the d theta'/d alpha term (theta' detached); `compare_first_order` measures the
difference on the same batches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

# loss_fn(params_and_buffers, batch) -> scalar; it must run the model through
# torch.func.functional_call with the given tensors so that gradients reach them.
LossFn = Callable[[dict[str, torch.Tensor], object], torch.Tensor]


@dataclass
class OuterStepResult:
    """What one outer step saw: the losses and the weight gradient it applied."""

    inner_loss: float
    outer_loss: float
    grad: torch.Tensor  # d L_out / d alpha, as applied


def adam_lookahead(
    params: Mapping[str, torch.Tensor],
    grads: Mapping[str, torch.Tensor],
    optimizer: torch.optim.Adam,
    named_live: Mapping[str, nn.Parameter],
) -> dict[str, torch.Tensor]:
    """theta' = one Adam step from `params` with `grads`, differentiable in the grads.

    Uses the optimizer's current first/second moments and step count of each live parameter (zeros before
    its first step), its lr, betas and eps. Weight decay and amsgrad are not supported (not used here).
    """
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    new: dict[str, torch.Tensor] = {}
    for name, theta in params.items():
        grad = grads.get(name)
        if grad is None:  # unused by this loss: an Adam step would not move it either
            new[name] = theta
            continue
        live = named_live[name]
        group = group_of[id(live)]
        if group.get("weight_decay", 0) or group.get("amsgrad", False):
            raise ValueError("adam_lookahead supports plain Adam only (no weight decay, no amsgrad)")
        beta1, beta2 = group["betas"]
        state = optimizer.state.get(live, {})
        step = float(state["step"]) + 1.0 if "step" in state else 1.0
        m = state.get("exp_avg", torch.zeros_like(theta))
        v = state.get("exp_avg_sq", torch.zeros_like(theta))
        m_new = beta1 * m + (1 - beta1) * grad
        v_new = beta2 * v + (1 - beta2) * grad * grad
        m_hat = m_new / (1 - beta1**step)
        # clamp keeps sqrt's derivative finite where both the moment and the gradient are exactly zero.
        v_hat = (v_new / (1 - beta2**step)).clamp_min(1e-30)
        new[name] = theta - group["lr"] * m_hat / (v_hat.sqrt() + group["eps"])
    return new


def _outer_gradient(
    model: nn.Module,
    weight_name: str,
    inner_loss_fn: LossFn,
    outer_loss_fn: LossFn,
    train_batch: object,
    val_batch: object,
    inner_optimizer: torch.optim.Adam,
    first_order: bool,
) -> OuterStepResult:
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if weight_name not in named:
        raise KeyError(f"{weight_name!r} is not a trainable parameter of the model")
    alpha = named[weight_name]
    theta = {n: p for n, p in named.items() if n != weight_name}
    # Buffers (BatchNorm statistics) are cloned so that the look-ahead passes leave the real model untouched.
    buffers = {n: b.clone() for n, b in model.named_buffers()}

    was_training = model.training
    model.train()
    inner = inner_loss_fn({**theta, weight_name: alpha, **buffers}, train_batch)
    grads = torch.autograd.grad(inner, list(theta.values()), create_graph=not first_order, allow_unused=True)
    grad_map = {n: g for n, g in zip(theta, grads, strict=True) if g is not None}
    stepped = adam_lookahead(theta, grad_map, inner_optimizer, theta)
    if first_order:
        stepped = {n: t.detach() for n, t in stepped.items()}
    # The validation pass runs in eval mode (running BN statistics, no dropout), as a test would.
    model.eval()
    outer = outer_loss_fn({**stepped, weight_name: alpha, **buffers}, val_batch)
    (grad_alpha,) = torch.autograd.grad(outer, [alpha])
    model.train(was_training)
    return OuterStepResult(
        inner_loss=float(inner.detach()), outer_loss=float(outer.detach()), grad=grad_alpha
    )


def outer_step(
    model: nn.Module,
    weight_name: str,
    inner_loss_fn: LossFn,
    outer_loss_fn: LossFn,
    train_batch: object,
    val_batch: object,
    inner_optimizer: torch.optim.Adam,
    weight_optimizer: torch.optim.Optimizer,
    *,
    first_order: bool = False,
) -> OuterStepResult:
    """One optimiser step on the parameter `weight_name` (the modality weights) with the bi-level gradient.

    Model parameters other than the weights are not changed here; the caller's inner loop updates them.
    """
    result = _outer_gradient(
        model, weight_name, inner_loss_fn, outer_loss_fn, train_batch, val_batch, inner_optimizer, first_order
    )
    alpha = dict(model.named_parameters())[weight_name]
    weight_optimizer.zero_grad(set_to_none=True)
    alpha.grad = result.grad.detach().clone()
    weight_optimizer.step()
    alpha.grad = None
    return result


def compare_first_order(
    model: nn.Module,
    weight_name: str,
    inner_loss_fn: LossFn,
    outer_loss_fn: LossFn,
    train_batch: object,
    val_batch: object,
    inner_optimizer: torch.optim.Adam,
    rng_state: torch.Tensor | None = None,
) -> dict[str, float]:
    """Exact (second-order) vs first-order weight gradient on the same batches and the same random draws.

    Returns the cosine similarity, the relative difference |g_exact - g_fo| / |g_exact| and both norms.
    """
    rng_state = torch.get_rng_state() if rng_state is None else rng_state
    grads = {}
    for first_order in (False, True):
        torch.set_rng_state(rng_state)  # same diffusion timesteps and noise in both passes
        grads[first_order] = _outer_gradient(
            model,
            weight_name,
            inner_loss_fn,
            outer_loss_fn,
            train_batch,
            val_batch,
            inner_optimizer,
            first_order,
        ).grad.flatten()
    exact, approx = grads[False], grads[True]
    norm = float(exact.norm())
    return {
        "cosine": float(torch.nn.functional.cosine_similarity(exact, approx, dim=0)),
        "relative_difference": float((exact - approx).norm()) / max(norm, 1e-30),
        "exact_norm": norm,
        "first_order_norm": float(approx.norm()),
    }
