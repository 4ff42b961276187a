"""Figures of the analysis (matplotlib, Agg backend): labelled axes with units, peaks annotated.

Every function takes the result object and an output path (PNG) and returns the path.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

from ..units import THZ_TO_CM1

__all__ = ["plot_ir", "plot_raman", "plot_phonons", "plot_dielectric"]

_COMPONENTS = ("xx", "yy", "zz", "iso")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _annotate(ax, peaks, y_of, color="k"):
    for p in peaks:
        x = p["frequency_cm1"]
        ax.annotate(
            f"{x:.0f}",
            (x, y_of(x)),
            textcoords="offset points",
            xytext=(0, 4),
            ha="center",
            fontsize=7,
            color=color,
        )


def plot_ir(
    ir,
    path,
    max_frequency_cm1: Optional[float] = None,
    title: str = "",
    harmonic_cm1: Sequence[float] = (),
):
    """Absorption alpha*n (cm^-1) and eps', eps'' vs wavenumber; peaks annotated, harmonic TO lines dashed."""
    plt = _plt()
    nu = ir.frequency_cm1
    top = max_frequency_cm1 if max_frequency_cm1 is not None else nu[-1]
    sel = nu <= top
    fig, axes = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True)
    ax = axes[0]
    for k, comp in enumerate(_COMPONENTS):
        ax.plot(
            nu[sel],
            ir.absorption_cm1[sel, k],
            lw=1.6 if comp == "iso" else 0.8,
            color="k" if comp == "iso" else None,
            label=comp,
        )
    _annotate(ax, ir.peaks, lambda x: np.interp(x, nu, ir.absorption_cm1[:, 3]))
    for h in harmonic_cm1:
        ax.axvline(h, color="0.6", ls="--", lw=0.7)
    ax.set_ylabel(r"absorption $\alpha(\nu)\,n(\nu)$ (cm$^{-1}$)")
    ax.legend(fontsize=8, ncol=4)
    ax.set_title(
        title
        or f"IR from dipole autocorrelation, T = {ir.settings['temperature']:g} K, "
        f"resolution {ir.resolution_cm1:.1f} cm$^{{-1}}$",
        fontsize=9,
    )
    ax = axes[1]
    ax.plot(nu[sel], ir.eps_real[sel, 3], color="C0", label=r"$\varepsilon'$ (iso)")
    ax.plot(nu[sel], ir.eps_imag[sel, 3], color="C3", label=r"$\varepsilon''$ (iso)")
    ax.axhline(0, color="0.7", lw=0.5)
    ax.set_xlabel(r"wavenumber (cm$^{-1}$)")
    ax.set_ylabel(r"dielectric function $\varepsilon(\nu)$ (dimensionless)")
    ax.legend(fontsize=8)
    ax.set_xlim(0, top)
    secondary = axes[0].secondary_xaxis(
        "top", functions=(lambda x: x / THZ_TO_CM1, lambda x: x * THZ_TO_CM1)
    )
    secondary.set_xlabel("frequency (THz)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_raman(raman, path, max_frequency_cm1: Optional[float] = None, title: str = ""):
    """Stokes Raman intensities (iso, aniso) vs wavenumber, thermal prefactor included; peaks annotated."""
    plt = _plt()
    nu = raman.frequency_cm1
    top = max_frequency_cm1 if max_frequency_cm1 is not None else nu[-1]
    sel = (nu <= top) & (nu > 0)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(nu[sel], raman.stokes_iso[sel], label="isotropic")
    ax.plot(nu[sel], raman.stokes_aniso[sel], label="anisotropic")
    _annotate(ax, raman.peaks_iso, lambda x: np.interp(x, nu, raman.stokes_iso), "C0")
    _annotate(
        ax, raman.peaks_aniso, lambda x: np.interp(x, nu, raman.stokes_aniso), "C1"
    )
    ax.set_xlabel(r"Raman shift (cm$^{-1}$)")
    ax.set_ylabel(r"Stokes intensity ((e$\AA^2$/V)$^2$ fs, arb. scale)")
    ax.set_title(
        title
        or f"Raman from polarizability autocorrelation, T = {raman.settings['temperature']:g} K",
        fontsize=9,
    )
    ax.set_xlim(0, top)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_phonons(phonons, path, loto=None, title: str = ""):
    """IR oscillator strengths (trace, e^2/amu) of the Gamma modes as sticks; LO frequencies marked."""
    plt = _plt()
    rows = phonons.mode_table()
    fig, ax = plt.subplots(figsize=(7, 4))
    nu = np.array([r["frequency_cm1"] for r in rows])
    inten = np.array([r.get("intensity", 0.0) for r in rows])
    ax.vlines(nu, 0, inten, color="k", lw=2, label="TO: IR oscillator strength")
    for x, y in zip(nu, inten):
        if y > 0.02 * max(inten.max(), 1e-300):
            ax.annotate(
                f"{x:.0f}",
                (x, y),
                textcoords="offset points",
                xytext=(0, 3),
                ha="center",
                fontsize=7,
            )
    if loto is not None:
        for k, q in enumerate(loto.directions):
            shifted = [
                loto.lo_thz[k, m_lo] * THZ_TO_CM1
                for m_to, m_lo in loto.pairs[k]
                if (loto.lo_thz[k, m_lo] - loto.to_thz[m_to]) * THZ_TO_CM1 > 1.0
            ]
            ax.plot(
                shifted,
                np.full(len(shifted), -0.04 * (k + 1) * max(inten.max(), 1e-300)),
                "v",
                ms=5,
                label=f"LO, q along ({q[0]:.2f}, {q[1]:.2f}, {q[2]:.2f})",
            )
    ax.axhline(0, color="0.6", lw=0.5)
    ax.set_xlabel(r"frequency (cm$^{-1}$)")
    ax.set_ylabel(r"oscillator strength tr $S_m$ (e$^2$/amu)")
    ax.set_title(
        title or r"$\Gamma$-point modes (phonopy), degenerate sets summed", fontsize=9
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_dielectric(results: Dict[str, object], path, title: str = ""):
    """eps_0 diagonal components by route (bars; error bars where statistical), eps_inf dashed."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    routes = list(results)
    width = 0.8 / max(1, len(routes))
    eps_inf = None
    for j, route in enumerate(routes):
        r = results[route]
        d = np.diag(r.eps0)
        err = None if r.error is None else np.diag(r.error)
        ax.bar(
            np.arange(3) + (j - (len(routes) - 1) / 2) * width,
            d,
            width,
            yerr=err,
            capsize=3,
            label=route,
        )
        eps_inf = np.diag(r.eps_inf)
    if eps_inf is not None:
        for a in range(3):
            ax.hlines(
                eps_inf[a],
                a - 0.45,
                a + 0.45,
                colors="k",
                linestyles="--",
                label=r"$\varepsilon_\infty$" if a == 0 else None,
            )
    ax.set_xticks(
        range(3), [r"$\varepsilon_{xx}$", r"$\varepsilon_{yy}$", r"$\varepsilon_{zz}$"]
    )
    ax.set_ylabel(r"static dielectric constant $\varepsilon_0$ (dimensionless)")
    ax.set_title(title or "eps_0 by route", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
