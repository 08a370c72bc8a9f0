#!/usr/bin/env python3
"""PEER in plain eager PyTorch, written the way the public PyTorch ports write it: the comparison
baseline for `trecvit bench peer`.

PEER (He 2024, "Mixture of A Million Experts"): N = n^2 single-neuron experts (u_i, v_i in R^D),
retrieved per head with product keys, f(x) = sum_heads sum_{i in top-k} g_i act(u_i . x) v_i with
g = softmax over each head's k scores. The formulation is the obvious one: `nn.Embedding` tables
looked up as [M, h, k, D] tensors, einsum sub-key scores, `topk` per half and over the k^2
candidate sums, einsums for the experts, autograd for every gradient (dense [N, D] table gradients
unless --embedding-sparse). The router matches the C++ ProductKeyRouter: a bias-free query
projection, BatchNorm1d over the h * d_k query features (batch statistics in training), sub-keys
[h, 2, n, d_k / 2]; expert id = first-half index * n + second-half index.
"""
import argparse
import json
import math
import os
import sys

def threads_from_argv(argv):
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "1"

# OpenBLAS reads its thread count when torch loads; OMP_WAIT_POLICY=PASSIVE as the C++ binary sets it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", threads_from_argv(sys.argv))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from trecvit_eager import median_seconds  # noqa: E402  (the same timing as the model baseline)


