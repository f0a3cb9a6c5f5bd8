"""mobileinst-export: embedded weights, ONNX-vs-torch parity at every resolution, loud mismatches, layouts."""
import onnx
import pytest
import torch
import torch.nn.functional as F
import yaml

from mobileinst_ros.export.export import ExportError, export_model, main
from mobileinst_ros.model import build_model
from mobileinst_ros.runtime.engine import Engine
from mobileinst_ros.runtime.model_dir import GRAPH_IO, GRAPHS
from oracle_model import CLASSES, OracleModel, _MaskDecoder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = {"model": {"backbone": {"pretrained": False}}}
    model = build_model(config["model"], 3)
    path = tmp_path_factory.mktemp("ckpt") / "last.pt"
    torch.save({"model": model.state_dict(), "config": config, "classes": ["a", "b", "c"], "step": 7}, path)
    return path


def test_cli_exports_the_mobileinst_model_with_embedded_weights_and_parity(checkpoint, tmp_path, capsys):
    out = tmp_path / "model"
    assert main(["--checkpoint", str(checkpoint), "--out", str(out), "--resolution", "128x128",
                 "--resolution", "160x96"]) == 0
    assert "worst parity" in capsys.readouterr().out
    spec = yaml.safe_load((out / "model.yaml").read_text())
    assert spec["classes"] == ["a", "b", "c"] and spec["export"]["checkpoint_step"] == 7
    assert set(spec["resolutions"]) == {"128x128", "160x96"}
    assert spec["num_queries"] == 100 and spec["kernel_dim"] == 128
    parity = spec["export"]["parity_max_abs"]
    outputs = sum(len(outs) for _, outs in GRAPH_IO.values())  # every output of every graph, at each resolution
    assert len(parity) == 2 * outputs and max(parity.values()) < 1e-3
    assert not list(out.rglob("*.data")) and (out / "MODEL_CARD.md").is_file()
    for path in out.rglob("*.onnx"):
        graph = onnx.load(str(path), load_external_data=False).graph
        assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in graph.initializer), path
    Engine(out)   # the engine accepts what the exporter wrote


def test_weights_for_fine_tuning_are_written_on_request(checkpoint, tmp_path):
    """--weights: the weights in float16, a checkpoint that mobileinst-export and --init-from read."""
    out = tmp_path / "model"
    assert main(["--checkpoint", str(checkpoint), "--out", str(out), "--resolution", "128x128"]) == 0
    assert not (out / "weights.pt").exists()
    assert main(["--checkpoint", str(checkpoint), "--out", str(out), "--resolution", "128x128", "--weights"]) == 0
    weights = torch.load(out / "weights.pt", weights_only=True)
    source = torch.load(checkpoint, weights_only=True)
    assert weights["classes"] == ["a", "b", "c"] and weights["step"] == 7 and weights["config"] == source["config"]
    for name, value in source["model"].items():
        if value.is_floating_point():
            assert weights["model"][name].dtype == torch.float16
            assert torch.allclose(weights["model"][name].float(), value, rtol=1e-3, atol=1e-4), name
    again = tmp_path / "again"  # the file is itself a checkpoint
    assert main(["--checkpoint", str(out / "weights.pt"), "--out", str(again), "--resolution", "128x128"]) == 0


class _TracedDiffers(_MaskDecoder):
    """Exports something other than what it computes in eager mode."""

    def from_context(self, x3, *context):
        out = super().from_context(x3, *context)
        return out + 1 if torch.jit.is_tracing() else out


class _BakedSize(_MaskDecoder):
    """Turns a size into a Python int while tracing: the graph only fits the traced resolution."""

    def context(self, x3, x4, x5, x6):
        up = F.interpolate(x4, size=(int(x3.shape[-2]), int(x3.shape[-1])), mode="nearest")
        p4, p5, gate3, shift3 = super().context(x3, x4, x5, x6)
        return p4, p5, gate3, shift3 + 0 * up.mean(dim=1, keepdim=True)


def oracle_with(decoder):
    model = OracleModel()
    model.mask_decoder = decoder
    return model.eval()


def test_a_graph_that_differs_from_torch_stops_the_export_and_names_the_tensor(tmp_path):
    out = tmp_path / "model"
    with pytest.raises(ExportError, match=r"64x64/mask_decoder mask_features: max abs error 1 > tolerance"):
        export_model(oracle_with(_TracedDiffers()), CLASSES, out, [(64, 64)])
    assert not out.exists()


def test_an_export_into_folders_that_do_not_exist_yet_creates_them(tmp_path):
    out = tmp_path / "runs" / "models" / "model"
    export_model(OracleModel().eval(), CLASSES, out, [(64, 64)])
    assert Engine(out).resolutions == [(64, 64)]
    assert [p.name for p in out.parent.iterdir()] == ["model"]  # no staging folder left beside it


def test_shared_layout_serves_every_resolution_from_one_graph_set(tmp_path):
    out = tmp_path / "model"
    export_model(OracleModel().eval(), CLASSES, out, [(64, 64), (96, 64)], layout="shared")
    spec = yaml.safe_load((out / "model.yaml").read_text())
    assert spec["resolutions"]["64x64"] == spec["resolutions"]["96x64"]
    assert sorted(p.name for p in out.glob("*.onnx")) == sorted(f"{g}.onnx" for g in GRAPHS)
    assert Engine(out).resolutions == [(64, 64), (96, 64)]


def test_auto_layout_falls_back_to_one_graph_set_per_resolution_when_sizes_are_baked_in(tmp_path, capsys):
    with pytest.raises(ExportError, match="96x64"):
        export_model(oracle_with(_BakedSize()), CLASSES, tmp_path / "shared", [(64, 64), (96, 64)], layout="shared")
    out = tmp_path / "auto"
    export_model(oracle_with(_BakedSize()), CLASSES, out, [(64, 64), (96, 64)], layout="auto")
    assert "one graph set per resolution" in capsys.readouterr().err
    assert sorted(p.parent.name for p in out.rglob("shallow.onnx")) == ["64x64", "96x64"]
    assert Engine(out).resolutions == [(64, 64), (96, 64)]


@pytest.mark.parametrize("args, message", [
    (["--checkpoint", "/nonexistent/ckpt.pt"], "/nonexistent/ckpt.pt: checkpoint not found"),
    (["--resolution", "100x64"], "must be multiples of 32"),
    (["--resolution", "big"], "resolution must look like 640x480"),
])
def test_cli_errors_are_one_line(checkpoint, tmp_path, capsys, args, message):
    base = {"--checkpoint": str(checkpoint), "--out": str(tmp_path / "m")}
    argv = [x for k, v in base.items() if k not in args for x in (k, v)] + args
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_cli_rejects_a_checkpoint_without_classes(tmp_path, capsys):
    path = tmp_path / "bad.pt"
    torch.save({"model": {}, "config": {}}, path)
    assert main(["--checkpoint", str(path), "--out", str(tmp_path / "m")]) == 1
    assert "lacks ['classes']" in capsys.readouterr().err
