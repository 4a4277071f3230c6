"""CPC-Trans: the InfoNCE target layout, no path from future frames into the context, and the
fine-tuning model's shapes, freezing and parameter groups."""
import torch

from ops.policies import build_param_groups, freeze_for_linear_probe, linear_probe_parameters
from selfsupervision.cpc_trans import (CellTransformer, CPCTrans, CPCTransClassifier, dense_infonce,
                                       infonce_scores)

TINY = dict(depth=1, heads=2, ff_dim=32, crop_size=32)


def test_infonce_positive_is_same_video_step_and_cell():
    # Hand-made batch: B=2 videos, P=2 steps, 2x1 cells, C=8; every target is a distinct one-hot
    # vector, and the prediction for (b, p, i) is exactly its own target.
    b, p, c, h, w = 2, 2, 8, 2, 1
    target = torch.eye(c).reshape(b, p, h, w, c).permute(0, 1, 4, 2, 3)
    z_hat = target.clone()
    scores = infonce_scores(z_hat, target)
    assert scores.shape == (8, 8)
    assert torch.equal(scores, torch.eye(8))
    # Row/column order is (b, p, i): moving one prediction to another cell moves its hit.
    z_hat2 = z_hat.clone()
    z_hat2[1, 0, :, 1, 0] = target[0, 1, :, 0, 0]          # (b=1, p=0, i=1) predicts (b=0, p=1, i=0)
    scores2 = infonce_scores(z_hat2, target)
    row = 1 * 4 + 0 * 2 + 1
    assert scores2[row].argmax().item() == 0 * 4 + 1 * 2 + 0
    loss, top1, top5 = dense_infonce(z_hat2 * 20, target)
    assert abs(top1.item() - 100 * 7 / 8) < 1e-4
    assert top5.item() == 100.0


def test_infonce_loss_and_accuracy_sanity():
    torch.manual_seed(0)
    target = torch.randn(3, 2, 16, 2, 2)
    perfect_loss, top1, _ = dense_infonce(target * 10, target)
    random_loss, rtop1, rtop5 = dense_infonce(torch.randn_like(target) * 1e-6, target)
    assert top1.item() == 100.0 and perfect_loss.item() < 1e-3
    m = 3 * 2 * 2 * 2
    assert abs(random_loss.item() - torch.log(torch.tensor(float(m))).item()) < 1e-3
    assert 0 <= rtop1.item() <= rtop5.item() <= 100


def test_transformer_is_block_causal_in_time():
    torch.manual_seed(0)
    net = CellTransformer(dim=16, depth=2, heads=2, ff_dim=32, dropout=0.0).eval()
    z = torch.randn(2, 5, 16, 2, 2)
    changed = z.clone()
    changed[:, 3:] = torch.randn_like(changed[:, 3:])
    out, out2 = net(z), net(changed)
    assert torch.allclose(out[:, :3], out2[:, :3], atol=1e-5)
    assert not torch.allclose(out[:, 3:], out2[:, 3:])
    # positional encoding: the same token at two positions gives two different outputs
    same = torch.ones(1, 2, 16, 1, 1)
    o = net(same)
    assert not torch.allclose(o[0, 0], o[0, 1])


def test_context_does_not_depend_on_future_frames():
    """Change the last P frames: the predictions z_hat are unchanged, also in training mode (the
    future frames are encoded in their own pass, so not even BatchNorm statistics are shared)."""
    torch.manual_seed(0)
    model = CPCTrans(num_seq=5, pred_step=3, **TINY)
    x = torch.randn(2, 5, 3, 32, 32)
    other = x.clone()
    other[:, 2:] = torch.randn_like(other[:, 2:])
    for mode in (False, True):
        model.train(mode)
        torch.manual_seed(1)
        a = model.predict(x[:, :2])
        torch.manual_seed(1)
        b = model.predict(other[:, :2])
        assert torch.equal(a, b)
    # and the loss does depend on the future frames (they are the targets)
    model.eval()
    la = model(x)["losses"]["infonce"]
    lb = model(other)["losses"]["infonce"]
    assert not torch.allclose(la, lb)


def test_pretrain_output_and_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = CPCTrans(num_seq=4, pred_step=2, **TINY)
    out = model(torch.randn(2, 1, 4, 3, 32, 32))             # a view axis is accepted
    assert set(out) == {"losses", "metrics"}
    assert set(out["metrics"]) == {"pretext_top1", "pretext_top5"}
    out["losses"]["infonce"].backward()
    assert all(p.grad is not None for p in model.parameters())