class PEER(nn.Module):
    def __init__(self, dim, num_experts, heads=8, topk=16, key_dim=128, embedding_sparse=False):
        super().__init__()
        n = math.isqrt(num_experts)
        if n * n != num_experts:
            raise ValueError(f"--experts: must be a perfect square, got {num_experts}")
        if key_dim % 2:
            raise ValueError(f"--key-dim: must be even, got {key_dim}")
        self.dim, self.n, self.heads, self.topk, self.key_dim = dim, n, heads, topk, key_dim
        self.query_proj = nn.Linear(dim, heads * key_dim, bias=False)
        self.batch_norm = nn.BatchNorm1d(heads * key_dim)
        self.sub_keys = nn.Parameter(torch.randn(heads, 2, n, key_dim // 2) / math.sqrt(key_dim))
        self.up = nn.Embedding(num_experts, dim, sparse=embedding_sparse)
        self.down = nn.Embedding(num_experts, dim, sparse=embedding_sparse)
        with torch.no_grad():  # initialised as the C++ PEER
            self.query_proj.weight.normal_(0, 1 / math.sqrt(dim))
            self.up.weight.normal_(0, 1 / math.sqrt(dim))
            self.down.weight.normal_(0, 1 / math.sqrt(heads * topk))

    def route(self, x):
        M, h, k, n = x.shape[0], self.heads, self.topk, self.n
        q = self.batch_norm(self.query_proj(x)).view(M, h, 2, self.key_dim // 2)
        sim = torch.einsum("mhpd,hpnd->mhpn", q, self.sub_keys)  # [M, h, 2, n]
        s1, i1 = sim[:, :, 0].topk(k, dim=-1)
        s2, i2 = sim[:, :, 1].topk(k, dim=-1)
        all_scores = (s1.unsqueeze(-1) + s2.unsqueeze(-2)).view(M, h, k * k)
        all_ids = (i1.unsqueeze(-1) * n + i2.unsqueeze(-2)).view(M, h, k * k)
        scores, pick = all_scores.topk(k, dim=-1)
        return all_ids.gather(-1, pick), scores  # [M, h, k] each

    def forward(self, x):
        ids, scores = self.route(x)
        u = self.up(ids)      # [M, h, k, D]
        v = self.down(ids)    # [M, h, k, D]
        a = F.gelu(torch.einsum("mhkd,md->mhk", u, x), approximate="tanh") * scores.softmax(-1)
        return torch.einsum("mhk,mhkd->md", a, v), ids


def status_bytes(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return -1


def bench(args):
    torch.manual_seed(0)
    m = PEER(args.dim, args.experts, args.heads, args.topk, args.key_dim, args.embedding_sparse)
    m.train()  # query BatchNorm on batch statistics, as `trecvit bench peer`
    params = list(m.parameters())
    x = torch.randn(args.tokens, args.dim, requires_grad=True)
    G = torch.randn(args.tokens, args.dim)
    with open("/proc/self/clear_refs", "w") as f:  # peak RSS from here on, as the C++ bench
        f.write("5")
    rss0 = status_bytes("VmRSS")
    with torch.no_grad():
        fwd = median_seconds(lambda: m(x), args.repeats)

    def fwd_bwd():
        for p in params:
            p.grad = None
        x.grad = None
        m(x)[0].backward(G)
    fb = median_seconds(fwd_bwd, args.repeats)
    row = {"variant": "eager_peer" + ("_sparse_embedding" if args.embedding_sparse else ""),
           "N": args.experts, "D": args.dim, "h": args.heads, "k": args.topk, "dk": args.key_dim,
           "tokens": args.tokens, "threads": torch.get_num_threads(), "torch_version": torch.__version__,
           "forward_s": fwd, "forward_backward_s": fb, "peak_rss_bytes": status_bytes("VmHWM"),
           "rss_before_bytes": rss0, "param_bytes": sum(p.numel() * p.element_size() for p in params),
           "tokens_per_s_forward": args.tokens / fwd, "tokens_per_s_forward_backward": args.tokens / fb}
    print(json.dumps(row))
    return 0


def check(args):
    """Loads `trecvit bench peer --set child=peer --set dump=FILE` (parameters, x, y, ids) and
    compares this implementation's train-mode output and expert ids with the C++ one."""
    z = np.load(args.check)
    up = torch.from_numpy(z["up"])
    N, D = up.shape
    sub_keys = torch.from_numpy(z["router.sub_keys"])
    h, _, n, dk2 = sub_keys.shape
    ids_ref = torch.from_numpy(z["ids"])
    m = PEER(D, N, h, ids_ref.shape[-1], 2 * dk2)
    with torch.no_grad():
        m.query_proj.weight.copy_(torch.from_numpy(z["router.query_proj.weight"]))
        m.batch_norm.weight.copy_(torch.from_numpy(z["router.batch_norm.weight"]))
        m.batch_norm.bias.copy_(torch.from_numpy(z["router.batch_norm.bias"]))
        m.sub_keys.copy_(sub_keys)
        m.up.weight.copy_(up)
        m.down.weight.copy_(torch.from_numpy(z["down"]))
        m.train()
        y, ids = m(torch.from_numpy(z["x"]))
    y_ref = torch.from_numpy(z["y"])
    same = (ids.sort(-1)[0] == ids_ref.sort(-1)[0]).all(-1).all(-1)  # [M]: same experts per head
    diff = (y - y_ref).abs().amax(-1)[same]
    out = {"tokens": int(y.shape[0]), "tokens_routed_identically": int(same.sum()),
           "max_abs_diff_identically_routed": float(diff.max()) if diff.numel() else None}
    out["ok"] = out["tokens_routed_identically"] >= args.min_identical * y.shape[0] and \
        (out["max_abs_diff_identically_routed"] or 0.0) < args.tol
    print(json.dumps(out))
    return 0 if out["ok"] else 1


def main(argv=None):
    p = argparse.ArgumentParser(description=(
        "PEER in eager PyTorch (nn.Embedding tables, einsum, topk): the baseline for `trecvit bench peer`. "
        "--bench times forward and forward+backward and reports peak memory; --check compares with the C++ PEER."))
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--bench", action="store_true", help="time forward and forward+backward; print JSON")
    mode.add_argument("--check", metavar="NPZ", help="compare with `trecvit bench peer --set child=peer --set dump=NPZ`")
    p.add_argument("--experts", type=int, default=1024 * 1024, help="N = n^2 single-neuron experts")
    p.add_argument("--dim", type=int, default=256, help="model width D")
    p.add_argument("--heads", type=int, default=8, help="retrieval heads h")
    p.add_argument("--topk", type=int, default=16, help="experts per head k")
    p.add_argument("--key-dim", type=int, default=128, help="query/key width d_k (d_k / 2 per half)")
    p.add_argument("--tokens", type=int, default=1024, help="tokens per batch")
    p.add_argument("--embedding-sparse", action="store_true", help="nn.Embedding(sparse=True): sparse table gradients")
    p.add_argument("--repeats", type=int, default=5, help="timed runs after one warm-up (median)")
    p.add_argument("--threads", type=int, default=1, help="ATen and OpenBLAS threads (>= 1)")
    p.add_argument("--tol", type=float, default=1e-5, help="--check: largest |output difference| that passes")
    p.add_argument("--min-identical", type=float, default=0.99,
                   help="--check: least fraction of tokens routed to the same experts (near-ties may flip)")
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error("--threads: must be >= 1")
    torch.set_num_threads(args.threads)
    return check(args) if args.check else bench(args)


if __name__ == "__main__":
    sys.exit(main())
