"""Hungarian matcher on hand-made cases and against brute force."""
import itertools

import pytest
import torch

from mobileinst_ros.model.matcher import HungarianMatcher, bce_cost, dice_cost, focal_class_cost

torch.set_num_threads(1)

BIG = 12.0  # a mask logit that means "certainly in" (sigmoid ~ 1 - 6e-6)


def square_masks(positions, size=8, side=3):
    """One [size,size] square mask per (row, col) top-left corner."""
    masks = torch.zeros(len(positions), size, size)
    for i, (r, c) in enumerate(positions):
        masks[i, r:r + side, c:c + side] = 1
    return masks


def logits_for(masks):
    return (masks * 2 - 1) * BIG


def test_dice_and_bce_costs_separate_equal_from_disjoint_masks():
    t = square_masks([(0, 0), (5, 5)]).flatten(1)
    p = logits_for(square_masks([(0, 0), (5, 5)])).flatten(1)
    d = dice_cost(p, t)
    assert d[0, 0] < 1e-3 and d[1, 1] < 1e-3
    assert float(d[0, 1]) == pytest.approx(1 - 1 / 19, abs=1e-4) and float(d[1, 0]) == pytest.approx(1 - 1 / 19, abs=1e-4)  # +1 smoothing
    b = bce_cost(p, t)
    assert b[0, 0] < 1e-3 and b[0, 1] > 1.0


def test_focal_class_cost_prefers_the_confident_class():
    logits = torch.tensor([[4.0, -4.0], [-4.0, 4.0]])
    cost = focal_class_cost(logits, torch.tensor([0, 1]))
    assert cost[0, 0] < cost[1, 0] and cost[1, 1] < cost[0, 1]


def test_masks_in_permuted_order_are_recovered():
    targets = square_masks([(0, 0), (0, 5), (5, 0)])
    order = [2, 0, 1]  # query q predicts target order[q]
    pred = logits_for(targets[order])
    queries = torch.cat([pred, logits_for(square_masks([(5, 5)]))])  # plus one query matching nothing
    labels = torch.tensor([0, 1, 0])
    logits = torch.zeros(1, 4, 2)
    (q, t), = HungarianMatcher()(logits, queries[None], [{"labels": labels, "masks": targets}])
    assert q.tolist() == [0, 1, 2]
    assert t.tolist() == order


def test_optimal_not_greedy():
    # 1-D "images" of 4 pixels. target 0 = {0,1}, target 1 = {2,3}; query 0 = {0,1,2}, query 1 = {0}.
    # dice costs (with +1 smoothing): q0-t0 1/6, q0-t1 1/2, q1-t0 1/4, q1-t1 3/4.
    # Greedy takes the smallest entry (q0-t0) and is left with q1-t1: 11/12 in total; the optimum
    # pairs q0-t1 and q1-t0: 3/4.
    targets = torch.zeros(2, 1, 4)
    targets[0, 0, :2] = 1
    targets[1, 0, 2:] = 1
    pred = torch.full((2, 1, 4), -BIG)
    pred[0, 0, :3] = BIG
    pred[1, 0, :1] = BIG
    matcher = HungarianMatcher(cost_class=0.0, cost_dice=1.0, cost_mask=0.0)
    labels = torch.tensor([0, 0])
    cost = matcher.cost_matrix(torch.zeros(2, 1), pred, labels, targets)
    assert cost.flatten().tolist() == pytest.approx([1 / 6, 1 / 2, 1 / 4, 3 / 4], abs=1e-4)
    (q, t), = matcher(torch.zeros(1, 2, 1), pred[None], [{"labels": labels, "masks": targets}])
    assert dict(zip(q.tolist(), t.tolist())) == {0: 1, 1: 0}


@pytest.mark.parametrize("seed", range(5))
def test_matches_brute_force_minimum(seed):
    g = torch.Generator().manual_seed(seed)
    n, m = 5, 3
    logits = torch.randn(1, n, 4, generator=g)
    masks = torch.randn(1, n, 6, 6, generator=g) * 3
    target = {"labels": torch.randint(0, 4, (m,), generator=g), "masks": (torch.rand(m, 6, 6, generator=g) > 0.5).float()}
    matcher = HungarianMatcher()
    cost = matcher.cost_matrix(logits[0], masks[0], target["labels"], target["masks"])
    (q, t), = matcher(logits, masks, [target])
    best = min(sum(cost[p[j], j] for j in range(m)) for p in itertools.permutations(range(n), m))
    assert len(q) == m and sorted(t.tolist()) == list(range(m))
    assert float(cost[q, t].sum()) == pytest.approx(float(best), rel=1e-5)


def test_empty_targets_and_more_targets_than_queries():
    matcher = HungarianMatcher()
    empty = {"labels": torch.zeros(0, dtype=torch.long), "masks": torch.zeros(0, 4, 4)}
    many = {"labels": torch.tensor([0, 1, 0]), "masks": square_masks([(0, 0), (1, 1), (2, 2)], size=4, side=2)}
    out = matcher(torch.zeros(2, 2, 2), torch.zeros(2, 2, 4, 4), [empty, many])
    assert out[0][0].numel() == 0 and out[0][1].numel() == 0
    assert len(out[1][0]) == 2 and len(set(out[1][1].tolist())) == 2


def test_bce_cost_is_the_mean_pixel_bce_of_every_pair():
    torch.manual_seed(0)
    logits, targets = torch.randn(5, 40) * 3, torch.rand(3, 40)
    expected = torch.stack([torch.stack([torch.nn.functional.binary_cross_entropy_with_logits(p, t)
                                         for t in targets]) for p in logits])
    assert torch.allclose(bce_cost(logits, targets), expected, atol=1e-5)


def test_a_batch_matches_as_its_images_one_by_one():
    g = torch.Generator().manual_seed(3)
    logits, masks = torch.randn(3, 6, 4, generator=g), torch.randn(3, 6, 5, 5, generator=g) * 3
    targets = [{"labels": torch.randint(0, 4, (m,), generator=g), "masks": (torch.rand(m, 5, 5, generator=g) > 0.5).float()}
               for m in (2, 0, 3)]
    matcher = HungarianMatcher()
    together = matcher(logits, masks, targets)
    for b in range(3):
        (q, t), = matcher(logits[b:b + 1], masks[b:b + 1], targets[b:b + 1])
        assert torch.equal(q, together[b][0]) and torch.equal(t, together[b][1])
