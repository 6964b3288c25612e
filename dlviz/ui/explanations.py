"""The longer explanations of the loss-surface and optimizer pages (text marked for translation, the formulas the
code runs, the claim), kept out of the pages so each page stays widgets, one dlviz call and figures."""

from __future__ import annotations

from typing import NamedTuple

from ..i18n import N_


class Explanation(NamedTuple):
    """What ``explain(e.text, *e.formulas, claim=e.claim)`` shows: the text, the formulas, the claim."""

    text: str
    formulas: tuple[str, ...]
    claim: str


OPT_CONDITION = Explanation(
    N_("On a quadratic with curvatures 1 and κ every optimizer's error shrinks by a fixed factor per step, "
       "the **rate**. Gradient descent's best fixed learning rate balances the two directions; heavy-ball "
       "momentum's best (η, β) makes both directions contract equally fast (Goh, *Why Momentum Really "
       'Works*, 2017):'),
    (r'f(x, y) = \tfrac12 (x^2 + \kappa y^2),\qquad \text{GD: } \eta^\star = \frac{2}{1+\kappa},\ \text{rate} '
     r'= \frac{\kappa-1}{\kappa+1}',
     r'\text{momentum: } \eta^\star = \Big(\frac{2}{1+\sqrt\kappa}\Big)^2,\ \beta^\star = '
     r'\Big(\frac{\sqrt\kappa-1}{\sqrt\kappa+1}\Big)^2,\ \text{rate} = \frac{\sqrt\kappa-1}{\sqrt\kappa+1}',),
    N_("Momentum's rate depends on √κ instead of κ: at κ = 100 gradient descent needs about 10x more steps "
       'per digit of accuracy.'))


OPT_BATCH = Explanation(
    N_('Linear regression on 1,000 points, y = 2x₁ − 3.4x₂ + 4.2 + noise, trained by `torch.optim.SGD` from '
       'w = 0 with the same learning rate and number of steps; only the batch size differs. A mini-batch '
       'gradient is an unbiased but noisy estimate of the full gradient; its noise shrinks like 1/√B:'),
    (r'\hat g_B = \frac{1}{B}\sum_{i \in \mathcal{B}} \nabla_w \tfrac12 (w^\top x_i + b - y_i)^2,\qquad '
     r'\mathbb{E}[\hat g_B] = \nabla L(w),\quad \operatorname{Var}[\hat g_B] \propto \tfrac1B',),
    N_('Batch size 1 wanders around the full-batch path and keeps jittering near the minimum; batch 32 is '
       'already close to the full-batch path at 1/30 of its cost per step.'))


OPT_NETWORK = Explanation(
    N_('Copies of one small MLP (2 → 16 → 16 → 2, tanh) start from **the same initialization** and see **the'
       ' same mini-batches** of the two-moons data; only the `torch.optim` optimizer differs. Their paths '
       'live in a space of hundreds of parameters; we project them onto the plane spanned by the top two '
       'directions of their displacements from the start (the top two right singular vectors of the stacked '
       "displacements: an uncentered PCA, so the start stays at the plane's origin), and compute the loss on"
       ' that plane:'),
    (r'\theta(a, b) = \theta_0 + a\,d_1 + b\,d_2,\qquad d_1, d_2 = \text{top-2 right singular vectors of } '
     r'\{\theta^{(k)}_t - \theta_0\}',),
    N_('Adaptive methods and momentum leave the flat start region faster; the plane is a slice, so a path '
       "can look as if it crosses a contour 'uphill' while descending in the directions left out."))


SURF_MSE_CE = Explanation(
    N_('A two-layer net with **one weight per layer** (after Glorot & Bengio, 2010) classifies 64 points: h '
       '= tanh(w₁x), logits z = (−w₂h, w₂h). Its loss is a surface over (w₁, w₂). With w₁w₂ ≪ 0 the net is '
       'confidently wrong: the softmax saturates, so MSE is flat there while cross-entropy keeps a slope.'),
    (r'\ell_{\mathrm{MSE}} = 2\,(1 - \sigma(m))^2 ,\qquad \ell_{\mathrm{CE}} = -\log \sigma(m) ,\qquad m = '
     r'z_{y} - z_{\bar y}',
     r'\frac{\partial \ell_{\mathrm{MSE}}}{\partial m} = -4\,\sigma(m)(1-\sigma(m))^2 \to 0,\qquad '
     r'\frac{\partial \ell_{\mathrm{CE}}}{\partial m} = -(1 - \sigma(m)) \to -1 \quad (m \to -\infty)',),
    N_('From the confidently wrong corner, gradient descent on MSE barely moves for many steps; on cross-'
       'entropy it leaves at once.'))


SURF_LANDSCAPE = Explanation(
    N_('A small network trains live; on request its loss is evaluated on planes and lines through weight '
       'space (on the first 1,024 training examples, and on the test set). Random directions are **filter-'
       'normalized** (Li et al., 2018): each filter of a direction gets the norm of the matching filter of '
       'the weights, so slices of different networks are comparable. Biases and BatchNorm parameters get a '
       'zero direction, and BatchNorm runs in evaluation mode with its running statistics (the statistics of'
       ' the trained model).'),
    (r'L(a, b) = \mathcal{L}(\theta^* + a\,\delta + b\,\eta),\qquad \delta_{i,j} \leftarrow '
     r'\frac{\delta_{i,j}}{\lVert\delta_{i,j}\rVert}\lVert\theta^*_{i,j}\rVert',),
    N_('The line from initialization to the trained weights descends without bumps; the trained weights sit '
       'in a basin whose sharpness is the top Hessian eigenvalue λ_max. Whether small batches end in flatter'
       ' basins than large ones (same learning rate and steps) is what the twins test, but raw λ_max changes'
       ' when the weights are rescaled and full-batch descent holds it near 2/η: read it beside ‖θ‖ and 2/η.'))