def test_classifier_shapes_freezing_and_groups():
    torch.manual_seed(0)
    ft = CPCTransClassifier(7, num_seq=4, **TINY)
    assert ft(torch.randn(2, 4, 3, 32, 32)).shape == (2, 7)
    groups = {g["name"]: g for g in build_param_groups(ft, 1e-3, 1e-3)}
    # the published fine-tuning lowers the encoder's and the transformer's lr (`backbone`, `transEnc`)
    lowered = {id(p) for net in (ft.encoder, ft.transformer) for p in net.parameters()}
    assert {id(p) for g in ("encoder_weight", "encoder_no_decay") for p in groups[g]["params"]} == lowered
    assert groups["encoder_weight"]["lr"] == groups["normal_weight"]["lr"] / 10

    probe = CPCTransClassifier(7, num_seq=4, **TINY)
    trainable = freeze_for_linear_probe(probe, linear_probe_parameters(probe))   # no --tune_from needed
    assert trainable == ["bn.bias", "bn.weight", "fc.bias", "fc.weight"]
    probe.train()(torch.randn(2, 4, 3, 32, 32))
    assert not probe.encoder.training and not probe.transformer.encoder.layers[0].dropout.training
    assert probe.bn.training and probe.dropout.training


def test_finetune_names_match_pretraining():
    pre = CPCTrans(num_seq=4, pred_step=2, **TINY).state_dict()
    ft = CPCTransClassifier(5, num_seq=4, **TINY).state_dict()
    shared = set(pre) & set(ft)
    assert {k.split(".")[0] for k in set(pre) - shared} == {"predictor"}
    assert {k.split(".")[0] for k in set(ft) - shared} == {"bn", "fc"}


def test_pretrain_then_linear_probe_then_test_through_main(tmp_path, capsys):
    """main.py end to end on a tiny list: CPC-Trans pre-training, a linear probe from its best
    checkpoint (the pre-trained context network must come out unchanged), then evaluation."""
    import main
    from ops.checkpoint import load_checkpoint
    from tests.videogen import write_list_dataset

    root = tmp_path / "data"
    write_list_dataset(str(root), num_videos=12, num_train=8)
    common = ["custom", "RGB", "--root_path", str(root), "--num_class", "3", "--train_list", str(root / "train.txt"),
              "--val_list", str(root / "val.txt"), "--arch", "resnet18", "--num_seq", "4", "--seq_stride", "2",
              "--cpc_layers", "1", "--cpc_heads", "2", "--cpc_ff_dim", "32", "--crop_size", "32", "--optimizer", "adam",
              "--epochs", "1", "-b", "4", "-j", "0", "--no_progress", "--root_log", str(tmp_path / "log"),
              "--root_model", str(tmp_path / "ckpt")]
    main.main(common + ["--ssl", "cpc_trans", "--pred_step", "2", "--suffix", "pre"])
    pre = next((tmp_path / "ckpt").glob("*_pre/ckpt.best.pth"))
    log = next((tmp_path / "log").glob("*_pre/log.txt")).read_text()
    assert "pretext_top1" in log and "infonce" in log
    capsys.readouterr()
    main.main(common + ["--model", "cpc_trans_ft", "--tune_from", str(pre), "--train_what", "last",
                        "--suffix", "probe"])
    assert "pre-training heads left out (4): predictor" in capsys.readouterr().out
    probe = next((tmp_path / "ckpt").glob("*_probe/ckpt.pth"))
    pre_state, probe_state = load_checkpoint(pre)["model"], load_checkpoint(probe)["model"]
    for name, value in probe_state.items():
        if name.startswith(("encoder.", "transformer.", "agg.")):
            assert torch.equal(value, pre_state[name]), name
    stats = main.main(common + ["--model", "cpc_trans_ft", "--tune_from", str(probe), "--evaluate", "--suffix", "test"])
    assert stats["num_videos"] == 4 and 0 <= stats["top1"] <= 100


def is_orthogonal(weight, parts=1):
    """Each of `parts` row blocks of weight (flattened to a matrix) has orthonormal rows or columns."""
    for part in weight.detach().flatten(1).chunk(parts):
        gram = part @ part.T if part.shape[0] <= part.shape[1] else part.T @ part
        if not torch.allclose(gram, torch.eye(gram.shape[0]), atol=1e-4):
            return False
    return True


def test_starts_as_the_published_cpc_trans_initialises_it():
    torch.manual_seed(0)
    pre, ft = CPCTrans(num_seq=4, pred_step=2, **TINY), CPCTransClassifier(5, num_seq=4, **TINY)
    # the encoder's reduced last stage is built after torchvision's init: kaiming fan_out like the rest
    for conv in [m for m in pre.encoder[-1].modules() if isinstance(m, torch.nn.Conv2d)]:
        fan_out = conv.out_channels * conv.weight[0, 0].numel()
        assert abs(conv.weight.std().item() / (2 / fan_out) ** 0.5 - 1) < 0.1
    # after the encoder: weights orthogonal (q, k, v and the two gates each on its own), biases 0
    for name, p in list(pre.named_parameters()) + [("fc." + n, q) for n, q in ft.fc.named_parameters()]:
        if name.startswith("encoder."):
            continue
        if name.endswith("bias"):
            assert (p == 0).all(), name
        elif p.dim() >= 2:
            parts = 3 if name.endswith("in_proj_weight") else 2 if name.endswith("gates.weight") else 1
            assert is_orthogonal(p, parts), name
        else:
            assert (p == 1).all(), name                       # LayerNorm weights
