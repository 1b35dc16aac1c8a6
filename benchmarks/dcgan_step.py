"""A full DCGAN train step (D update + G update), jaxgan vs plain PyTorch eager.

    pip install -e ".[bench]"          # torch==2.13.0 (CPU build here)
    python -m benchmarks.dcgan_step [--repeats 7] [--steps 3] [--cases mnist,radford64]
                                    [--dtypes float32,bfloat16] [--no_torch]

Both frameworks run the same architecture, batch and algorithm: the seeds'
28x28 MNIST DCGAN at batch 128 and the Radford 64x64 RGB DCGAN at batch 64;
one generator forward pass per step, the discriminator updated on real and
(detached) fake images, then the generator through the updated
discriminator; non-saturating losses; Adam(2e-4, 0.5). Data are random
tensors already in memory (the input pipeline has its own benchmark).

Timing: compilation and warm-up excluded; `--repeats` rounds, each timing
`--steps` steps of every contender one after the other (interleaved, so
machine drift hits all alike); medians reported. FLOPs: the analytic count of
useful multiply-adds (x2) of the convolutions and dense layers (forward;
weight gradients where weights are updated; input gradients where they are
needed), and XLA's own cost analysis of the compiled step beside it. The
floor: a measured float32 matmul peak (2048^3, best of jax and torch).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from jaxgan import xla_flags  # noqa: E402

xla_flags.add_defaults()  # jaxgan's default XLA flags, before JAX starts its backends
import jax
import jax.numpy as jnp

CASES = {  # name: (image_size, channels, batch)
    "mnist": (28, 1, 128),
    "radford64": (64, 3, 64),
}


# -- analytic FLOPs -----------------------------------------------------------

def _layers(case: str):
  """[(network, macs_per_image, is_first_layer)] of the conv/dense layers."""
  if case == "mnist":
    g = [100 * 7 * 7 * 256,               # dense
         7 * 7 * 25 * 256 * 128,           # 5x5 up-conv, stride 1 (per input pixel)
         7 * 7 * 25 * 128 * 64,            # 5x5 up-conv, stride 2
         14 * 14 * 25 * 64 * 1]            # 5x5 up-conv, stride 2
    d = [14 * 14 * 25 * 1 * 64,            # 5x5 conv, stride 2
         7 * 7 * 25 * 64 * 128,            # 5x5 conv, stride 2
         7 * 7 * 128]                      # dense
  else:
    ngf = ndf = 64
    # up-convs: MACs = input pixels * 16 * cin * cout
    g = [1 * 16 * 100 * ngf * 8, 4 * 4 * 16 * ngf * 8 * ngf * 4, 8 * 8 * 16 * ngf * 4 * ngf * 2,
         16 * 16 * 16 * ngf * 2 * ngf, 32 * 32 * 16 * ngf * 3]
    # convs: MACs = output pixels * 16 * cin * cout
    d = [32 * 32 * 16 * 3 * ndf, 16 * 16 * 16 * ndf * ndf * 2, 8 * 8 * 16 * ndf * 2 * ndf * 4,
         4 * 4 * 16 * ndf * 4 * ndf * 8, 1 * 16 * ndf * 8]
  return g, d


def analytic_flops(case: str, batch: int) -> float:
  """Useful FLOPs of one step. G: forward once, weight gradients, input
  gradients (not for z). D on real and on fake in its update: forward, weight
  gradients, input gradients except into the data. D in the G update:
  forward and input gradients (all layers, down to the fake images), no
  weight gradients."""
  g, d = _layers(case)
  g_macs = sum(g) * 3 - g[0]
  d_update = 2 * (sum(d) * 3 - d[0])
  d_in_g_update = sum(d) * 2
  return 2.0 * batch * (g_macs + d_update + d_in_g_update)


# -- jaxgan ---------------------------------------------------------------------

def jax_step(case: str, dtype: str):
  from experiments.configs.dcgan import get_config
  from jaxgan.tasks.gan import GANTask
  size, channels, batch = CASES[case]
  config = get_config()
  config.batch_size = batch
  config.image_size = size
  config.compute_dtype = dtype
  task = GANTask(config, (size, size, channels))
  state = jax.jit(task.init_state)(jax.random.PRNGKey(0))
  data = {"image": jax.random.uniform(jax.random.PRNGKey(1), (batch, size, size, channels),
                                      minval=-1, maxval=1),
          "label": jnp.zeros((batch,), jnp.int32)}
  step = jax.jit(task.train_step, donate_argnums=0)
  compiled = step.lower(state, data).compile()
  cost = compiled.cost_analysis()
  if isinstance(cost, list):
    cost = cost[0]
  xla_flops = float(cost.get("flops", float("nan"))) if cost else float("nan")
  holder = {"state": state}

  def run(n: int):
    s = holder["state"]
    for _ in range(n):
      s, m = step(s, data)
    jax.block_until_ready(m)
    holder["state"] = s

  return run, xla_flops


# -- PyTorch ---------------------------------------------------------------------

def torch_step(case: str):
  import torch
  from torch import nn
  size, channels, batch = CASES[case]
  torch.manual_seed(0)
  if case == "mnist":
    class G(nn.Module):
      def __init__(self):
        super().__init__()
        self.fc = nn.Linear(100, 7 * 7 * 256, bias=False)
        self.bn0 = nn.BatchNorm1d(7 * 7 * 256, momentum=0.1)
        self.net = nn.Sequential(
            nn.ConvTranspose2d(256, 128, 5, 1, 2, bias=False), nn.BatchNorm2d(128),
            nn.LeakyReLU(0.3),
            nn.ConvTranspose2d(128, 64, 5, 2, 2, output_padding=1, bias=False),
            nn.BatchNorm2d(64), nn.LeakyReLU(0.3),
            nn.ConvTranspose2d(64, channels, 5, 2, 2, output_padding=1, bias=False), nn.Tanh())

      def forward(self, z):
        x = nn.functional.leaky_relu(self.bn0(self.fc(z)), 0.3)
        return self.net(x.view(-1, 256, 7, 7))

    netG = G()
    netD = nn.Sequential(
        nn.Conv2d(channels, 64, 5, 2, 2), nn.LeakyReLU(0.3), nn.Dropout(0.3),
        nn.Conv2d(64, 128, 5, 2, 2), nn.LeakyReLU(0.3), nn.Dropout(0.3),
        nn.Flatten(), nn.Linear(7 * 7 * 128, 1))
  else:  # pytorch/examples dcgan, ngf = ndf = 64
    ngf = ndf = 64
    netG = nn.Sequential(
        nn.ConvTranspose2d(100, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
        nn.ConvTranspose2d(ngf, channels, 4, 2, 1, bias=False), nn.Tanh())
    netD = nn.Sequential(
        nn.Conv2d(channels, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Flatten())
  z_shape = (batch, 100) if case == "mnist" else (batch, 100, 1, 1)
  criterion = nn.BCEWithLogitsLoss()
  optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
  optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
  real = torch.rand(batch, channels, size, size) * 2 - 1
  ones, zeros = torch.ones(batch), torch.zeros(batch)

  def one_step():
    fake = netG(torch.randn(z_shape))  # the generator's forward pass, once
    optD.zero_grad(set_to_none=True)
    loss_d = (criterion(netD(real).view(-1), ones)
              + criterion(netD(fake.detach()).view(-1), zeros))
    loss_d.backward()
    optD.step()
    optG.zero_grad(set_to_none=True)
    loss_g = criterion(netD(fake).view(-1), ones)  # through the updated D
    loss_g.backward()
    optG.step()
    return loss_g

  def run(n: int):
    for _ in range(n):
      loss = one_step()
    float(loss.detach())

  return run


# -- the floor ------------------------------------------------------------------

def matmul_peak(n: int = 2048, repeats: int = 5) -> dict:
  out = {}
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n))
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    f(a).block_until_ready()
    times.append(time.perf_counter() - t)
  out["jax"] = 2 * n**3 / min(times) / 1e9
  try:
    import torch
    b = torch.randn(n, n)
    b @ b
    times = []
    for _ in range(repeats):
      t = time.perf_counter()
      b @ b
      times.append(time.perf_counter() - t)
    out["torch"] = 2 * n**3 / min(times) / 1e9
  except ImportError:
    pass
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--steps", type=int, default=3, help="steps per timed round")
  parser.add_argument("--cases", default="mnist,radford64")
  parser.add_argument("--dtypes", default="float32,bfloat16", help="jaxgan compute dtypes")
  parser.add_argument("--no_torch", action="store_true")
  args = parser.parse_args()

  peak = matmul_peak()
  floor = max(peak.values())
  print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), "
        f"{jax.device_count()} device(s); f32 matmul peak 2048^3: "
        + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items()))
  if not args.no_torch:
    import torch
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; jax {jax.__version__}")

  rows = []
  for case in args.cases.split(","):
    size, channels, batch = CASES[case]
    contenders = {}
    xla = {}
    for dtype in args.dtypes.split(","):
      run, xla[f"jaxgan {dtype}"] = jax_step(case, dtype)
      contenders[f"jaxgan {dtype}"] = run
    if not args.no_torch:
      contenders["pytorch float32"] = torch_step(case)
    for run in contenders.values():  # warm-up (and jit compilation, done above)
      run(2)
    times = {k: [] for k in contenders}
    for _ in range(args.repeats):
      for name, run in contenders.items():
        t = time.perf_counter()
        run(args.steps)
        times[name].append((time.perf_counter() - t) / args.steps)
    flops = analytic_flops(case, batch)
    base = statistics.median(times["pytorch float32"]) if "pytorch float32" in times else None
    for name, ts in times.items():
      t = statistics.median(ts)
      rows.append((f"{case} {size}x{size}x{channels} b{batch}", name, batch / t, t * 1e3,
                   (base / t) if base else float("nan"), flops / 1e9,
                   xla.get(name, float("nan")) / 1e9, flops / t / 1e9, flops / t / 1e9 / floor,
                   (max(ts) - min(ts)) / t))

  header = ("case", "framework", "img/s", "ms/step", "vs torch", "GFLOP", "XLA GFLOP",
            "GFLOP/s", "of peak", "spread")
  print()
  print(f"{header[0]:24s}{header[1]:18s}" + "".join(f"{h:>10s}" for h in header[2:]))
  for r in rows:
    print(f"{r[0]:24s}{r[1]:18s}{r[2]:10.1f}{r[3]:10.1f}{r[4]:10.2f}{r[5]:10.2f}{r[6]:10.2f}"
          f"{r[7]:10.1f}{r[8]:10.0%}{r[9]:10.0%}")
  print("\nspread: (slowest - fastest round) / median. GFLOP: analytic useful FLOPs per step.")


if __name__ == "__main__":
  main()
