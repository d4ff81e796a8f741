"""Tests of midas_ros.model: subsets, absent-modality isolation, DDIM, weights, checkpoints, predictor."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest
import torch

from midas_ros import MODALITIES
from midas_ros.model import (
    INPUT_SHAPES,
    MIDAS,
    CheckpointError,
    ConcatBaseline,
    DecisionAverageBaseline,
    MidasConfig,
    PosePredictor,
    load_checkpoint,
    renormalised_weights,
    save_checkpoint,
    tiny_config,
)
from midas_ros.model.diffkd import DDIMScheduler, NoiseAdapter, NoisePredictor, PointwiseConv, TokenConv3

SUBSETS = [s for r in (1, 2, 3) for s in itertools.combinations(range(3), r)]
MODEL_FACTORIES = {
    "midas": lambda: MIDAS(tiny_config()),
    "wo_diff": lambda: MIDAS(tiny_config(use_diffkd=False)),
    "wo_meta": lambda: MIDAS(tiny_config(learn_weights=False)),
    "base1": lambda: ConcatBaseline(tiny_config()),
    "base2": lambda: DecisionAverageBaseline(tiny_config()),
}


def make_inputs(batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "depth": torch.rand(batch, *INPUT_SHAPES["depth"], generator=gen) * 4.0,
        "lidar": torch.randn(batch, *INPUT_SHAPES["lidar"], generator=gen),
        "csi": torch.randn(batch, *INPUT_SHAPES["csi"], generator=gen),
    }


def subset_mask(batch: int, subset: tuple[int, ...]) -> torch.Tensor:
    present = torch.zeros(batch, 3, dtype=torch.bool)
    present[:, list(subset)] = True
    return present


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name", sorted(MODEL_FACTORIES))
def test_every_subset_runs_in_train_and_eval(name: str) -> None:
    model = MODEL_FACTORIES[name]()
    inputs = make_inputs(2)
    for subset in SUBSETS:
        present = subset_mask(2, subset)
        model.train()
        out = model(inputs, present)
        assert out.pose.shape == (2, 17, 3)
        assert torch.isfinite(out.pose).all()
        loss = out.pose.square().mean() + out.aux_loss
        loss.backward()
        model.eval()
        with torch.no_grad():
            assert model(inputs, present).pose.shape == (2, 17, 3)


def test_mixed_batch_and_losses_present() -> None:
    model = MIDAS(tiny_config()).train()
    present = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 1, 1], [0, 0, 1]], dtype=torch.bool)
    out = model(make_inputs(4), present)
    assert out.diffusion_loss.item() > 0 and out.kd_loss.item() > 0 and out.ae_loss.item() > 0
    assert out.gamma is not None and out.gamma.shape == (int(present.sum()),)
    assert torch.allclose(out.weights.sum(dim=1), torch.ones(4))
    assert (out.weights[~present] == 0).all()


@pytest.mark.parametrize("name", sorted(MODEL_FACTORIES))
def test_absent_modality_has_no_effect_and_no_gradient(name: str) -> None:
    model = MODEL_FACTORIES[name]().train()
    present = torch.tensor([[1, 0, 1], [1, 1, 0], [0, 1, 1]], dtype=torch.bool)
    inputs = {m: x.requires_grad_(True) for m, x in make_inputs(3).items()}
    torch.manual_seed(1)
    out = model(inputs, present)
    (out.pose.square().mean() + out.aux_loss).backward()
    for j, m in enumerate(MODALITIES):
        grad = inputs[m].grad
        assert grad is not None
        assert (grad[~present[:, j]] == 0).all(), f"absent {m} rows received gradient"

    # Changing what sits in the absent slots changes nothing, in training mode (BatchNorm batch
    # statistics, same random draws) and in eval mode.
    changed = {m: x.detach().clone() for m, x in inputs.items()}
    for j, m in enumerate(MODALITIES):
        changed[m][~present[:, j]] = torch.randn_like(changed[m][~present[:, j]]) * 100.0
    original = {m: x.detach() for m, x in inputs.items()}
    for train in (True, False):
        model.train(train)
        torch.manual_seed(2)
        a = model(original, present)
        torch.manual_seed(2)
        b = model(changed, present)
        assert torch.equal(a.pose, b.pose)
        assert torch.equal(a.kd_loss, b.kd_loss) and torch.equal(a.diffusion_loss, b.diffusion_loss)


def test_modality_absent_from_whole_batch_leaves_its_encoder_without_gradient() -> None:
    model = MIDAS(tiny_config()).train()
    out = model({"depth": make_inputs(2)["depth"]}, subset_mask(2, (0,)))
    (out.pose.square().mean() + out.aux_loss).backward()
    assert all(p.grad is None for p in model.encoders["lidar"].parameters())
    assert all(p.grad is None for p in model.projectors["csi"].parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoders["depth"].parameters())


def test_ddim_with_true_noise_recovers_clean_latent() -> None:
    scheduler = DDIMScheduler()
    x0 = torch.randn(4, 16, 8)
    eps = torch.randn_like(x0)
    timesteps = (400, 300, 200, 100, 0)
    x = scheduler.add_noise(x0, eps, torch.full((4,), timesteps[0]))
    assert not torch.allclose(x, x0, atol=1e-2)
    for i, t in enumerate(timesteps):
        prev_t = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        x = scheduler.step(eps, t, prev_t, x)
        if prev_t >= 0:  # each intermediate state is exactly the forward process at prev_t
            expected = scheduler.add_noise(x0, eps, torch.full((4,), prev_t))
            assert torch.allclose(x, expected, atol=1e-4)
    assert torch.allclose(x, x0, atol=1e-4)


def test_scheduler_schedule_matches_diffkd() -> None:
    scheduler = DDIMScheduler()
    # linear betas 1e-4 .. 0.02 over 1000 steps: sqrt(alpha_bar) ~0.44 at t = 400 and ~0.04 at t = 800
    assert abs(scheduler.alpha_bar(400) ** 0.5 - 0.44) < 0.01
    assert abs(scheduler.alpha_bar(800) ** 0.5 - 0.04) < 0.01
    assert scheduler.alpha_bar(-1) == 1.0


def test_kd_gradient_flows_through_refinement() -> None:
    model = MIDAS(tiny_config()).train()
    out = model(make_inputs(2), subset_mask(2, (0, 1)))
    out.kd_loss.backward()
    grads = [p.grad for p in model.refiner.predictor.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoders["depth"].parameters())


def test_fusion_block_parameter_count_within_budget() -> None:
    model = MIDAS(MidasConfig())
    count = model.fusion_parameter_count()
    print(f"MIDAS fusion block: {count / 1e6:.2f}M parameters")
    assert 0 < count <= 4_950_000
    encoder_count = sum(p.numel() for p in model.encoder_parameters())
    assert count + encoder_count == sum(p.numel() for p in model.parameters())


def test_weights_renormalise_over_present() -> None:
    logits = torch.tensor([0.3, -1.0, 2.0], requires_grad=True)
    present = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 0], [0, 1, 1]], dtype=torch.bool)
    w = renormalised_weights(logits, present)
    assert torch.allclose(w.sum(dim=1), torch.ones(4))
    assert (w[~present] == 0).all()
    full = torch.softmax(logits.detach(), dim=0)
    assert torch.allclose(w[1], torch.stack([full[0], torch.tensor(0.0), full[2]]) / (full[0] + full[2]))
    assert torch.allclose(w[2], torch.tensor([0.0, 1.0, 0.0]))
    w[3, 1].backward()  # only depends on the present logits
    assert logits.grad[0] == 0 and logits.grad[1] != 0


def test_parameter_groups_are_disjoint_and_complete() -> None:
    model = MIDAS(tiny_config())
    weights, rest = model.weight_parameters(), model.model_parameters()
    assert len(weights) == 1 and weights[0] is model.modality_logits
    assert len(weights) + len(rest) == len(list(model.parameters()))
    frozen = MIDAS(tiny_config(learn_weights=False))
    assert frozen.weight_parameters() == [] and not frozen.modality_logits.requires_grad


def test_functional_call_with_weight_override() -> None:
    model = MIDAS(tiny_config()).eval()
    inputs, present = make_inputs(2), subset_mask(2, (0, 2))
    logits = torch.tensor([2.0, 0.0, -2.0])
    out = torch.func.functional_call(model, {"modality_logits": logits}, (inputs, present))
    assert torch.allclose(out.weights, renormalised_weights(logits, present))


def test_encode_then_forward_from_tokens_equals_forward() -> None:
    model = MIDAS(tiny_config()).eval()
    inputs, present = make_inputs(3), torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 1]], dtype=torch.bool)
    with torch.no_grad():
        anchor = model.anchors(inputs, present)
        tokens = model.encode(inputs, present, anchor)
        assert set(tokens) == set(MODALITIES)
        assert (tokens["depth"][1] == 0).all()
        pose = model.forward_from_tokens(tokens, present, anchor).pose
        assert torch.equal(pose, model(inputs, present).pose)


def test_eval_output_is_deterministic_and_batch_independent() -> None:
    model = MIDAS(tiny_config()).eval()
    inputs, present = make_inputs(3), subset_mask(3, (0, 1, 2))
    with torch.no_grad():
        batched = model(inputs, present).pose
        single = model({m: x[1:2] for m, x in inputs.items()}, present[1:2]).pose
    assert torch.allclose(batched[1:2], single, atol=1e-5)


def test_bad_batches_are_rejected() -> None:
    model = MIDAS(tiny_config())
    inputs = make_inputs(2)
    with pytest.raises(ValueError, match="at least one"):
        model(inputs, torch.tensor([[1, 0, 0], [0, 0, 0]], dtype=torch.bool))
    with pytest.raises(ValueError, match="shape"):
        model({**inputs, "csi": torch.zeros(2, 6, 114)}, subset_mask(2, (2,)))
    with pytest.raises(ValueError, match="missing"):
        model({"depth": inputs["depth"]}, subset_mask(2, (1,)))


@pytest.mark.parametrize("kind", ["midas", "wo_diff", "base1", "base2"])
def test_checkpoint_round_trip_gives_identical_outputs(kind: str, tmp_path) -> None:
    model = MODEL_FACTORIES[kind]()
    model.set_pose_mean(np.arange(51, dtype=np.float32).reshape(17, 3))
    model.train()
    model(make_inputs(4), subset_mask(4, (0, 1, 2)))  # move BatchNorm running stats off their defaults
    model.eval()
    path = save_checkpoint(model, tmp_path / "model", {"epochs": 3})
    loaded = load_checkpoint(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    inputs = make_inputs(2, seed=5)
    for subset in SUBSETS:
        with torch.no_grad():
            assert torch.equal(
                model(inputs, subset_mask(2, subset)).pose, loaded(inputs, subset_mask(2, subset)).pose
            )


def test_pickle_and_torch_save_files_are_refused(tmp_path) -> None:
    model = MIDAS(tiny_config())
    save_checkpoint(model, tmp_path / "good")
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(pickle.dumps({"x": 1}))
    pt = tmp_path / "model.pt"
    torch.save(model.state_dict(), pt)
    fake = tmp_path / "evil.safetensors"  # pickle content under a safetensors name, next to a valid JSON
    fake.write_bytes(pickle.dumps({"x": 1}))
    (tmp_path / "evil.json").write_text((tmp_path / "good.json").read_text())
    for path in (pkl, pt, fake):
        with pytest.raises(CheckpointError, match="not a safetensors file"):
            load_checkpoint(path)
        with pytest.raises(CheckpointError):
            PosePredictor.from_checkpoint(path, device="cpu")


def test_predictor_batch_one(tmp_path) -> None:
    model = MIDAS(tiny_config())
    path = save_checkpoint(model, tmp_path / "midas", {"note": "untrained"})
    predictor = PosePredictor.from_checkpoint(path, device="auto")
    assert predictor.info["metadata"] == {"note": "untrained"}
    sample = {m: x[0].numpy() for m, x in make_inputs(1).items()}
    pose = predictor.predict(sample).joints
    assert pose.shape == (17, 3) and pose.dtype == np.float32
    assert np.array_equal(pose, predictor.predict(sample).joints)  # deterministic
    partial = predictor.predict({"lidar": sample["lidar"], "csi": sample["csi"]})
    assert not np.allclose(partial.joints, pose)
    # The weights come from the same forward pass: the present modalities', renormalised.
    weights = partial.weights
    assert weights["depth"] == 0.0 and abs(sum(weights.values()) - 1.0) < 1e-6
    present = torch.tensor([[False, True, True]])
    expected = model.modality_weights(present)[0].tolist()
    assert list(weights.values()) == pytest.approx(expected)
    with pytest.raises(ValueError, match="shape"):
        predictor.predict({"depth": np.zeros((96, 128), np.float32)})
    with pytest.raises(ValueError, match="NaN"):
        predictor.predict({"csi": np.full((6, 114, 10), np.nan, np.float32)})
    with pytest.raises(ValueError):
        predictor.predict({})


@pytest.mark.parametrize("kind", ["midas", "base2"])
def test_predict_batch_gives_each_frame_what_predict_gives_it(kind: str) -> None:
    """Frames of mixed modality subsets, batched by subset in chunks of 2: each frame's joints and weights
    are the ones a batch-1 `predict` gives it, in the order asked."""
    torch.manual_seed(0)
    predictor = PosePredictor(MODEL_FACTORIES[kind](), device="cpu")
    inputs = make_inputs(7, seed=3)
    subsets = [("depth", "lidar", "csi"), ("lidar",), ("depth", "csi"), ("lidar",), ("depth", "lidar", "csi")]
    subsets += [("csi",), ("lidar",)]
    samples = [{m: inputs[m][k].numpy() for m in subset} for k, subset in enumerate(subsets)]
    batched = predictor.predict_batch(samples, max_batch=2)
    assert len(batched) == len(samples)
    for sample, prediction in zip(samples, batched, strict=True):
        alone = predictor.predict(sample)
        np.testing.assert_allclose(prediction.joints, alone.joints, atol=1e-5)
        assert prediction.weights == pytest.approx(alone.weights, abs=1e-6)
        assert {m for m, w in prediction.weights.items() if w > 0} <= set(sample)
    # Frames differ, so a result put in another frame's place would show.
    assert not np.allclose(batched[0].joints, batched[4].joints)
    with pytest.raises(ValueError, match="shape"):
        predictor.predict_batch([samples[0], {"depth": np.zeros((96, 128), np.float32)}])


def test_matmul_convs_equal_torch_conv1d() -> None:
    x = torch.randn(3, 16, 10)
    conv1 = torch.nn.Conv1d(16, 8, 1)
    pointwise = PointwiseConv(16, 8)
    pointwise.weight.data.copy_(conv1.weight[:, :, 0])
    pointwise.bias.data.copy_(conv1.bias)
    assert torch.allclose(pointwise(x), conv1(x), atol=1e-5)
    conv3 = torch.nn.Conv1d(16, 8, 3, padding=1, bias=False)
    tokconv = TokenConv3(16, 8)
    tokconv.weight.data.copy_(conv3.weight.permute(0, 2, 1).reshape(8, 48))
    assert torch.allclose(tokconv(x), conv3(x), atol=1e-5)


def test_denoiser_acts_the_same_in_training_and_inference() -> None:
    """The 5 refinement steps must see the same normalisation in training and at inference: BatchNorm's
    running statistics (an average over all timesteps) made the eval-mode refinement drift (404 vs 268 mm)."""
    torch.manual_seed(0)
    predictor, adapter = NoisePredictor(64), NoiseAdapter(64)
    x = torch.randn(6, 64, 8) * 3.0 + 1.0
    t = torch.tensor([400, 300, 200, 100, 0, 400])
    predictor.train(), adapter.train()
    eps_train, gamma_train = predictor(x, t), adapter(x)
    predictor.eval(), adapter.eval()
    with torch.no_grad():
        assert torch.allclose(predictor(x, t), eps_train, atol=1e-5)
        assert torch.allclose(adapter(x), gamma_train, atol=1e-6)
        # A sample's output does not depend on the rest of its batch (batch 1 in the fusion node).
        assert torch.allclose(predictor(x[:1], t[:1]), eps_train[:1], atol=1e-5)


@pytest.mark.parametrize("channels", [2, 4, 6, 16, 128, 200])
def test_denoiser_norm_takes_any_channel_count(channels: int) -> None:
    from midas_ros.model.diffkd import denoiser_norm

    norm = denoiser_norm(channels)
    assert channels % norm.num_groups == 0
    assert norm(torch.randn(2, channels, 5)).shape == (2, channels, 5)


def test_checkpoint_metadata_carries_the_reference_pose(tmp_path) -> None:
    from midas_ros.evaluate.references import REFERENCE_KEY, reference_from_info, reference_metadata

    rng = np.random.default_rng(0)
    train = rng.normal(scale=0.3, size=(10, 17, 3)) + np.array([3.0, 0.0, 1.0])
    path = save_checkpoint(
        MIDAS(tiny_config()), tmp_path / "midas", {"note": "x", **reference_metadata(train)}
    )
    predictor = PosePredictor.from_checkpoint(path, device="cpu")
    meta = predictor.info["metadata"][REFERENCE_KEY]
    assert np.asarray(meta["procrustes_mean_m"]).shape == (17, 3) and meta["frames"] == 10
    np.testing.assert_allclose(meta["mean_root_m"], train[:, 0].mean(axis=0), atol=1e-6)
    reference = reference_from_info(predictor.info)
    assert reference is not None and reference.constant(2).shape == (2, 17, 3)
