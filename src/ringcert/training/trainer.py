"""Training the seed's DOUBLE-MNIST classifier with multi-label BCE (docs/design.md section 4.3).

Every epoch draws fresh training pairs from the training digits; Adam with a OneCycle
schedule (docs/references.md#smith2019onecycle; the shipped accuracies are in the README).
The defense decides what the network sees: clean pairs, occluded pairs (L0), or PGD
adversarial pairs (Madry); the certified defense adds a bound term to the loss instead
(``ringcert.training.certified``). The test split is never touched during training.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits, one_hot
from tqdm import tqdm

from ringcert.data.double_mnist import generate
from ringcert.data.mnist import Split, load_digits
from ringcert.models.architecture import build, seed_spec
from ringcert.training.certified import CertifiedSettings, certified_loss
from ringcert.training.defenses import OcclusionSettings, PgdSettings, occlude, pgd_examples
from ringcert.training.evaluation import pair_margin
from ringcert.vocabulary import Defense


@dataclass(frozen=True, kw_only=True)
class TrainingSettings:
    defense: Defense = Defense.NONE
    objects: int = 2  # digits per image: 2 is DOUBLE-MNIST, more widens the canvas (issue 15)
    epochs: int = 30
    pairs_per_epoch: int = 20000
    batch_size: int = 128
    peak_lr: float = 3e-3
    seed: int = 0
    occlusion: OcclusionSettings = field(default_factory=OcclusionSettings)
    pgd: PgdSettings = field(default_factory=PgdSettings)
    certified: CertifiedSettings = field(default_factory=CertifiedSettings)

    def to_json(self) -> dict[str, object]:
        record = asdict(self)
        record["defense"] = self.defense.value
        return record


@dataclass(frozen=True)
class EpochReport:
    epoch: int
    loss: float
    train_accuracy: float
    seconds: float


def multi_hot(labels: torch.Tensor, classes: int = 10) -> torch.Tensor:
    return one_hot(labels, classes).sum(dim=1).clamp(max=1).float()


def train(settings: TrainingSettings, *, mnist_dir: str | None = None, progress: bool = True,
          on_epoch: callable | None = None) -> tuple[nn.Sequential, list[EpochReport]]:
    """Train a fresh seed classifier for ``settings.objects`` digits per image (multi-label
    BCE; accuracy counts all digits in the top-N); returns the network and one report per
    epoch."""
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    pool = load_digits(Split.TRAIN, mnist_dir=mnist_dir)
    network = build(seed_spec(settings.objects))
    optimizer = torch.optim.Adam(network.parameters(), lr=settings.peak_lr)
    steps_per_epoch = -(-settings.pairs_per_epoch // settings.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=settings.peak_lr, epochs=settings.epochs, steps_per_epoch=steps_per_epoch)
    reports: list[EpochReport] = []
    total_steps = settings.epochs * steps_per_epoch
    for epoch in range(settings.epochs):
        began = time.perf_counter()
        data = generate(pool, split=Split.TRAIN, start=epoch * settings.pairs_per_epoch,
                        count=settings.pairs_per_epoch, seed=settings.seed, objects=settings.objects)
        images = torch.from_numpy(data.float_images())
        labels = torch.from_numpy(data.labels)
        order = torch.randperm(len(images), generator=generator)
        losses, correct = [], 0
        network.train()
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{settings.epochs}",
                   disable=not progress, leave=False)
        for step in bar:
            index = order[step * settings.batch_size : (step + 1) * settings.batch_size]
            batch, batch_labels = images[index], labels[index]
            targets = multi_hot(batch_labels)
            progress = (epoch * steps_per_epoch + step) / total_steps
            batch = _defended(network, batch, targets, settings, generator, progress=progress)
            logits = network(batch)
            loss = binary_cross_entropy_with_logits(logits, targets)
            if settings.defense is Defense.CERTIFIED:
                epsilon, kappa = settings.certified.schedule(progress)
                if kappa < 1:  # the clean warm-up gives the bound term no weight: skip its IBP pass
                    loss = kappa * loss + (1 - kappa) * certified_loss(network, batch, batch_labels, epsilon)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            correct += int((pair_margin(logits.detach(), batch_labels) > 0).sum())
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        report = EpochReport(epoch=epoch + 1, loss=float(np.mean(losses)),
                             train_accuracy=correct / len(images),
                             seconds=time.perf_counter() - began)
        reports.append(report)
        if on_epoch is not None:
            on_epoch(report)
    network.eval()
    return network, reports


def _defended(network: nn.Module, batch: torch.Tensor, targets: torch.Tensor,
              settings: TrainingSettings, generator: torch.Generator, *,
              progress: float) -> torch.Tensor:
    if settings.defense is Defense.L0:
        return occlude(batch, settings.occlusion, generator)
    if settings.defense is Defense.PGD:
        pgd = settings.pgd
        scale = min(1.0, progress / pgd.warmup_fraction) if pgd.warmup_fraction > 0 else 1.0
        network.eval()
        adversarial = pgd_examples(network, batch, targets, epsilon=pgd.epsilon * scale,
                                   steps=pgd.steps, step_size=pgd.step_size * scale,
                                   generator=generator)
        network.train()
        return adversarial
    return batch
