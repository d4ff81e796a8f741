"""Training: subsets, splits, the bi-level outer step, and tiny end-to-end runs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic_data import synthetic_set
from torch import nn
from torch.func import functional_call

from midas_ros import MODALITIES
from midas_ros.model import MIDAS, MidasConfig, load_checkpoint, read_checkpoint_info, tiny_config
from midas_ros.train import state
from midas_ros.train.bilevel import _outer_gradient, compare_first_order, outer_step
from midas_ros.train.data import build_token_cache
from midas_ros.train.recipe import Recipe, RecipeResult, run_recipe_on
from midas_ros.train.splits import split_subjects
from midas_ros.train.stage1 import Stage1Settings
from midas_ros.train.stage2 import WEIGHT_PARAM, Stage2Settings, _FromTokens, train_stage2, training_loss
from midas_ros.train.subsets import SUBSET_LABELS, random_present, subset_mask

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class ToyFusion(nn.Module):
    """Weighted fusion of three token sets, like MIDAS's weighting, small enough for finite differences."""

    def __init__(self) -> None:
        super().__init__()
        self.weight_logits = nn.Parameter(torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64))
        self.proj = nn.ModuleList(nn.Linear(4, 5, dtype=torch.float64) for _ in range(3))
        self.head = nn.Linear(5, 2, dtype=torch.float64)

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.weight_logits, 0) * present
        w = w / w.sum(dim=1, keepdim=True)
        feats = torch.stack([torch.tanh(p(x[:, i])) for i, p in enumerate(self.proj)], dim=1)
        return self.head((w[..., None] * feats).sum(dim=1))


def _toy_batch(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 3, 4, generator=g, dtype=torch.float64)
    present = random_present(torch.ones(16, 3, dtype=torch.bool), g).double()
    y = torch.randn(16, 2, generator=g, dtype=torch.float64)
    return x, present, y


def _toy_setup() -> tuple[ToyFusion, torch.optim.Adam, object]:
    torch.manual_seed(0)
    model = ToyFusion()
    theta = [p for n, p in model.named_parameters() if n != "weight_logits"]
    inner_opt = torch.optim.Adam(theta, lr=0.05)
    batch = _toy_batch(1)
    for _ in range(3):  # give Adam real moments, so the look-ahead is not a sign step
        inner_opt.zero_grad()
        nn.functional.mse_loss(model(batch[0], batch[1]), batch[2]).backward()
        inner_opt.step()

    def loss_fn(params: dict[str, torch.Tensor], b: object) -> torch.Tensor:
        x, present, y = b
        return nn.functional.mse_loss(functional_call(model, params, (x, present)), y)

    return model, inner_opt, loss_fn


def test_outer_gradient_flows_through_the_inner_update() -> None:
    model, inner_opt, loss_fn = _toy_setup()
    train_b, val_b = _toy_batch(2), _toy_batch(3)
    exact = _outer_gradient(model, "weight_logits", loss_fn, loss_fn, train_b, val_b, inner_opt, False)
    first = _outer_gradient(model, "weight_logits", loss_fn, loss_fn, train_b, val_b, inner_opt, True)

    # Central finite differences of F(alpha) = L_val(theta'(alpha), alpha), the full bi-level objective.
    alpha = model.weight_logits
    numeric = torch.zeros(3, dtype=torch.float64)
    h = 1e-6
    for i in range(3):
        values = []
        for sign in (1, -1):
            with torch.no_grad():
                alpha[i] += sign * h
            values.append(
                _outer_gradient(
                    model, "weight_logits", loss_fn, loss_fn, train_b, val_b, inner_opt, False
                ).outer_loss
            )
            with torch.no_grad():
                alpha[i] -= sign * h
        numeric[i] = (values[0] - values[1]) / (2 * h)

    torch.testing.assert_close(exact.grad, numeric, rtol=1e-4, atol=1e-8)
    # The second-order term is real: dropping it gives a measurably different gradient.
    assert (first.grad - numeric).norm() > 100 * (exact.grad - numeric).norm()
    stats = compare_first_order(model, "weight_logits", loss_fn, loss_fn, train_b, val_b, inner_opt)
    assert stats["relative_difference"] > 1e-3


