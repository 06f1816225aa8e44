"""Models of the book; each registers itself by name for the CLI and for checkpoints."""

from dislib.models.base import MODELS, Budget, Codes, Disentangler, Model
from dislib.models.cvaegan import CVAEGAN, CVAEGANConfig
from dislib.models.gan import CGAN, GAN, CGANConfig, GANConfig
from dislib.models.mathieu import Mathieu, MathieuConfig
from dislib.models.ruiz import RbVAE, RbVAEConfig, SRbVAE, SRbVAEConfig
from dislib.models.ruiz_baselines import (
    DIPVAEI, DIPVAEII, SVAE, BetaVAE, BetaVAEConfig, DIPVAEConfig, DIPVAEIIConfig, RuizVAE, RuizVAEConfig, SVAEConfig,
)
from dislib.models.vae import CVAE, VAE, CVAEConfig, VAEConfig
from dislib.models.zheng import Zheng, ZhengConfig

__all__ = [
    "MODELS", "Budget", "Codes", "Disentangler", "Model", "GAN", "GANConfig", "Mathieu", "MathieuConfig", "VAE", "VAEConfig",
    "Zheng", "ZhengConfig", "RbVAE", "RbVAEConfig", "SRbVAE", "SRbVAEConfig", "CVAE", "CVAEConfig", "CGAN", "CGANConfig",
    "CVAEGAN", "CVAEGANConfig", "BetaVAE", "BetaVAEConfig", "RuizVAE", "RuizVAEConfig", "DIPVAEI", "DIPVAEII",
    "DIPVAEConfig", "DIPVAEIIConfig", "SVAE", "SVAEConfig",
]
