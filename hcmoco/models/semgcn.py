"""SemGCN keypoint encoder (Zou et al., "Semantic Graph Convolutional Networks for 3D Human
Pose Regression", CVPR 2019), the keypoint branch of HCMoCo.

Semantic graph convolution, for node features X (J, C_in):
    A~ = softmax_row(M (.) A)   with M learnable on the edges of A (self-loops included),
                                 -inf off the graph, so row i is a distribution over N(i) + {i}
    X'_i = A~_ii W_0 x_i + sum_{j in N(i)} A~_ij W_1 x_j + b
One weight for the node itself and one shared by its neighbours, as in the SemGCN code.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def adjacency_from_edges(num_joints: int, edges: Sequence[tuple[int, int]]) -> Tensor:
    """Boolean (J, J) adjacency: undirected edges plus self-loops."""
    adj = torch.eye(num_joints, dtype=torch.bool)
    for a, b in edges:
        if not (0 <= a < num_joints and 0 <= b < num_joints):
            raise ValueError(f"edge ({a}, {b}) outside 0..{num_joints - 1}")
        adj[a, b] = adj[b, a] = True
    return adj


class SemGraphConv(nn.Module):
    """x: (B, J, C_in) -> (B, J, C_out); mixes only graph neighbours (one hop)."""

    def __init__(self, in_dim: int, out_dim: int, adj: Tensor):
        super().__init__()
        self.W = nn.Parameter(torch.empty(2, in_dim, out_dim))
        nn.init.xavier_uniform_(self.W, gain=1.414)
        rows, cols = adj.nonzero(as_tuple=True)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)
        self.register_buffer("eye", torch.eye(adj.shape[0]), persistent=False)
        self.e = nn.Parameter(torch.ones(rows.numel()))  # uniform weighting at init
        self.bias = nn.Parameter(torch.empty(out_dim).uniform_(-out_dim ** -0.5, out_dim ** -0.5))

    def weighted_adjacency(self) -> Tensor:
        """(J, J) row-stochastic adjacency softmax_j(M_ij), zero off the graph."""
        j = self.eye.shape[0]
        logits = self.e.new_full((j, j), float("-inf")).index_put((self.rows, self.cols), self.e)
        return torch.softmax(logits, dim=1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.weighted_adjacency()
        h0, h1 = x @ self.W[0], x @ self.W[1]
        return (a * self.eye) @ h0 + (a * (1 - self.eye)) @ h1 + self.bias


class GraphConvBNReLU(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, adj: Tensor):
        super().__init__()
        self.gconv = SemGraphConv(in_dim, out_dim, adj)
        self.bn = nn.BatchNorm1d(out_dim)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        x = self.gconv(x)
        return self.relu(self.bn(x.transpose(1, 2)).transpose(1, 2))


class ResGraphBlock(nn.Module):
    """Two graph convs (each + BN + ReLU) with an identity shortcut, as SemGCN's _ResGraphConv."""

    def __init__(self, dim: int, adj: Tensor):
        super().__init__()
        self.gconv1 = GraphConvBNReLU(dim, dim, adj)
        self.gconv2 = GraphConvBNReLU(dim, dim, adj)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.gconv2(self.gconv1(x))


class SemGCN(nn.Module):
    """Keypoint encoder: (B, J, in_dim) root-relative 2D joints -> (B, J, out_dim) per joint.

    input graph conv in_dim->hidden + BN + ReLU, `num_blocks` residual blocks of two graph
    convs hidden->hidden, output graph conv hidden->out_dim (no BN / ReLU).
    """

    def __init__(self, num_joints: int, edges: Sequence[tuple[int, int]], in_dim: int = 2,
                 hidden: int = 128, out_dim: int = 128, num_blocks: int = 4):
        super().__init__()
        adj = adjacency_from_edges(num_joints, edges)
        self.num_joints = num_joints
        self.gconv_input = GraphConvBNReLU(in_dim, hidden, adj)
        self.blocks = nn.Sequential(*[ResGraphBlock(hidden, adj) for _ in range(num_blocks)])
        self.gconv_output = SemGraphConv(hidden, out_dim, adj)
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] != self.num_joints:
            raise ValueError(f"expected {self.num_joints} joints, got input {tuple(x.shape)}")
        return self.gconv_output(self.blocks(self.gconv_input(x)))