def test_outer_step_changes_only_the_weights() -> None:
    model, inner_opt, loss_fn = _toy_setup()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    weight_opt = torch.optim.Adam([model.weight_logits], lr=1e-2)
    outer_step(model, "weight_logits", loss_fn, loss_fn, _toy_batch(2), _toy_batch(3), inner_opt, weight_opt)
    for name, p in model.named_parameters():
        changed = not torch.equal(p, before[name])
        assert changed == (name == "weight_logits"), name


def test_random_present_is_non_empty_respects_availability_and_covers_all_subsets() -> None:
    g = torch.Generator().manual_seed(0)
    available = torch.ones(4000, 3, dtype=torch.bool)
    available[:1000, 2] = False  # no CSI file for these frames
    present = random_present(available, g)
    assert present.any(dim=1).all()
    assert not (present & ~available).any()
    codes = (present.long() * torch.tensor([1, 2, 4])).sum(dim=1)
    counts = torch.bincount(codes[1000:], minlength=8)[1:]
    assert (counts > 3000 / 7 * 0.8).all()  # all seven subsets, roughly uniform
    again = random_present(available, torch.Generator().manual_seed(0))
    assert torch.equal(present, again)


def test_random_present_rejects_samples_without_any_modality() -> None:
    with pytest.raises(ValueError):
        random_present(torch.zeros(2, 3, dtype=torch.bool), torch.Generator())


def test_subset_labels_follow_the_papers_rows() -> None:
    assert SUBSET_LABELS == ("D", "L", "W", "D+L", "D+W", "L+W", "D+L+W")
    assert subset_mask(("csi", "depth")).tolist() == [True, False, True]


