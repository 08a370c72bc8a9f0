#!/usr/bin/env python3
"""TRecViT in plain eager PyTorch: the comparison baseline for `trecvit bench model` / `bench stream`.

Written the way a PyTorch user would write the model from its equations (torch.nn.functional ops,
a Python loop for the RG-LRU scan; no torch.compile, no TorchScript, no custom kernels). Module
and parameter names follow the C++ blocks (blocks/*.cpp, models/trecvit.cpp), and so does the
token-major layout x: [B, N+1, T, D], which makes every token's time series a free view.
Only the dense MLP channel mixer is implemented; configs with other mixers are refused.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

if __name__ == "__main__":
    # OpenBLAS sizes its own thread pool when it loads: set it before torch. A passive OpenMP wait
    # keeps idle ATen workers from starving OpenBLAS's threads (the C++ binary does the same).
    _t = "1"
    for _i, _a in enumerate(sys.argv):
        if _a == "--threads" and _i + 1 < len(sys.argv):
            _t = sys.argv[_i + 1]
        elif _a.startswith("--threads="):
            _t = _a.split("=", 1)[1]
    for _var, _v in (("OPENBLAS_NUM_THREADS", _t), ("OMP_NUM_THREADS", _t), ("OMP_WAIT_POLICY", "PASSIVE")):
        os.environ.setdefault(_var, _v)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

RGLRU_C = 8.0               # log a = -c * r * softplus(p)
MAX_SQRT_GRADIENT = 1000.0  # the sqrt's backward clamps its input to >= 1 / (4 * max^2)
CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "configs")

# ----------------------------------------------------------------------------------------- config

DEFAULTS = dict(name="custom", image_size=224, patch_size=16, num_frames=32, width=768, depth=12, num_heads=12,
                mlp_dim=3072, conv_width=4, min_rad=0.5, rep_size=3072, num_classes=400, readout="mean",
                channel_mixer={"type": "mlp"}, layer_channel_mixers={})

def find_config(name_or_path):
    """A JSON path, or a shipped name looked up like the C++ tool: $TRECVIT_CONFIG_DIR, then configs/."""
    name = name_or_path if name_or_path.endswith(".json") else name_or_path + ".json"
    dirs = [d for d in (os.environ.get("TRECVIT_CONFIG_DIR"), CONFIG_DIR, "configs") if d]
    for path in [name_or_path] + [os.path.join(d, name) for d in dirs]:
        if os.path.isfile(path):
            return path
    sys.exit(f"config '{name_or_path}' not found (looked in {', '.join(dirs)})")

def load_config(name_or_path, image_size=0):
    """The config with the C++ defaults filled in; image_size > 0 overrides it, as bench_config does."""
    with open(find_config(name_or_path)) as f:
        c = {**DEFAULTS, **json.load(f)}
    c.setdefault("lru_width", 2 * c["width"])
    c.setdefault("lru_heads", c["num_heads"])
    size = image_size or c["image_size"]
    c["image_h"], c["image_w"] = (size, size) if isinstance(size, int) else size
    c["image_size"] = size
    # Dense MLP hidden width per layer; any other mixer is outside this baseline.
    c["mlp_hidden"] = []
    for i in range(c["depth"]):
        m = c["layer_channel_mixers"].get(str(i), c["channel_mixer"])
        if m.get("type", "mlp") != "mlp":
            sys.exit(f"config '{c['name']}': layer {i} uses a '{m['type']}' channel mixer; this eager baseline "
                     "implements only the dense MLP mixer ({\"type\": \"mlp\"})")
        c["mlp_hidden"].append(m.get("hidden", c["mlp_dim"]))
    P = c["patch_size"]
    assert c["image_h"] % P == 0 and c["image_w"] % P == 0, "image size must be divisible by patch_size"
    c["grid"] = (c["image_h"] // P, c["image_w"] // P)
    c["num_tokens"] = c["grid"][0] * c["grid"][1] + 1  # + CLS
    return c

# ----------------------------------------------------------------------------------------- blocks

def gelu_tanh(x):
    return F.gelu(x, approximate="tanh")  # jax.nn.gelu's default, used everywhere in the model

def layer_norm(dim):
    return nn.LayerNorm(dim, eps=1e-6)  # Flax's eps, not PyTorch's 1e-5

@torch.no_grad()
def init_linear(lin, std=None, bias_std=0.0):
    """The C++ init: normal(0, std) kernels (Xavier uniform without std); biases 0 or normal(0, bias_std)."""
    lin.weight.normal_(0, std) if std else nn.init.xavier_uniform_(lin.weight)
    lin.bias.normal_(0, bias_std) if bias_std else lin.bias.zero_()

class RMSNorm(nn.Module):
    """y = x * rsqrt(mean(x^2) + eps) * (1 + scale), scale initialised to 0."""
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        var = x.square().mean(-1, keepdim=True)
        return x * torch.rsqrt(var + self.eps) * (self.scale + 1)

class Conv1D(nn.Module):
    """Causal depthwise conv over time: out[t] = sum_k w[K-1-k] x[t-k] + b; the LAST tap meets frame t."""
    def __init__(self, width, kernel_size):
        super().__init__()
        self.K = kernel_size
        self.w = nn.Parameter(torch.randn(kernel_size, width) * math.sqrt(0.01 / kernel_size))
        self.b = nn.Parameter(torch.zeros(width))

    def forward(self, x, tail=None):
        """x [B, T, L]; tail [B, K-1, L]: the previous K-1 inputs (zeros offline). Returns (out, new tail)."""
        K, T = self.K, x.shape[1]
        if tail is None:
            tail = x.new_zeros(x.shape[0], K - 1, x.shape[2])
        xx = torch.cat([tail, x], 1)  # xx[t + k] meets tap w[k]
        out = self.b + xx[:, K - 1:K - 1 + T] * self.w[K - 1]
        for k in range(K - 1):
            out = out + xx[:, k:k + T] * self.w[k]
        return out, xx[:, T:].detach()

class SqrtBoundDerivative(torch.autograd.Function):
    """sqrt whose gradient is at most MAX_SQRT_GRADIENT (RecurrentGemma's, needed when a -> 1)."""
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sqrt(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 0.5 / torch.sqrt(x.clamp_min(1.0 / (4.0 * MAX_SQRT_GRADIENT ** 2)))

class RGLRU(nn.Module):
    """Real-Gated Linear Recurrent Unit; gates are block-diagonal linears of the conv output v."""
    def __init__(self, width, num_heads, min_rad=0.5, max_rad=0.999):
        super().__init__()
        self.H, bw = num_heads, width // num_heads
        std = math.sqrt(1.0 / bw)
        self.input_gate_w = nn.Parameter(torch.randn(num_heads, bw, bw) * std)
        self.input_gate_b = nn.Parameter(torch.zeros(num_heads, bw))
        self.a_gate_w = nn.Parameter(torch.randn(num_heads, bw, bw) * std)
        self.a_gate_b = nn.Parameter(torch.zeros(num_heads, bw))
        # a^2 uniform in [min_rad^2, max_rad^2]; p is the inverse softplus of -log a.
        lo, hi = min_rad ** 2, max_rad ** 2
        log_a = 0.5 * torch.log(torch.rand(width, dtype=torch.float64) * (hi - lo) + lo + 1e-8)
        self.a_param = nn.Parameter(torch.log(torch.expm1(-log_a)).float())

    def block_diagonal(self, v, w, b):
        B, T, L = v.shape
        vh = v.reshape(B, T, self.H, L // self.H)
        return (torch.einsum("bthi,hij->bthj", vh, w) + b).reshape(B, T, L)

    def forward(self, v, h0=None, reset=None):
        """v [B, T, L]; h0 [B, L] or None; reset [B] bool: row starts a sequence at t = 0 (None: all do)."""
        B, T, L = v.shape
        gate_x = torch.sigmoid(self.block_diagonal(v, self.input_gate_w, self.input_gate_b))
        gate_a = torch.sigmoid(self.block_diagonal(v, self.a_gate_w, self.a_gate_b))
        log_a = -RGLRU_C * gate_a * F.softplus(self.a_param)
        a, a_square = torch.exp(log_a), torch.exp(2 * log_a)
        gated_x = v * gate_x
        multiplier = SqrtBoundDerivative.apply(1 - a_square)
        # Time 0 of a new sequence: multiplier 1 and a = 0 (the incoming state is ignored).
        is_start = v.new_zeros(B, T, 1)
        is_start[:, 0, 0] = 1.0 if reset is None else reset.to(v.dtype)
        multiplier = is_start + (1 - is_start) * multiplier
        normalized_x = gated_x * multiplier
        a = a * (1 - is_start)
        # Sequential scan in fp32: h_t = a_t * h_{t-1} + normalized_x_t.
        h = v.new_zeros(B, L) if h0 is None else h0
        ys = []
        for t in range(T):
            h = a[:, t] * h + normalized_x[:, t]
            ys.append(h)
        return torch.stack(ys, 1)

class RecurrentBlock(nn.Module):
    """y = GELU(W_y u + b_y);  v = Conv1D(W_x u + b_x);  out = W_out(RGLRU(v) * y) + b_out."""
    def __init__(self, width, lru_width, num_heads, conv_width, min_rad, final_w_init_variance_scale):
        super().__init__()
        self.linear_y = nn.Linear(width, lru_width)
        self.linear_x = nn.Linear(width, lru_width)
        self.linear_out = nn.Linear(lru_width, width)
        self.conv_1d = Conv1D(lru_width, conv_width)
        self.rg_lru = RGLRU(lru_width, num_heads, min_rad)
        init_linear(self.linear_y, std=math.sqrt(1.0 / width))  # variance_scaling(fan_in, normal)
        init_linear(self.linear_x, std=math.sqrt(1.0 / width))
        init_linear(self.linear_out, std=math.sqrt(final_w_init_variance_scale / lru_width))

    def forward(self, x, state=None, reset=None):
        """x [B, T, D]; state (h [B, L], conv_tail [B, K-1, L]) or None. Returns (out, new state)."""
        y = gelu_tanh(self.linear_y(x))
        v = self.linear_x(x)
        if state is None:
            v, tail = self.conv_1d(v)
            h = self.rg_lru(v)
        else:
            v, tail = self.conv_1d(v, state[1])
            h = self.rg_lru(v, state[0], reset)
        return self.linear_out(h * y), (h[:, -1].detach(), tail)

class SpatialAttention(nn.Module):
    """MHSA over the tokens of each frame (biases on q, k, v, out; logits scaled by 1/sqrt(head_dim))."""
    def __init__(self, dim, num_heads):
        super().__init__()
        self.H = num_heads
        self.query, self.key, self.value, self.out = (nn.Linear(dim, dim) for _ in range(4))
        for lin in (self.query, self.key, self.value, self.out):
            init_linear(lin)

    def forward(self, x):
        B, N, T, D = x.shape  # [B, N, T, D]: attention mixes the N tokens of each (b, t)
        H, hd = self.H, D // self.H

        def heads(y):
            return y.view(B, N, T, H, hd).permute(0, 2, 3, 1, 4).reshape(B * T * H, N, hd)

        q, k, v = heads(self.query(x)) / math.sqrt(hd), heads(self.key(x)), heads(self.value(x))
        o = torch.bmm(torch.softmax(torch.bmm(q, k.transpose(1, 2)), -1), v)
        o = o.view(B, T, H, N, hd).permute(0, 3, 1, 2, 4).reshape(B, N, T, D)
        return self.out(o)

class MLP(nn.Module):
    """The ViT MLP: Dense -> GELU (tanh) -> Dense."""
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        for lin in (self.fc1, self.fc2):
            init_linear(lin, bias_std=1e-6)

    def forward(self, x):
        return self.fc2(gelu_tanh(self.fc1(x)))

class TRecViTLayer(nn.Module):
    """x = x + RecurrentBlock(RMSNorm(x)) per token over time; then a pre-LN ViT block per frame."""
    def __init__(self, c, hidden):
        super().__init__()
        D = c["width"]
        self.temporal_pre_norm = RMSNorm(D)
        self.recurrent_block = RecurrentBlock(D, c["lru_width"], c["lru_heads"], c["conv_width"], c["min_rad"],
                                              2.0 / c["depth"])
        self.norm1 = layer_norm(D)
        self.attention = SpatialAttention(D, c["num_heads"])
        self.norm2 = layer_norm(D)
        self.mixer = MLP(D, hidden)

    def forward(self, x, state=None, reset=None):
        B, N, T, D = x.shape
        series = x.reshape(B * N, T, D)  # every token's time series, weights shared (CLS included)
        r, state = self.recurrent_block(self.temporal_pre_norm(series), state, reset)
        y = (series + r).view(B, N, T, D)
        y = y + self.attention(self.norm1(y))
        y = y + self.mixer(self.norm2(y))
        return y, state

class TRecViT(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        D, P = c["width"], c["patch_size"]
        self.embedding = nn.Linear(P * P * 3, D)  # the (1, P, P) patch conv, flattened over (kh, kw, rgb)
        self.pos_embedding = nn.Parameter(torch.randn(1, c["num_tokens"] - 1, D) / math.sqrt(D))
        self.cls = nn.Parameter(torch.zeros(1, 1, D))
        self.layers = nn.ModuleList(TRecViTLayer(c, c["mlp_hidden"][i]) for i in range(c["depth"]))
        self.encoder_norm = layer_norm(D)
        self.pre_logits = nn.Linear(D, c["rep_size"])
        self.cls_head = nn.Linear(c["rep_size"], c["num_classes"])
        for lin in (self.embedding, self.pre_logits, self.cls_head):  # Flax's lecun_normal
            init_linear(lin, std=1.0 / math.sqrt(lin.weight.shape[1]))

    def tokenize(self, frames):
        """uint8 (or float in [0, 1]) frames [B, T, H, W, 3] -> tokens [B, N+1, T, D], CLS first."""
        c = self.c
        B, T, Hh, Ww, _ = frames.shape
        assert (Hh, Ww) == (c["image_h"], c["image_w"]), f"frames are {Hh}x{Ww}, the model wants {c['image_h']}x{c['image_w']}"
        (gh, gw), P, D = c["grid"], c["patch_size"], c["width"]
        # Permute while still uint8 (a quarter of the bytes), then scale to [0, 1]; no mean/std.
        patches = frames.view(B, T, gh, P, gw, P, 3).permute(0, 2, 4, 1, 3, 5, 6).reshape(B, gh * gw, T, P * P * 3)
        x = patches.to(self.embedding.weight.dtype)
        x = x / 255 if patches.dtype == torch.uint8 else x
        x = self.embedding(x) + self.pos_embedding.unsqueeze(2)  # position embedding before CLS
        return torch.cat([self.cls.view(1, 1, 1, D).expand(B, 1, T, D), x], 1)

    def encode(self, x, states=None, reset=None):
        """Tokens -> z_t = tanh(pre_logits(LN(cls_t))) [B, T, rep], and the layers' new states."""
        new_states = []
        for i, layer in enumerate(self.layers):
            x, s = layer(x, None if states is None else states[i], reset)
            new_states.append(s)
        return torch.tanh(self.pre_logits(self.encoder_norm(x[:, 0]))), new_states

    def forward(self, frames):
        """Clip logits [B, classes]: the head of the mean (or last) z over frames."""
        z, _ = self.encode(self.tokenize(frames))
        return self.cls_head(z[:, -1] if self.c["readout"] == "last" else z.mean(1))

    # Streaming: per layer the RG-LRU state [B*(N+1), L] and the conv's last K-1 inputs, plus the
    # running sum of z for the mean readout. Constant size in the number of frames.
    def init_stream(self, batch):
        rows, L, K = batch * self.c["num_tokens"], self.c["lru_width"], self.c["conv_width"]
        p = self.pos_embedding
        return {"layers": [(p.new_zeros(rows, L), p.new_zeros(rows, K - 1, L)) for _ in self.layers],
                "frames_seen": 0, "z_sum": p.new_zeros(batch, self.c["rep_size"])}

    def step(self, s, frames):
        """Advances the stream by frames [B, t, H, W, 3]; returns the logits after each new frame [B, t, classes]."""
        B, t = frames.shape[:2]
        reset = torch.full((B * self.c["num_tokens"],), s["frames_seen"] == 0)  # first-frame rule
        z, s["layers"] = self.encode(self.tokenize(frames), s["layers"], reset)
        if self.c["readout"] == "last":
            logits = self.cls_head(z)
        else:  # the head is affine: logits of the running mean = clip logits after each frame
            count = torch.arange(s["frames_seen"] + 1, s["frames_seen"] + t + 1, dtype=z.dtype).view(1, -1, 1)
            logits = self.cls_head((s["z_sum"].unsqueeze(1) + z.cumsum(1)) / count)
        s["z_sum"] = s["z_sum"] + z.sum(1).detach()
        s["frames_seen"] += t
        return logits

# ------------------------------------------------------------------------------------ npz weights

def flax_params(m):
    """(released key, parameter, released shape, is a Dense-like [in, out] kernel) for every parameter."""
    D, H, P = m.c["width"], m.c["num_heads"], m.c["patch_size"]
    out = []

    def add(key, p, shape=None, kernel=False):  # default shape: as stored here (gate w[h] is [in, out])
        out.append((key, p, tuple(shape or p.shape), kernel))

    def dense(key, lin, kernel_shape=None, bias_shape=None):
        add(key + "/kernel", lin.weight, kernel_shape or (lin.weight.shape[1], lin.weight.shape[0]), True)
        add(key + "/bias", lin.bias, bias_shape)

    def norm(key, ln):
        add(key + "/scale", ln.weight), add(key + "/bias", ln.bias)

    dense("tokenizer/embedding", m.embedding, (1, P, P, 3, D))
    add("tokenizer/pos_embedding", m.pos_embedding), add("tokenizer/cls", m.cls)
    for i, layer in enumerate(m.layers):
        r, rb = f"encoder/residualblock_{i:02d}", layer.recurrent_block
        add(r + "/temporal_pre_norm/scale", layer.temporal_pre_norm.scale)
        for name in ("linear_y", "linear_x", "linear_out"):
            dense(f"{r}/recurrent_block/{name}", getattr(rb, name))
        for name, p in rb.conv_1d.named_parameters(prefix="conv_1d"):
            add(f"{r}/recurrent_block/{name.replace('.', '/')}", p)
        lru = rb.rg_lru
        for name, p in (("input_gate/w", lru.input_gate_w), ("input_gate/b", lru.input_gate_b),
                        ("a_gate/w", lru.a_gate_w), ("a_gate/b", lru.a_gate_b), ("a_param", lru.a_param)):
            add(f"{r}/recurrent_block/rg_lru/{name}", p)
        e = f"encoder/encoderblock_{i}"
        a = e + "/MultiHeadDotProductAttention_0"
        norm(e + "/LayerNorm_0", layer.norm1)
        for name in ("query", "key", "value"):
            dense(f"{a}/{name}", getattr(layer.attention, name), (D, H, D // H), (H, D // H))
        dense(a + "/out", layer.attention.out, (H, D // H, D))
        norm(e + "/LayerNorm_1", layer.norm2)
        dense(e + "/MlpBlock_0/Dense_0", layer.mixer.fc1)
        dense(e + "/MlpBlock_0/Dense_1", layer.mixer.fc2)
    norm("encoder/encoder_norm", m.encoder_norm)
    dense("decoder/pre_logits", m.pre_logits)
    dense("decoder/cls_head", m.cls_head)
    return out

def load_npz(m, path):
    """Copies a released-layout .npz into the model; missing, extra or mis-shaped keys are errors."""
    arrays = np.load(path)
    used = set()
    with torch.no_grad():
        for key, p, shape, is_kernel in flax_params(m):
            if key not in arrays:
                sys.exit(f"{path}: missing key '{key}'")
            arr = torch.from_numpy(np.asarray(arrays[key], dtype=np.float32))
            if tuple(arr.shape) != shape:
                sys.exit(f"{path}: key '{key}' has shape {tuple(arr.shape)}, expected {shape}")
            # Flax kernels are [in, out] (flattened over their leading axes); nn.Linear weights are [out, in].
            p.copy_(arr.reshape(p.shape[1], p.shape[0]).t() if is_kernel else arr.reshape(p.shape))
            used.add(key)
    extra = sorted(set(arrays.files) - used)
    if extra:
        sys.exit(f"{path}: unexpected key '{extra[0]}' (not part of this architecture)")

# ------------------------------------------------------------------------------------------ modes

def check(args):
    """Offline clip logits, and the same clip streamed frame by frame; compares to a reference JSON."""
    model = TRecViT(load_config(args.config)).eval()
    if args.npz:
        load_npz(model, args.npz)
    clip = torch.from_numpy(np.load(args.clip))
    assert clip.dim() == 4 and clip.shape[3] == 3, f"{args.clip}: expected [T, H, W, 3], got {tuple(clip.shape)}"
    frames = clip.unsqueeze(0)
    with torch.no_grad():
        logits = model(frames)[0]
        s = model.init_stream(1)
        per_frame = torch.cat([model.step(s, frames[:, t:t + 1])[0] for t in range(frames.shape[1])])
    out = {"logits": logits.tolist(), "per_frame": per_frame.tolist(),
           "max_abs_diff_stream_vs_offline": (per_frame[-1] - logits).abs().max().item()}
    if args.reference:  # `trecvit predict --json [--per-frame]` output
        with open(args.reference) as f:
            ref = json.load(f)
        # With --per-frame, predict's "logits" are its streamed ones: compare them with ours.
        ours = per_frame[-1] if "per_frame" in ref else logits
        out["max_abs_diff_vs_reference"] = (ours.double() - torch.tensor(ref["logits"])).abs().max().item()
        if "per_frame" in ref:
            out["max_abs_diff_per_frame_vs_reference"] = (
                per_frame.double() - torch.tensor(ref["per_frame"])).abs().max().item()
    out["ok"] = all(v < args.tol for k, v in out.items() if k.startswith("max_abs_diff"))
    print(json.dumps(out))
    return 0 if out["ok"] else 1

def median_seconds(fn, repeats):
    """Median wall time of fn() over `repeats` runs after one warm-up run (as the C++ harness)."""
    fn()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)

def bench(args):
    """--bench: forward and forward+backward medians; --bench-stream: the per-frame streaming step."""
    c = load_config(args.config, args.size)
    torch.manual_seed(0)
    model = TRecViT(c)
    B, T = args.batch, args.frames
    row = {"config": c["name"], "image_size": c["image_size"], "frames": T, "batch": B,
           "threads": torch.get_num_threads(), "torch_version": torch.__version__}
    if args.bench_stream:  # state carried between steps; the mean readout included, as in C++ step()
        frame = torch.randint(0, 256, (B, 1, c["image_h"], c["image_w"], 3), dtype=torch.uint8)
        model.eval()
        with torch.no_grad():
            s = model.init_stream(B)
            row["step_s"] = median_seconds(lambda: model.step(s, frame), T)  # warm-up = the first frame
        row["frames_per_s"] = B / row["step_s"]
    else:
        frames = torch.randint(0, 256, (B, T, c["image_h"], c["image_w"], 3), dtype=torch.uint8)
        model.eval()
        with torch.no_grad():
            row["forward_s"] = median_seconds(lambda: model(frames), args.repeats)
        model.train()

        def fwd_bwd():
            model.zero_grad(set_to_none=True)  # as the C++ trainer (and PyTorch 2's default)
            model(frames).sum().backward()
        row["forward_backward_s"] = median_seconds(fwd_bwd, args.repeats)
        row["frames_per_s_forward"] = B * T / row["forward_s"]
    print(json.dumps(row))
    return 0

def main(argv=None):
    p = argparse.ArgumentParser(description=(
        "TRecViT in eager PyTorch: a parity check against the C++ model, and the baseline for `trecvit bench model` "
        "(--bench) and `trecvit bench stream` (--bench-stream). Only the dense MLP channel mixer is supported: "
        "configs with other mixers (peer, pkm, moe, sigma_moe, ...) are refused."))
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="print the clip logits (offline and streamed) as JSON")
    mode.add_argument("--bench", action="store_true", help="time forward and forward+backward; print JSON")
    mode.add_argument("--bench-stream", action="store_true", help="time the per-frame streaming step; print JSON")
    p.add_argument("--config", default="small", help="config JSON file or shipped name (tiny, small, base, ...)")
    p.add_argument("--npz", help="--check: weights in the released .npz layout (`trecvit export`); default random")
    p.add_argument("--clip", help="--check: uint8 clip .npy [T, H, W, 3] (`trecvit synth-clip`)")
    p.add_argument("--reference", help="--check: `trecvit predict --json [--per-frame]` output to compare with")
    p.add_argument("--tol", type=float, default=1e-4, help="--check: largest |logit difference| that passes")
    p.add_argument("--size", type=int, default=0, help="bench: square image size (default: the config's)")
    p.add_argument("--frames", type=int, default=4, help="--bench: frames per clip; --bench-stream: timed steps")
    p.add_argument("--batch", type=int, default=1, help="bench: clips (or streams) per batch")
    p.add_argument("--repeats", type=int, default=5, help="--bench: timed runs after one warm-up (median)")
    p.add_argument("--threads", type=int, default=1, help="ATen and OpenBLAS threads (>= 1)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.check and not args.clip:
        p.error("--check needs --clip")
    return check(args) if args.check else bench(args)

if __name__ == "__main__":
    sys.exit(main())
