"""MIDAS model (plain PyTorch). API summary (names are stable):

Models (all share this interface; evaluation treats them alike):
    MIDAS(MidasConfig())                        the method; MidasConfig(use_diffkd=False) = "w/o Diff",
                                                MidasConfig(learn_weights=False) = "w/o Meta"
    ConcatBaseline(config), DecisionAverageBaseline(config)      Base.1 and Base.2
    out = model(inputs, present)                inputs {modality: (B, *INPUT_SHAPES[m])} float32
                                                (depth and LiDAR: the person's points, base frame);
                                                present (B, 3) bool in MODALITIES order; rows of an
                                                absent modality may hold anything (never read)
    out.pose (B, 17, 3) metres, base frame; out.weights (B, 3); out.diffusion_loss, out.kd_loss,
    out.ae_loss (0-dim, computed in training mode or with compute_losses=True), out.aux_loss (their
    sum), out.teacher_pose (head on the unrefined teacher, when losses are computed), out.gamma.
    anchor = model.anchors(inputs, present)     (B, 3) person frame (x, y, yaw), model/person_frame.py
    tokens = model.encode(inputs, present, anchor)   {modality: (B, C, L_m)} tokens, zeros where absent
    out = model.forward_from_tokens(tokens, present, anchor)   everything after the encoders
Parameter groups: model.encoders (ModuleDict), model.encoder_parameters(), model.weight_parameters()
    ([modality_logits], or [] when frozen / baseline), model.model_parameters() (all but the weight
    logits); torch.func.functional_call(model, {"modality_logits": w}, (inputs, present)) works.
Other: model.modality_weights(present) -> (B, 3); model.fusion_parameter_count();
    model.set_pose_mean(mean (17, 3)) (person-frame offset added to every prediction) and
    model.set_default_anchor((3,)) (the frame when only CSI is present), both saved in checkpoints.
Checkpoints: save_checkpoint(model, "models/midas", metadata) -> models/midas.{safetensors,json};
    load_checkpoint(path, device) -> model in eval mode; non-safetensors files are refused
    (CheckpointError) before anything is deserialised. build_model(kind, config), MODEL_KINDS.
Inference: PosePredictor.from_checkpoint(path, device="auto", num_threads=None)
    .predict({modality: np.ndarray}) -> Prediction(joints (17, 3) float32, weights {m: w}), one pass.
    On the shared 2-core CPU use 1 torch thread (num_threads=1): 2 threads were ~10x slower there.
"""

from midas_ros.interfaces import INPUT_SHAPES
from midas_ros.model.baselines import ConcatBaseline, DecisionAverageBaseline
from midas_ros.model.checkpoint import (
    MODEL_KINDS,
    CheckpointError,
    build_model,
    load_checkpoint,
    read_checkpoint_info,
    save_checkpoint,
)
from midas_ros.model.config import MidasConfig, tiny_config
from midas_ros.model.midas import MIDAS, FusionModel, MidasOutput
from midas_ros.model.predictor import PosePredictor, Prediction, resolve_device
from midas_ros.model.weights import renormalised_weights

__all__ = [
    "INPUT_SHAPES",
    "MIDAS",
    "MODEL_KINDS",
    "CheckpointError",
    "ConcatBaseline",
    "DecisionAverageBaseline",
    "FusionModel",
    "MidasConfig",
    "MidasOutput",
    "PosePredictor",
    "Prediction",
    "build_model",
    "load_checkpoint",
    "read_checkpoint_info",
    "renormalised_weights",
    "resolve_device",
    "save_checkpoint",
    "tiny_config",
]
