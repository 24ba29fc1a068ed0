"""Image encoder: config validation, shapes, DrQ random shift, the acting path, gradient routing,
spatial softmax, frozen ResNet-18 weight files, and feature caching."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from expo_core import encoder as encoder_mod
from expo_core.encoder import (
    CameraEncoder,
    EncoderConfig,
    ObservationEncoder,
    SpatialSoftmax,
    encode_frames,
    random_shift,
)
from expo_core.resnet import ResNet18, load_state_dict_file
from safetensors.torch import save_file

CAMS = ("agentview", "robot0_eye_in_hand")


def small_config(**changes) -> EncoderConfig:
    base = dict(camera_names=CAMS, image_size=32, feature_dim=8, num_filters=8, num_layers=2, num_keypoints=4)
    base.update(changes)
    return EncoderConfig(**base)


def frames(*lead: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (*lead, size, size, 3), generator=g, dtype=torch.uint8)


def images(batch: int, size: int = 32) -> dict[str, torch.Tensor]:
    return {c: frames(batch, size=size, seed=i) for i, c in enumerate(CAMS)}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- config ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, field",
    [
        (dict(camera_names=()), "camera_names"),
        (dict(camera_names=["agentview"]), "camera_names"),
        (dict(camera_names=("agent.view",)), "camera_names"),
        (dict(camera_names=("a", "a")), "camera_names"),
        (dict(image_size=8), "image_size"),
        (dict(image_size=32.0), "image_size"),
        (dict(num_layers=20), "image_size"),  # 32x32 is too small for 20 convs
        (dict(kind="resnet"), "kind"),
        (dict(backbone="vit"), "backbone"),
        (dict(backbone="resnet18"), "weights_path"),  # a random frozen ResNet is refused
        (dict(backbone="resnet18", image_size=24, weights_path="w.pt"), "image_size"),
        (dict(feature_dim=0), "feature_dim"),
        (dict(num_keypoints=True), "num_keypoints"),
        (dict(shift_pad=-1), "shift_pad"),
        (dict(shift_pad=9), "shift_pad"),  # > image_size // 4
        (dict(share_weights=1), "share_weights"),
        (dict(frozen="yes"), "frozen"),
        (dict(weights_path=""), "weights_path"),
        (dict(weights_path="https://download.pytorch.org/models/resnet18.pth"), "weights_path"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(changes, field):
    with pytest.raises(ValueError, match=f"encoder.{field}="):
        small_config(**changes)


def test_config_defaults_and_json_round_trip(tmp_path):
    cfg = EncoderConfig()
    assert (cfg.image_size, cfg.kind, cfg.shift_pad, cfg.frozen) == (84, "conv", 4, False)
    custom = small_config(kind="spatial_softmax", share_weights=True, weights_path=tmp_path / "w.pt")
    assert custom.weights_path == str(tmp_path / "w.pt")  # PathLike normalized to str
    assert EncoderConfig.from_dict(json.loads(json.dumps(custom.to_dict()))) == custom


# -- shapes, dtypes, input checks --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["conv", "spatial_softmax"])
@pytest.mark.parametrize("share", [False, True])
def test_observation_encoder_shapes(kind, share):
    enc = ObservationEncoder(small_config(kind=kind, share_weights=share), proprio_dim=9)
    assert enc.output_dim == 2 * 8 + 9
    out = enc(images(5), torch.randn(5, 9))
    assert out.shape == (5, enc.output_dim) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    # leading dims are kept: (B, T, S, S, 3) -> (B, T, output_dim)
    seq = {c: frames(2, 3, seed=i) for i, c in enumerate(CAMS)}
    assert enc(seq, torch.randn(2, 3, 9)).shape == (2, 3, enc.output_dim)
    # camera features come first, in camera_names order, then proprio as given
    proprio = torch.randn(5, 9)
    out = enc(images(5), proprio)
    assert torch.equal(out[:, 16:], proprio)
    assert torch.allclose(out[:, :8], enc.encoder_for("agentview")(images(5)["agentview"]))


def test_shared_weights_are_one_module_and_per_camera_are_independent():
    shared = ObservationEncoder(small_config(share_weights=True), proprio_dim=0)
    separate = ObservationEncoder(small_config(), proprio_dim=0)
    assert shared.encoder_for(CAMS[0]) is shared.encoder_for(CAMS[1])
    assert separate.encoder_for(CAMS[0]) is not separate.encoder_for(CAMS[1])
    n_cam = sum(p.numel() for p in shared.encoder_for(CAMS[0]).parameters())
    assert sum(p.numel() for p in separate.parameters()) == 2 * n_cam
    assert sum(p.numel() for p in shared.parameters()) == n_cam
    # the same frame in both cameras gives the same features only with shared weights
    same = {c: frames(3) for c in CAMS}
    out = shared(same, torch.zeros(3, 0))
    assert torch.allclose(out[:, :8], out[:, 8:])
    out = separate(same, torch.zeros(3, 0))
    assert not torch.allclose(out[:, :8], out[:, 8:])


@pytest.mark.parametrize(
    "config",
    [small_config(), small_config(image_size=84, num_filters=32, num_layers=4), EncoderConfig()],
)
def test_trunk_output_shape_matches_forward(config):
    cam = CameraEncoder(config)
    maps = cam.feature_maps(frames(2, size=config.image_size))
    assert tuple(maps.shape[1:]) == cam.trunk.output_shape(config.image_size, config.image_size)


def test_drq_pixels_are_scaled_to_minus_half_plus_half():
    cam = CameraEncoder(small_config())
    x = frames(3)
    expected = cam.trunk.forward_features(x.permute(0, 3, 1, 2).float() / 255.0 - 0.5)
    assert torch.allclose(cam.feature_maps(x), expected, atol=1e-6)


def test_resnet_output_shape_matches_forward():
    net = ResNet18(width=8).eval()
    for h, w in ((84, 84), (64, 96), (33, 47)):
        assert tuple(net.forward_features(torch.zeros(1, 3, h, w)).shape[1:]) == net.output_shape(h, w)


def test_bad_inputs_raise_clearly():
    enc = ObservationEncoder(small_config(), proprio_dim=3)
    with pytest.raises(TypeError, match="uint8"):
        enc({c: f.float() for c, f in images(2).items()}, torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"\(\.\.\., 32, 32, 3\)"):
        enc({c: frames(2, size=40) for c in CAMS}, torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"\(\.\.\., 32, 32, 3\)"):  # channels-first is not the layout
        enc({c: f.permute(0, 3, 1, 2) for c, f in images(2).items()}, torch.zeros(2, 3))
    with pytest.raises(KeyError, match="robot0_eye_in_hand"):
        enc({"agentview": frames(2)}, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="proprio"):
        enc(images(2), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="proprio_dim"):
        ObservationEncoder(small_config(), proprio_dim=-1)


# -- random shift ------------------------------------------------------------------------------------


def reference_shift(x: torch.Tensor, pad: int, shifts: torch.Tensor) -> torch.Tensor:
    """Replicate-pad each (H, W, C) frame, crop H x W at offset shifts[i] = (dy, dx) in 0..2 pad."""
    h, w = x.shape[1:3]
    padded = F.pad(x.permute(0, 3, 1, 2).float(), (pad, pad, pad, pad), mode="replicate").permute(0, 2, 3, 1)
    return torch.stack([padded[i, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(shifts.tolist())])


def test_random_shift_matches_pad_and_crop_reference():
    x = frames(64)
    out = random_shift(x, 4, gen(3))
    shifts = torch.randint(0, 9, (64, 2), generator=gen(3))  # the same draws
    assert out.dtype == torch.uint8 and out.shape == x.shape
    assert torch.equal(out.float(), reference_shift(x, 4, shifts))
    assert ((shifts == 4).all(dim=1) == (out == x).flatten(1).all(dim=1)).all()  # unshifted iff (4, 4)


def test_random_shift_is_deterministic_per_generator_and_actually_shifts():
    x = frames(16)
    a, b, c = random_shift(x, 4, gen(0)), random_shift(x, 4, gen(0)), random_shift(x, 4, gen(1))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert (a != x).flatten(1).any(dim=1).float().mean() > 0.8  # P(no shift) = 1/81 per frame
    # a one-pixel-wide vertical line moves by dx in -4..4, never further
    line = torch.zeros(200, 32, 32, 3, dtype=torch.uint8)
    line[:, :, 16] = 255
    cols = random_shift(line, 4, gen(2))[:, 16, :, 0].argmax(dim=1)
    assert set(cols.tolist()) == set(range(12, 21))


# -- acting path: never augmented ---------------------------------------------------------------------


def test_acting_path_is_not_augmented(monkeypatch):
    enc = ObservationEncoder(small_config(), proprio_dim=2)
    imgs, proprio = images(4), torch.randn(4, 2)
    train_aug = enc(imgs, proprio, gen(0))
    enc.eval()
    act = enc(imgs, proprio)
    assert torch.equal(act, enc(imgs, proprio))  # deterministic
    assert not torch.allclose(act, train_aug)  # the training path does shift
    no_pad = ObservationEncoder(small_config(shift_pad=0), proprio_dim=2)
    no_pad.load_state_dict(enc.state_dict())
    assert torch.equal(act, no_pad(imgs, proprio, gen(0)))  # acting == training with shifting off

    def boom(*args, **kwargs):
        raise AssertionError("augmentation on the acting path")

    monkeypatch.setattr(encoder_mod, "random_shift", boom)
    enc.train()
    enc(imgs, proprio)  # no generator: no shift, in train mode too
    enc.freeze()
    enc.cache_features(imgs)
    with pytest.raises(AssertionError, match="acting path"):  # the probe works
        enc(imgs, proprio, gen(0))


# -- actor-critic sharing: gradients -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["conv", "spatial_softmax"])
def test_critic_loss_trains_encoder_detached_features_do_not(kind):
    torch.manual_seed(0)
    enc = ObservationEncoder(small_config(kind=kind), proprio_dim=3)
    critic = torch.nn.Linear(enc.output_dim + 2, 1)
    editor = torch.nn.Linear(enc.output_dim, 2)
    z = enc.encode_for_update(images(6), torch.randn(6, 3), gen(0))
    assert torch.equal(z.with_grad, z.detached) and not z.detached.requires_grad

    editor_loss = editor(z.detached).pow(2).mean()
    editor_loss.backward()
    assert editor.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in enc.parameters())

    critic_loss = critic(torch.cat([z.with_grad, torch.randn(6, 2)], -1)).pow(2).mean()
    critic_loss.backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# -- freezing ------------------------------------------------------------------------------------------


def test_freeze_stops_training_and_stays_in_eval():
    enc = ObservationEncoder(small_config(), proprio_dim=0)
    assert not enc.is_frozen
    enc.freeze()
    enc.train()  # a parent's .train() must not unfreeze it
    assert enc.is_frozen
    assert all(not p.requires_grad for p in enc.parameters())
    assert all(not m.training for m in enc.encoder_for(CAMS[0]).modules())
    assert ObservationEncoder(small_config(frozen=True), proprio_dim=0).is_frozen


def test_weights_file_freezes_the_trunk_only(tmp_path):
    donor = CameraEncoder(small_config())
    path = tmp_path / "trunk.pt"
    torch.save(donor.trunk.state_dict(), path)
    cam = CameraEncoder(small_config(weights_path=str(path)))
    for k, v in donor.trunk.state_dict().items():
        assert torch.equal(cam.trunk.state_dict()[k], v), k
    assert all(not p.requires_grad for p in cam.trunk.parameters())
    assert all(p.requires_grad for p in cam.head.parameters())
    assert not cam.is_frozen


# -- spatial softmax -----------------------------------------------------------------------------------


@pytest.mark.parametrize("row, col", [(0, 0), (4, 8), (2, 6), (1, 3)])
def test_spatial_softmax_finds_a_bright_spot(row, col):
    h, w = 5, 9  # not square: x follows the width, y the height
    img = torch.zeros(1, 1, h, w)
    img[0, 0, row, col] = 50.0
    kp = SpatialSoftmax(h, w)(img)
    expected = torch.tensor([-1 + 2 * col / (w - 1), -1 + 2 * row / (h - 1)])
    assert kp.shape == (1, 1, 2)
    assert torch.allclose(kp[0, 0], expected, atol=1e-4)
    assert torch.allclose(SpatialSoftmax(h, w)(torch.zeros(1, 1, h, w)), torch.zeros(1, 1, 2), atol=1e-6)


def test_encoder_keypoints_in_range():
    torch.manual_seed(0)
    cam = CameraEncoder(small_config(kind="spatial_softmax"))
    with torch.no_grad():
        cam.keypoint_proj.weight.mul_(100.0)  # peaky maps push keypoints towards the borders
    kp = cam.keypoints(frames(2, 8))
    assert kp.shape == (2, 8, 4, 2)
    assert kp.abs().max() <= 1.0 and kp.abs().max() > 0.5
    with pytest.raises(ValueError, match="spatial_softmax"):
        CameraEncoder(small_config()).keypoints(frames(1))


# -- ResNet-18 weight files ----------------------------------------------------------------------------


def test_resnet18_has_torchvision_keys_and_sizes():
    sd = ResNet18().state_dict()
    assert len(sd) == 122  # torchvision resnet18().state_dict()
    assert (
        sum(v.numel() for k, v in sd.items() if "running" not in k and "num_batches" not in k) == 11_689_512
    )
    for key, shape in {
        "conv1.weight": (64, 3, 7, 7),
        "layer1.0.conv1.weight": (64, 64, 3, 3),
        "layer2.0.downsample.0.weight": (128, 64, 1, 1),
        "layer4.1.bn2.running_var": (512,),
        "fc.weight": (1000, 512),
    }.items():
        assert tuple(sd[key].shape) == shape, key
    assert "layer1.0.downsample.0.weight" not in sd


def randomized_resnet(width: int = 8, seed: int = 0) -> ResNet18:
    torch.manual_seed(seed)
    net = ResNet18(width=width, num_classes=10)
    for m in net.modules():  # non-trivial BatchNorm statistics, so eval outputs depend on them
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    return net.eval()


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_resnet18_state_dict_round_trip(tmp_path, suffix):
    src, dst = randomized_resnet(seed=0), randomized_resnet(seed=1)
    x = torch.randn(2, 3, 48, 48)
    path = tmp_path / f"resnet{suffix}"
    if suffix == ".pt":
        torch.save(src.state_dict(), path)
    else:
        save_file(src.state_dict(), str(path))
    assert not torch.allclose(dst(x), src(x))
    load_state_dict_file(dst, path)
    assert torch.equal(dst(x), src(x))
    assert torch.equal(dst.forward_features(x), src.forward_features(x))


def test_camera_encoder_with_a_resnet18_file(tmp_path):
    """Mode (b) end to end with a full-size file: the trunk is the file's network, frozen, BN fixed."""
    src = randomized_resnet(width=64, seed=0)
    src.fc = torch.nn.Linear(512, 1000)  # a torchvision-shaped file
    path = tmp_path / "resnet18.pth"
    torch.save(src.state_dict(), path)
    cam = CameraEncoder(EncoderConfig(backbone="resnet18", weights_path=str(path), feature_dim=16))
    cam.train()
    x = frames(2, size=84)
    maps = cam.feature_maps(x)
    norm = (
        x.permute(0, 3, 1, 2).float() / 255 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    ) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.allclose(maps, src.forward_features(norm), atol=1e-5)
    assert not cam.trunk.training and cam.head.training
    assert torch.equal(cam.trunk.bn1.running_mean, src.bn1.running_mean)  # not updated by the forward
    assert cam(x).shape == (2, 16)


