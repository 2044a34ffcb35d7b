#!/usr/bin/env python3
"""GPT-2 124M in plain PyTorch: the side-by-side speed reference for pptrain on one GPU.

The same model as pptrain's gpt2-124m (L=12, C=768, NH=12, V=50257 padded to Vp=50304, tied
head, pre-LN blocks, tanh GELU, biases everywhere but the head), written here as a small
module rather than transformers' class so that every op is visible and matches ours.
One training step as pptrain's: bf16 autocast (fp32 master weights), causal attention through
F.scaled_dot_product_attention restricted to the flash backend, fused AdamW with weight
decay on 2-D weights only, grad-norm clip at 1.0; torch.compile on the model unless
--no-compile. Random tokens, B=16, T=1024; CUDA events around whole steps after warm-up,
median reported.

MFU uses the project's one definition (lib/metrics/throughput.cpp): model FLOPs per token
6*N + 12*L*C*T (PaLM), N = unique parameters (wte once, padded), over 989e12 (H100/H200
bf16 dense peak). Prints '#' info lines, one markdown table row and a TORCH_SUMMARY line.
Exit codes: 0 measured, 1 failed (e.g. non-finite loss), 77 no torch or no CUDA.
`--device cpu` runs the same code on the CPU: a smoke test of this script where there is no
GPU (its figures mean nothing; MFU is still divided by the GPU's peak).
"""
import argparse
import math
import statistics
import sys
import time

H200_BF16_PEAK_FLOPS = 989e12  # = kH200Bf16PeakFlops in lib/metrics/throughput.h


def model_flops_per_token(n_params, n_layer, channels, seq_len):
    # = pptrain::model_flops_per_token (lib/metrics/throughput.cpp)
    return 6.0 * n_params + 12.0 * n_layer * channels * seq_len


def mfu(tokens_per_second, flops_per_token, peak=H200_BF16_PEAK_FLOPS):
    return tokens_per_second * flops_per_token / peak if peak > 0 else 0.0


