"""Size-fixed sessions (``engine._SIZE_FIXED_ROLES``) give what the shared any-size graphs give, one per input size."""
import numpy as np

from mobileinst_ros.runtime.engine import _SIZE_FIXED_ROLES, Engine


def test_size_fixed_sessions_match_the_any_size_graphs():
    engine = Engine("models/default", resolution=None)
    rng = np.random.default_rng(0)
    for w, h in ((640, 480), (384, 288)):
        prepared = engine.prepare(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        keyframe = engine.keyframe_features(prepared)
        reused = engine.reuse_features(prepared, keyframe)
        graphs = engine._graphs[prepared.resolution]
        x4, x5, x6 = graphs["deep"].session.run(["x4", "x5", "x6"], {"x3": keyframe.x3})
        np.testing.assert_allclose(keyframe.x6, x6, atol=1e-5)
        (mask_features,) = graphs["mask_decoder"].session.run(
            ["mask_features"], {"x3": keyframe.x3, "x4": x4, "x5": x5, "x6": x6})
        np.testing.assert_allclose(keyframe.mask_features, mask_features, atol=1e-5)
        (reused_features,) = graphs["mask_decoder_reuse"].session.run(
            ["mask_features"], {"x3": reused.x3, **keyframe.context})
        np.testing.assert_allclose(reused.mask_features, reused_features, atol=1e-5)
    # the shared export: one file per role, a size-fixed session per resolution for the roles where it pays
    for role in _SIZE_FIXED_ROLES:
        assert len(engine._graphs[(640, 480)][role]._sized) == 2
    assert not engine._graphs[(640, 480)]["instance_decoder"]._sized