def test_bad_weight_files_raise_clear_errors(tmp_path):
    net = ResNet18(width=8)
    sd = randomized_resnet().state_dict()
    cases = {
        "missing.pt": (
            {k: v for k, v in sd.items() if k != "layer3.1.conv2.weight"},
            "missing keys.*layer3.1.conv2",
        ),
        "extra.pt": ({**sd, "head.weight": torch.zeros(3)}, "unexpected keys.*head.weight"),
        "shape.pt": (ResNet18(width=16, num_classes=10).state_dict(), "shape mismatches.*conv1.weight"),
        "prefixed.pt": ({f"module.{k}": v for k, v in sd.items()}, "module."),
        "wrapped.pt": ({"state_dict": sd, "epoch": 3}, "wrapped checkpoint"),
        "tensor.pt": (torch.zeros(3), "expected a state_dict"),
    }
    for name, (obj, message) in cases.items():
        torch.save(obj, tmp_path / name)
        with pytest.raises(ValueError, match=message):
            load_state_dict_file(net, tmp_path / name)
    (tmp_path / "garbage.pt").write_bytes(b"not a weights file")
    (tmp_path / "garbage.safetensors").write_bytes(b"not a weights file")
    for name in ("garbage.pt", "garbage.safetensors"):
        with pytest.raises(ValueError, match="not a readable weights file"):
            load_state_dict_file(net, tmp_path / name)
    torch.save({"fn": encode_frames}, tmp_path / "code.pt")  # pickled code is refused (weights_only)
    with pytest.raises(ValueError, match="not a readable weights file"):
        load_state_dict_file(net, tmp_path / "code.pt")
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_state_dict_file(net, tmp_path / "nope.pt")
    with pytest.raises(ValueError, match="URL"):
        load_state_dict_file(net, "https://download.pytorch.org/models/resnet18-f37072fd.pth")
    with pytest.raises(FileNotFoundError):  # through the config too
        CameraEncoder(small_config(weights_path=str(tmp_path / "nope.pt")))


