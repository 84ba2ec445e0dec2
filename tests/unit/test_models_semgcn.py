"""SemGCN keypoint encoder: shapes, adjacency weighting and receptive field."""
import pytest
import torch

from hcmoco.models import SemGCN, SemGraphConv, adjacency_from_edges

torch.set_num_threads(1)
CHAIN = [(i, i + 1) for i in range(13)]  # 14 joints on a path


def test_adjacency_from_edges():
    adj = adjacency_from_edges(4, [(0, 1), (1, 2)])
    assert adj.tolist() == [[True, True, False, False], [True, True, True, False],
                            [False, True, True, False], [False, False, False, True]]
    with pytest.raises(ValueError):
        adjacency_from_edges(3, [(0, 3)])


def test_weighted_adjacency_is_softmax_over_neighbours():
    adj = adjacency_from_edges(5, CHAIN[:4])
    conv = SemGraphConv(2, 3, adj)
    with torch.no_grad():
        conv.e.copy_(torch.randn(conv.e.shape))
    a = conv.weighted_adjacency()
    torch.testing.assert_close(a.sum(1), torch.ones(5))
    assert (a[~adj] == 0).all() and (a[adj] > 0).all()
    # row 1: softmax of its three learnable weights (joints 0, 1, 2)
    rows, cols = conv.rows, conv.cols
    e1 = conv.e[rows == 1]
    torch.testing.assert_close(a[1, cols[rows == 1]], torch.softmax(e1, 0))


def test_one_graph_conv_sees_only_neighbours():
    conv = SemGraphConv(2, 4, adjacency_from_edges(14, CHAIN))
    x = torch.randn(1, 14, 2)
    y = conv(x)
    far, near = x.clone(), x.clone()
    far[0, 7] += 1.0  # two hops from joint 5
    near[0, 6] += 1.0  # one hop from joint 5
    assert torch.equal(conv(far)[0, 5], y[0, 5])
    assert not torch.allclose(conv(near)[0, 5], y[0, 5])
    # self and neighbour use different weights (W0 vs W1)
    assert not torch.allclose(conv.W[0], conv.W[1])


def test_full_encoder_shapes_and_receptive_field():
    torch.manual_seed(0)
    net = SemGCN(14, CHAIN).eval().double()  # 1 + 2 * 4 + 1 = 10 graph convs
    x = torch.randn(3, 14, 2, dtype=torch.float64)
    with torch.no_grad():
        y = net(x)
        assert y.shape == (3, 14, 128)
        x2 = x.clone()
        x2[:, 11] = 5.0
        y2 = net(x2)
    assert torch.equal(y2[:, 0], y[:, 0])  # 11 hops away: outside the field
    assert not torch.equal(y2[:, 1], y[:, 1])  # 10 hops: inside (weakly: float64)
    assert len(net.blocks) == 4
    with pytest.raises(ValueError, match="joints"):
        net(torch.randn(2, 13, 2, dtype=torch.float64))