def test_split_is_by_subject_disjoint_and_spans_environments() -> None:
    subjects = np.repeat([1, 2, 3, 11, 12, 13, 21, 22, 31, 32], 5)
    split = split_subjects(subjects)
    parts = [set(split.inner_train), set(split.outer_val), set(split.test)]
    assert set().union(*parts) == set(subjects.tolist())
    assert sum(len(p) for p in parts) == 10
    assert len(split.test) == 2 and len({(s - 1) // 10 for s in split.test}) == 2
    assert len(split.outer_val) == 2
    # Every environment keeps training subjects: the test measures new people, not new rooms.
    assert {(s - 1) // 10 for s in split.inner_train} == {0, 1, 2, 3}
    idx = split.indices(subjects, "test")
    assert set(subjects[idx].tolist()) == set(split.test)


def test_wide_preset_holds_out_subjects_rigs_and_actions() -> None:
    """The recipe's split of the simulator's wide preset, frame by frame, with each sequence's pool rig."""
    from types import SimpleNamespace

    from midas_ros.sim.presets import PRESETS as SIM
    from midas_ros.sim.rigs import sequence_rig
    from midas_ros.train.recipe import PRESETS

    sim, recipe = SIM["wide"], PRESETS["wide"]
    sequences = [(s, a, sequence_rig(s, a).id) for s in sim["subjects"] for a in sim["actions"]]
    subject, action, rig = (
        np.repeat(np.array(column), sim["frames"]) for column in zip(*sequences, strict=True)
    )
    data = SimpleNamespace(subject=subject, action=action, rig=rig)
    split = split_subjects(
        subject, recipe.num_test_subjects, recipe.val_fraction, recipe.held_out_rigs, recipe.held_out_actions
    )
    rows = {part: split.rows(data, part) for part in ("inner_train", "outer_val", "test")}
    assert len(split.test) == 8 and len(rows["test"]) == 8 * 27 * sim["frames"]
    for part in ("inner_train", "outer_val"):
        assert not np.isin(rig[rows[part]], split.held_out_rigs).any()
        assert not np.isin(action[rows[part]], split.held_out_actions).any()
        assert len(rows[part]) > 2000
    test_rigs, test_actions = rig[rows["test"]], action[rows["test"]]
    assert np.isin(test_rigs, split.held_out_rigs).sum() > 300  # an unseen-rig slice worth reading
    assert np.isin(test_actions, split.held_out_actions).sum() == 8 * 3 * sim["frames"]
    assert set(np.concatenate([rows[p] for p in rows]).tolist()).isdisjoint(
        set(np.flatnonzero(~np.isin(subject, split.test) & np.isin(rig, split.held_out_rigs)).tolist())
    )
    for part in (split.test, split.outer_val, split.inner_train):  # every room in every part
        assert {(s - 1) // 10 for s in part} == {0, 1, 2, 3}


# ---- tiny end-to-end runs on synthetic arrays -------------------------------------------------------------

# latent_channels 16, not 8: with 8 the denoiser's bottlenecks are 1-2 channels wide, and GroupNorm over so
# few values (x 4 tokens) normalises the signal away, so 3 epochs did not move the MIDAS task loss.
TINY = Recipe(
    model=MidasConfig(feature_dim=16, num_tokens=4, encoder_width=4, latent_channels=16, head_hidden=16),
    stage1=Stage1Settings(epochs=3, batch_size=16, lr=3e-3, warmup_steps=2, augment=False),
    stage2=Stage2Settings(epochs=3, batch_size=16, outer_every=2, warmup_steps=2),
    variants=("midas", "base1"),
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RecipeResult]:
    run_dir = tmp_path_factory.mktemp("run")
    result = run_recipe_on(
        synthetic_set(frames_per_subject=32), run_dir, TINY, seed=0, device="cpu", evaluate=False
    )
    return run_dir, result


def _history(run_dir: Path, name: str) -> list[dict]:
    return read_checkpoint_info(run_dir / name / "final")["metadata"]["history"]


def test_tiny_training_lowers_the_loss(tiny_run: tuple[Path, RecipeResult]) -> None:
    run_dir, result = tiny_run
    assert set(result.timings_s) >= {"stage1", "token_cache", "stage2_midas", "stage2_base1"}
    stage1 = _history(run_dir, "stage1")
    assert len(stage1) == TINY.stage1.epochs
    for m in ("depth", "lidar", "csi"):
        assert stage1[-1]["train_mpjpe_mm"][m] < stage1[0]["train_mpjpe_mm"][m], m
    for name in TINY.variants:
        history = _history(run_dir, name)
        assert history[-1]["train_task"] < history[0]["train_task"], name
    # MIDAS learned its modality weights (the outer loop ran), and they are stored with the model.
    weights = read_checkpoint_info(run_dir / "midas" / "final")["metadata"]["weights"]
    assert weights != pytest.approx({"depth": 1 / 3, "lidar": 1 / 3, "csi": 1 / 3}, abs=1e-6)


def test_stage2_models_share_the_frozen_stage1_encoders(tiny_run: tuple[Path, RecipeResult]) -> None:
    run_dir, _ = tiny_run
    stage1 = load_checkpoint(run_dir / "stage1" / "final").state_dict()
    for name in TINY.variants:
        model = load_checkpoint(run_dir / name / "final").state_dict()
        for key, value in stage1.items():
            if key.startswith("encoders."):
                assert torch.equal(model[key], value), (name, key)


def test_rerun_skips_finished_work(tiny_run: tuple[Path, RecipeResult]) -> None:
    run_dir, _ = tiny_run
    stamps = {p: p.stat().st_mtime_ns for p in run_dir.glob("*/final.safetensors")}
    again = run_recipe_on(
        synthetic_set(frames_per_subject=32), run_dir, TINY, seed=0, device="cpu", evaluate=False
    )
    assert not any(k.startswith(("stage2", "token_cache")) for k in again.timings_s)
    assert {p: p.stat().st_mtime_ns for p in run_dir.glob("*/final.safetensors")} == stamps
    with pytest.raises(ValueError, match="different recipe"):
        run_recipe_on(
            synthetic_set(frames_per_subject=16), run_dir, replace(TINY, val_fraction=0.5), device="cpu"
        )


def test_interrupted_stage2_resumes_to_the_same_model(
    tiny_run: tuple[Path, RecipeResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir, result = tiny_run
    data = synthetic_set(frames_per_subject=16)
    stage1 = load_checkpoint(run_dir / "stage1" / "final")
    cache = build_token_cache(stage1, data, torch.device("cpu"))
    rows = {part: result.split.indices(data.subject, part) for part in ("inner_train", "outer_val")}
    args = (stage1, cache, rows["inner_train"], rows["outer_val"], TINY.model, TINY.stage2)

    reference = train_stage2("midas", *args, tmp_path / "whole", torch.device("cpu"), 0)

    original = state.save_epoch

    def save_then_stop(model, optimizers, run, name, metadata):
        original(model, optimizers, run, name, metadata)
        if metadata["epoch"] == 0:
            raise KeyboardInterrupt

    monkeypatch.setattr(state, "save_epoch", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train_stage2("midas", *args, tmp_path / "cut", torch.device("cpu"), 0)
    assert (tmp_path / "cut" / "midas" / "last.json").exists()
    assert not state.is_done(tmp_path / "cut", "midas")
    monkeypatch.setattr(state, "save_epoch", original)
    resumed = train_stage2("midas", *args, tmp_path / "cut", torch.device("cpu"), 0)

    assert len(_history(tmp_path / "cut", "midas")) == TINY.stage2.epochs
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=0, msg=key)


def test_outer_gradient_on_midas_has_a_second_order_term() -> None:
    torch.manual_seed(0)
    model = MIDAS(tiny_config())
    for p in model.encoder_parameters():
        p.requires_grad_(False)
    wrapper = _FromTokens(model)
    settings = Stage2Settings()
    gen = torch.Generator().manual_seed(0)

    def batch(size: int) -> tuple:
        tokens = {m: torch.randn(size, 64, model.encoders[m].num_tokens, generator=gen) for m in MODALITIES}
        present = random_present(torch.ones(size, 3, dtype=torch.bool), gen)
        anchor = torch.rand(size, 3, generator=gen)
        return tokens, present, anchor, torch.randn(size, 17, 3, generator=gen)

    inner_opt = torch.optim.Adam([p for p in model.model_parameters() if p.requires_grad], lr=5e-4)
    for _ in range(2):  # Adam moments from real steps
        tokens, present, anchor, joints = batch(8)
        loss, _ = training_loss(model.forward_from_tokens(tokens, present, anchor, True), joints, settings)
        inner_opt.zero_grad()
        loss.backward()
        inner_opt.step()

    def inner(params: dict, b: tuple) -> torch.Tensor:
        return training_loss(functional_call(wrapper, params, (*b[:3], True)), b[3], settings)[0]

    def outer(params: dict, b: tuple) -> torch.Tensor:
        return nn.functional.mse_loss(functional_call(wrapper, params, (*b[:3], False)).pose, b[3])

    stats = compare_first_order(wrapper, WEIGHT_PARAM, inner, outer, batch(8), batch(8), inner_opt)
    assert stats["exact_norm"] > 0
    assert stats["relative_difference"] > 1e-4  # the look-ahead's d theta'/d alpha contributes


def test_recipe_round_trips_through_json() -> None:
    assert Recipe.from_dict(json.loads(json.dumps(TINY.to_dict()))) == TINY


def test_recipe_help_mentions_data_generation(capsys: pytest.CaptureFixture[str]) -> None:
    from midas_ros.train.recipe import main

    with pytest.raises(SystemExit):
        main(["--help"])
    assert "generates" in capsys.readouterr().out