def build_model(torch, V, Vp, maxT, L, NH, C):
    nn, F = torch.nn, torch.nn.functional

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
            self.qkv, self.attproj = nn.Linear(C, 3 * C), nn.Linear(C, C)
            self.fc, self.fcproj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

        def forward(self, x):
            B, T, _ = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
            q, k, v = (t.view(B, T, NH, C // NH).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.attproj(y.transpose(1, 2).reshape(B, T, C))
            return x + self.fcproj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))

    class GPT2(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(Vp, C), nn.Embedding(maxT, C)
            self.blocks = nn.ModuleList(Block() for _ in range(L))
            self.lnf = nn.LayerNorm(C)
            self.head = nn.Linear(C, Vp, bias=False)
            self.head.weight = self.wte.weight  # tied, as in GPT-2 and pptrain
            # GPT-2 init, as GPT2Shape::layer_params: N(0, 0.02), the two projections into the
            # residual stream scaled by 1/sqrt(2L); biases 0; LayerNorm 1 and 0 (the defaults).
            for name, p in self.named_parameters():
                if p.dim() == 2:
                    std = 0.02 / math.sqrt(2 * L) if name.endswith(("attproj.weight", "fcproj.weight")) else 0.02
                    nn.init.normal_(p, 0.0, std)
                elif name.endswith(".bias"):
                    nn.init.zeros_(p)

        def forward(self, idx, targets):
            T = idx.shape[1]
            x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
            for block in self.blocks:
                x = block(x)
            logits = self.head(self.lnf(x))[..., :V]  # padded columns never enter the loss
            return F.cross_entropy(logits.float().reshape(-1, V), targets.reshape(-1))

    return GPT2()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-B", "--batch", type=int, default=16)
    ap.add_argument("-T", "--seq", type=int, default=1024)
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps (compilation included)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps (median reported)")
    ap.add_argument("--no-compile", action="store_true", help="eager mode (no torch.compile)")
    ap.add_argument("--sdpa", choices=["flash", "auto"], default="flash",
                    help="attention backend: flash only (default) or PyTorch's choice")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                    help="cuda (the measurement) or cpu (smoke test of this script only)")
    args = ap.parse_args()

    try:
        import torch
    except ImportError as e:
        print(f"no torch: {e}: nothing measured", flush=True)
        return 77
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"no GPU: torch {torch.__version__} sees no CUDA device: nothing measured", flush=True)
        return 77

    V, Vp, L, NH, C, B, T = 50257, 50304, 12, 12, 768, args.batch, args.seq
    torch.manual_seed(1234)
    if args.sdpa == "flash" and args.device == "cuda":  # the flash kernel only, as pptrain's own attention is flash-style
        torch.backends.cuda.enable_flash_sdp(True)
        torch.backends.cuda.enable_mem_efficient_sdp(False)
        torch.backends.cuda.enable_math_sdp(False)
        if hasattr(torch.backends.cuda, "enable_cudnn_sdp"):
            torch.backends.cuda.enable_cudnn_sdp(False)
    dev = torch.device(args.device)
    cuda = args.device == "cuda"
    model = build_model(torch, V, Vp, 1024, L, NH, C).to(dev)
    n_params = sum(p.numel() for p in model.parameters())  # unique: the tied wte counts once
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=6e-4, betas=(0.9, 0.95), eps=1e-8, fused=True)
    step_model = model if args.no_compile else torch.compile(model)

    gen = torch.Generator(device=dev).manual_seed(42)
    batches = [(torch.randint(0, V, (B, T), device=dev, generator=gen),
                torch.randint(0, V, (B, T), device=dev, generator=gen)) for _ in range(4)]

    def step(i):
        x, y = batches[i % len(batches)]
        with torch.autocast(args.device, dtype=torch.bfloat16):
            loss = step_model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    where = torch.cuda.get_device_name(0) if cuda else "CPU (smoke test: figures mean nothing)"
    print(f"# torch {torch.__version__}, CUDA {torch.version.cuda}, {where}, "
          f"{'eager' if args.no_compile else 'torch.compile'}, sdpa={args.sdpa}", flush=True)
    t0 = time.perf_counter()
    first = step(0).item()  # compiles (forward and backward) when compiling
    print(f"# first step (compilation included): {time.perf_counter() - t0:.1f} s, loss {first:.4f} "
          f"(ln V = {math.log(V):.4f} expected at init)", flush=True)
    for i in range(1, args.warmup):
        step(i)
    if cuda:
        torch.cuda.synchronize()
    ms, losses = [], []
    for i in range(args.steps):  # CUDA events around each whole step (wall clock on the CPU)
        if cuda:
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            losses.append(step(i))
            stop.record()
            stop.synchronize()
            ms.append(start.elapsed_time(stop))
        else:
            t0 = time.perf_counter()
            losses.append(step(i).detach())
            ms.append(1e3 * (time.perf_counter() - t0))
    last = losses[-1].item()
    med = statistics.median(ms)
    tps = B * T / (med / 1e3)
    fpt = model_flops_per_token(n_params, L, C, T)
    mode = ("eager" if args.no_compile else "compile") + ("" if cuda else " cpu-smoke")
    label = f"pytorch {torch.__version__.split('+')[0]} ({mode}, bf16 autocast, sdpa {args.sdpa}, fused AdamW)"
    print(f"# median of {len(ms)} steps after {args.warmup} warm-up; min {min(ms):.2f} ms, max {max(ms):.2f} ms; "
          f"last loss {last:.4f}; peak memory {torch.cuda.max_memory_allocated() / 2**30 if cuda else 0:.1f} GiB", flush=True)
    print("| implementation | params | B x T | ms/step (median) | tokens/s | MFU |")
    print("|---|---|---|---|---|---|")
    print(f"| {label} | {n_params / 1e6:.2f}M | {B} x {T} | {med:.2f} | {tps:.0f} | {100 * mfu(tps, fpt):.1f}% |")
    print(f"TORCH_SUMMARY mode={mode.replace(' ', '-')} ms_per_step={med:.3f} "
          f"tokens_per_s={tps:.0f} mfu_pct={100 * mfu(tps, fpt):.2f} params={n_params}", flush=True)
    if not (math.isfinite(first) and math.isfinite(last)):
        print("non-finite loss: the measurement is not valid", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