# -- feature caching (modes a and b) -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["conv", "spatial_softmax"])
def test_cached_features_equal_direct_forward(kind):
    enc = ObservationEncoder(small_config(kind=kind), proprio_dim=4).freeze()
    imgs, proprio = images(7), torch.randn(7, 4)
    numpy_imgs = {c: f.numpy() for c, f in imgs.items()}  # replay stores numpy uint8
    cached = enc.cache_features(numpy_imgs, chunk_size=3)  # 3 + 3 + 1
    with torch.no_grad():
        direct = enc(imgs, proprio)
    assert cached["agentview"].shape == (7, 8) and cached["agentview"].dtype == torch.float32
    assert torch.allclose(enc.combine(cached, proprio), direct, atol=1e-6)
    # cached features feed a trainable layer like any tensor (an inference-mode tensor would raise)
    assert not cached["agentview"].is_inference()
    head = torch.nn.Linear(8, 1)
    head(cached["agentview"]).sum().backward()
    assert head.weight.grad is not None
    half = encode_frames(
        enc.encoder_for("agentview"), numpy_imgs["agentview"], chunk_size=4, dtype=torch.float16
    )
    assert half.dtype == torch.float16 and torch.allclose(half.float(), cached["agentview"], atol=1e-2)


def test_caching_needs_a_frozen_encoder():
    enc = ObservationEncoder(small_config(), proprio_dim=0)
    with pytest.raises(RuntimeError, match="frozen"):
        enc.cache_features(images(2))
    with pytest.raises(ValueError, match="last dim"):
        enc.freeze().combine({c: torch.zeros(2, 5) for c in CAMS}, torch.zeros(2, 0))
    assert np.isfinite(enc.cache_features(images(2))["agentview"].numpy()).all()
