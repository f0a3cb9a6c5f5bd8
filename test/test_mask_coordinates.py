"""``mask_decoder.coords``: cell coordinates fed into the mask decoder make its features position-aware
(alike objects at two places get different features), and the exported graph serves every resolution."""
import numpy as np
import torch

from mobileinst_ros.export.export import export_model
from mobileinst_ros.model import build_model
from mobileinst_ros.model.mask_decoder import coordinate_grid
from mobileinst_ros.runtime.engine import Engine


def test_coordinate_grid_holds_cell_centres_in_minus_one_to_one():
    grid = coordinate_grid(torch.zeros(2, 5, 3, 4))
    assert grid.shape == (2, 2, 3, 4)
    assert torch.allclose(grid[0, 0, 0], torch.tensor([-0.75, -0.25, 0.25, 0.75]))
    assert torch.allclose(grid[1, 1, :, 2], torch.tensor([-2 / 3, 0.0, 2 / 3]))


def _interior_spread(coords: bool) -> float:
    """Spread of the mask features over the interior cells of a uniform image (no content anywhere)."""
    torch.manual_seed(0)
    model = build_model({"backbone": {"pretrained": False}, "mask_decoder": {"dim": 32, "coords": coords}}, 2).eval()
    with torch.no_grad():
        features = model.mask_decoder(*model.backbone(torch.zeros(1, 3, 256, 256)))
    return float(features[0, :, 8:-8, 8:-8].flatten(1).std(dim=1).max())


def test_features_of_a_uniform_image_vary_with_position_only_with_coordinates():
    # without coordinates only the zero padding at the borders (through the receptive field) varies them
    assert _interior_spread(coords=True) > 10 * _interior_spread(coords=False)


def test_a_model_with_coordinates_exports_one_graph_for_every_resolution(tmp_path):
    torch.manual_seed(0)
    model = build_model({"backbone": {"pretrained": False}, "mask_decoder": {"dim": 32, "coords": True}}, 2).eval()
    report = export_model(model, ["a", "b"], tmp_path / "model", [(128, 96), (96, 128)])
    assert max(p.max_abs for p in report) < 1e-3
    engine = Engine(tmp_path / "model", threads=1)
    image = np.random.default_rng(0).integers(0, 255, (96, 128, 3), np.uint8)
    engine.infer(image)  # the coordinates follow the input's shape in the shared graph
