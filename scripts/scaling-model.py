#!/usr/bin/env python3
"""Predicted data-parallel scaling of a TRecViT training step (docs/DISTRIBUTED.md).

step time  T(N) = t_c + max(0, t_ar(N) - 2/3 t_c)   (the allreduce overlaps the backward, ~2/3 of t_c)
compute    t_c  = b * F / R                          (b clips per node, F training FLOPs per clip, R node FLOP/s)
allreduce  t_ar = 2 (N-1)/N * G / min(link, cap) + buckets * 2 (N-1) * alpha   (ring; G gradient bytes)
efficiency E(N) = t_c / T(N); throughput N * b / T(N) clips/s.

Inputs default to what `trecvit bench allreduce` and `trecvit info` measure on this machine class;
every one can be changed on the command line (see --help)."""
import argparse

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--node-flops", type=float, default=110e9, help="achieved training FLOP/s of one node (measured: 2-core node)")
p.add_argument("--cap", type=float, default=0.94e9, help="bytes/s one node's Gloo allreduce sustains (bench allreduce bus bandwidth)")
p.add_argument("--alpha", type=float, default=100e-6, help="seconds per ring hop and message (network + software latency)")
p.add_argument("--bucket", type=float, default=4 * 2**20, help="gradient bucket bytes")
p.add_argument("--clips-per-node", type=int, default=8, help="clips per node per step")
p.add_argument("--speedup", type=float, default=1.0, help="what-if: nodes this many times faster at compute")
a = p.parse_args()

# trecvit info: parameters and forward FLOPs per frame at 224 px, 32 frames (training ~3x forward).
models = {"small": (37_154_704, 14_328_932_352 * 32 * 3), "base": (136_778_128, 53_753_597_952 * 32 * 3)}
print(f"node: {a.node_flops * a.speedup / 1e9:.0f} GFLOP/s, allreduce cap {a.cap / 1e9:.2f} GB/s, alpha {a.alpha * 1e6:.0f} us, "
      f"{a.clips_per_node} clips per node per step, buckets of {a.bucket / 2**20:.0f} MB\n")
print("| model | link | nodes | compute s/step | allreduce s/step | efficiency | clips/s |")
print("|---|---|---|---|---|---|---|")
for name, (params, flops) in models.items():
    grad = params * 4
    t_c = a.clips_per_node * flops / (a.node_flops * a.speedup)
    for gbit in (10, 100):
        bw = min(gbit * 1e9 / 8, a.cap)
        for n in (8, 64, 256):
            t_ar = 2 * (n - 1) / n * grad / bw + -(-grad // a.bucket) * 2 * (n - 1) * a.alpha
            t = t_c + max(0.0, t_ar - 2 / 3 * t_c)
            print(f"| {name} | {gbit} Gbit/s | {n} | {t_c:.3g} | {t_ar:.3g} | {100 * t_c / t:.1f}% | {n * a.clips_per_node / t:.3g} |")
