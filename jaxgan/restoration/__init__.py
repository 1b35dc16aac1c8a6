"""Image restoration with the project's generative models.

- `quality.py`: PSNR and SSIM in JAX, batched, optionally over a region
  (checked against scikit-image).
- `masks.py`: inpainting masks by name (center, random, left, right, top,
  bottom) or from a PNG.
- `inpainting.py`: GAN inversion by latent optimisation and semantic
  inpainting (Yeh et al. 2017), VAE inpainting by pseudo-Gibbs sampling
  (Rezende et al. 2014), and the mean-fill and nearest-neighbour baselines.
"""
