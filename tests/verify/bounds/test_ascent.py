"""The projected Adam ascent shared by alpha-CROWN, beta-CROWN and the MILP's bound
tightening: the same update as ``torch.optim.Adam``, each row's best value and parameters
kept, the projection applied after every step."""

from __future__ import annotations

import torch

from ringcert.verify.bounds.ascent import maximize


def _objective(target: torch.Tensor):
    def value(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # concave, one value per row
        return -((x - target) ** 2).sum(1) - (y ** 2).sum(1) + (x * y).sum(1)
    return value


def test_steps_match_torch_adam() -> None:
    torch.manual_seed(0)
    target = torch.randn(4, 3)
    x0, y0 = torch.randn(4, 3), torch.randn(4, 3)
    objective = _objective(target)
    for steps in (1, 2, 7):
        x, y = x0.clone().requires_grad_(), y0.clone().requires_grad_()
        optimizer = torch.optim.Adam([x, y], lr=0.05)
        values = []
        for _ in range(steps):
            value = objective(x, y)
            values.append(value.detach())
            optimizer.zero_grad()
            (-value.sum()).backward()
            optimizer.step()
        values.append(objective(x, y).detach())
        expected = torch.stack(values).max(0).values
        found = maximize([x0, y0], objective, steps=steps, lr=0.05, project=lambda *p: None)
        torch.testing.assert_close(found.best, expected, rtol=1e-5, atol=1e-6)
        # the kept parameters reproduce each row's best value
        torch.testing.assert_close(objective(*found.params), found.best, rtol=1e-5, atol=1e-6)


def test_projection_holds_and_rows_keep_their_best() -> None:
    torch.manual_seed(1)
    target = torch.rand(5, 4) * 2  # the unconstrained optimum lies partly outside [0, 1]
    objective = _objective(target)
    start = [torch.full((5, 4), 0.5), torch.zeros(5, 4)]
    seen: list[torch.Tensor] = []

    def projected(x: torch.Tensor, y: torch.Tensor) -> None:
        x.clamp_(0.0, 1.0)
        seen.append(x.clone())

    found = maximize(start, objective, steps=60, lr=0.1, project=projected)
    assert len(seen) == 60
    assert all(bool(((x >= 0) & (x <= 1)).all()) for x in seen)
    assert bool(((found.params[0] >= 0) & (found.params[0] <= 1)).all())
    initial = objective(*start)
    assert bool((found.best >= initial).all()) and bool((found.best > initial + 0.1).any())
    assert torch.equal(found.best, objective(*found.params))
    # with zero steps: the start itself
    none = maximize(start, objective, steps=0, lr=0.1, project=projected)
    assert torch.equal(none.best, initial) and torch.equal(none.params[0], start[0])
