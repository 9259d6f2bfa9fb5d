"""Latent explorer: drag one slider per latent dim, traverse dims, interpolate, see the 2-D manifold.

The current latent point and its model's key live in lab_pages.state (``explorer_point``).
Another page (the latent map) may set them and ``st.switch_page`` here: the sliders then
start at that point.

Everything under the title (but the picker of slider dims) is one ``st.fragment``: a slider
move reruns only it, and it sends the decoded image and the traversal (one labelled picture)
inline as PNG data URLs, so the browser draws them without fetching files. Before, every move
reran the whole page and the browser fetched one image per traversal row (16 files per move;
release to new image 410 ms p50 on the busy 2-core box, now ~150 ms).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import streamlit as st
import torch

from lab_pages import charts, state
from lab_pages.common import png_data_uri, require_dataset, require_model, to_image, upscale
from lab_pages.style import KL_COLOR
from vae_core import explore as ex
from vae_core import inference as inf
from vae_core.data import to_float

MAX_SLIDERS = 16  # above this many dims the user picks which get sliders
N_CHOICES = 16  # test images offered as starting points and interpolation ends
TAB_DEFAULTS = {"explorer_trav_steps": 9, "explorer_trav_sort": False, "explorer_interp_steps": 10,
                "explorer_interp_mode": "linear", "explorer_grid_n": 15}
ss = st.session_state


@st.cache_data(show_spinner="Encoding the test set for the slider ranges…", max_entries=16)
def _stats(key: str, _model: torch.nn.Module, _x: torch.Tensor) -> inf.PosteriorStats:
    """Aggregate-posterior stats of the test set, once per model (keyed by the model's key)."""
    return inf.aggregate_posterior_stats(_model, _x)


@st.cache_data(max_entries=64)
def _thumbnails(dataset: str, _x: torch.Tensor, shape: tuple[int, int, int], off: int, n: int) -> list[str]:
    """Test images ``off`` .. ``off + n - 1`` of ``dataset`` as ~40 px PNG data URLs (encoded once, not per move)."""
    return [png_data_uri(upscale(to_image(to_float(_x[off + p]), shape), shape[1], 40)) for p in range(n)]


def _set_z(z, key: str, lo: np.ndarray, hi: np.ndarray, note: str | None = None) -> None:
    """Make ``z`` the current point: sliders, ``explorer_z`` and a note tied to this point."""
    z_in = np.asarray(z, dtype=float)
    zc = np.clip(z_in, lo, hi)
    if note and not np.allclose(zc, z_in):
        note += f" ({', '.join(f'z{j + 1}' for j in np.flatnonzero(zc != z_in))} clamped to the slider range)"
    for j, v in enumerate(zc):
        ss[f"explorer_dim_{j}"] = float(v)
    state.set_explorer_point(zc, key)
    ss["_explorer_last"] = (key, tuple(state.explorer_point()[0]))
    ss["explorer_note"] = (note, ss["_explorer_last"]) if note else None


def _random(key: str, lo, hi, mean, std, is_vae: bool) -> None:
    ss["explorer_draws"] = n = ss.get("explorer_draws", 0) + 1
    eps = torch.randn(len(lo), generator=torch.Generator().manual_seed(n)).double().numpy()
    z = eps if is_vae else mean + std * eps
    _set_z(z, key, lo, hi, f"Random draw #{n} from " + ("the prior N(0, I)." if is_vae else "a Gaussian fitted to the codes."))


def _from_test(key: str, model, x: torch.Tensor, off: int, lo, hi) -> None:
    pos = ss.get("explorer_start", 0)
    mu, _ = inf.encode(model, x[off + pos])
    _set_z(mu[0].cpu().numpy(), key, lo, hi, f"Started from μ of test image #{off + pos} (chooser {pos}).")


def main() -> None:
    lm = require_model()
    ds = require_dataset(lm)
    model, zdim, shape, key = lm.model, lm.config.latent_dim, lm.config.image_shape, lm.key
    h, w = shape[1], shape[2]
    stats = _stats(key, model, ds.x_test)
    lo, hi = ex.slider_ranges(stats)
    mean, std = stats.mean.double().numpy(), stats.std.double().numpy()
    kl = stats.avg_kl_per_dim.numpy() if stats.avg_kl_per_dim is not None else None
    home = np.zeros(zdim) if lm.is_vae else mean  # prior mean, or (AE: no prior) the centre of its codes

    st.title("🎛️ Latent explorer")
    st.caption(f"{lm.label} — {lm.summary()}")
    if not lm.is_vae:
        st.info("This is an **autoencoder: its latent space has no prior**. There is no N(0, I) to reset to or sample from, "
                "so slider ranges come from the spread of its codes on the test set, and “random” draws use a Gaussian fitted "
                "to those codes. Points between codes may decode to things that are not images; compare with a VAE.")

    # --- consume a point sent by another page, or start fresh for a new model -------------------
    (ext_z, ext_key), last = state.explorer_point(), ss.get("_explorer_last")
    if last is None or last[0] != key:
        ss.pop("explorer_dims", None)
    try:
        ext = (ext_key, tuple(float(v) for v in ext_z)) if ext_z is not None else None
    except (TypeError, ValueError):
        ext = ("invalid", ())
    if ext is not None and ext != last:  # written by another page
        if ext_key == key and len(ext[1]) == zdim and np.isfinite(ext[1]).all():
            _set_z(ext[1], key, lo, hi, "z taken from the latent map.")
        else:
            _set_z(home, key, lo, hi, "A latent point was sent here for another model; it was ignored and the sliders start "
                   + ("at the prior mean." if lm.is_vae else "at the centre of the codes."))
    elif last is None or last[0] != key:
        _set_z(home, key, lo, hi)


    def _dim_label(j: int) -> str:
        if kl is not None:
            return f"z{j + 1} · KL {kl[j]:.2f} nats" + ("" if stats.active[j] else " (inactive)")
        return f"z{j + 1} · code spread σ {std[j]:.2f}" + ("" if stats.active[j] else " (unused)")


    dims = list(range(zdim))
    if zdim > MAX_SLIDERS:
        dims = sorted(st.multiselect(
            f"Dims with sliders (at most {MAX_SLIDERS}; the others stay fixed)", list(range(zdim)), key="explorer_dims",
            default=ex.default_dims(stats, MAX_SLIDERS), max_selections=MAX_SLIDERS, format_func=_dim_label))


    def _row_label(j: int) -> list[tuple[str, tuple[int, int, int]]]:
        """The lines left of traversal row ``j``: its name, its KL (or code spread), whether it is used."""
        lines = [(f"z{j + 1}", (0, 0, 0))]
        lines.append((f"KL {kl[j]:.2f} nats", _rgb(KL_COLOR)) if kl is not None else (f"σ {std[j]:.2f}", (60, 60, 60)))
        if not stats.active[j]:
            lines.append(("inactive" if kl is not None else "unused", (120, 120, 120)))
        return lines


    def _rgb(hex_color: str) -> tuple[int, int, int]:
        return tuple(int(hex_color[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


    @st.fragment
    def _view() -> None:
        """Everything below the title: a slider move (or any widget here) reruns only this, so the
        browser gets the new decoded image and traversal without the page around them being redrawn."""
        for j in range(zdim):  # sliders not drawn in the last run lost their state: restore it from explorer_z
            ss.setdefault(f"explorer_dim_{j}", float(np.clip(state.explorer_point()[0][j], lo[j], hi[j])))
        for k, v in TAB_DEFAULTS.items():  # re-set each run, so a tab's settings survive while another tab is shown
            ss[k] = ss.get(k, v)
        for k in ("explorer_slice_a", "explorer_slice_b"):
            if k in ss:
                ss[k] = ss[k]

        left, right = st.columns([3, 2], gap="large")
        z = np.array(state.explorer_point()[0], dtype=float)
        z[dims] = [ss[f"explorer_dim_{j}"] for j in dims]
        state.set_explorer_point(z, key)
        ss["_explorer_last"] = (key, tuple(state.explorer_point()[0]))
        zt = torch.tensor(z, dtype=torch.float32)

        # The right column first: its decoded image is what a slider move is waiting for.
        with right:
            note = ss.get("explorer_note")
            if note and note[1] == ss["_explorer_last"]:
                st.info(note[0])
            tile = to_image(inf.decode(model, zt)[0], shape)
            ss["explorer_image_hash"] = hashlib.sha1(tile.tobytes()).hexdigest()[:16]
            big = upscale(tile, h, 260)  # whole pixels, shown at exactly this size: sharp
            st.image(png_data_uri(big), width=big.shape[1], caption="decoded pixel means at z = ("
                     + ", ".join(f"{v:.2f}" for v in z[:8]) + (", …)" if zdim > 8 else ")"))
            b1, b2 = st.columns(2)
            b1.button("Prior mean z = 0" if lm.is_vae else "Centre of codes", key="explorer_reset", on_click=_set_z, width="stretch",
                      args=(home, key, lo, hi, "Reset to " + ("the prior mean z = 0." if lm.is_vae else "the mean of the codes.")))
            b2.button("Random z ~ N(0, I)" if lm.is_vae else "Random (Gaussian fit)", key="explorer_random", width="stretch",
                      on_click=_random, args=(key, lo, hi, mean, std, lm.is_vae))
            try:
                st.page_link("lab_pages/latent_map.py", label="Take μ of a point on the latent map", icon="🗺️")
            except Exception:  # page not registered (page run on its own): say where instead
                st.caption("To take μ of a point on the latent map, select it on the Latent map page and send it here.")
        with left:
            st.subheader("Sliders")
            cols = st.columns(2 if len(dims) > 4 else 1)
            for i, j in enumerate(dims):
                cols[i % len(cols)].slider(_dim_label(j), float(lo[j]), float(hi[j]), step=float(hi[j] - lo[j]) / 120,
                                           format="%.2f", key=f"explorer_dim_{j}")
            what = ("aggregate posterior q(z) = average of q(z|x) over the test set, with σ² = Var[μ] + E[σ²(x)]"
                    if lm.is_vae else "AE's codes of the test set (σ = their spread)")
            st.caption(f"Each slider spans mean ± 3σ of the {what} ({ds.x_test.shape[0]} images).")
            st.subheader("Start from a test image")
            n_test = ds.x_test.shape[0]
            off = int(st.number_input("Test images from index", 0, max(0, n_test - N_CHOICES), 0, step=N_CHOICES,
                                      key="explorer_test_offset"))
            choices = list(range(min(N_CHOICES, n_test - off)))
            st.image(_thumbnails(lm.dataset_name, ds.x_test, shape, off, len(choices)), caption=[str(p) for p in choices],
                     width=40)
            fmt = lambda p: f"{p}: test #{off + p} ({ds.class_names[int(ds.y_test[off + p])]})"  # noqa: E731
            for k, v in (("explorer_start", 0), ("explorer_interp_a", 0), ("explorer_interp_b", min(1, len(choices) - 1))):
                ss[k] = ss[k] if ss.get(k) in choices else v  # kept while its tab is hidden; reset if off the chooser
            c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
            c1.selectbox("Test image", choices, key="explorer_start", format_func=fmt)
            c2.button("Start from its μ", key="explorer_from_test", on_click=_from_test, args=(key, model, ds.x_test, off, lo, hi))

        tabs = st.tabs(["Traversals", "Interpolation", "2-D manifold"], key="explorer_tab", on_change="rerun")
        with tabs[0]:
            if tabs[0].open is not False:
                steps = st.slider("Steps per row", 3, 15, key="explorer_trav_steps")
                order = dims
                if st.checkbox("Sort rows by " + ("average KL" if kl is not None else "code spread"), key="explorer_trav_sort"):
                    score = kl if kl is not None else stats.cov_mu_diag.numpy()
                    order = sorted(dims, key=lambda j: -score[j])
                rows = inf.traverse(model, zt, order, torch.from_numpy(lo), torch.from_numpy(hi), steps)  # (k, steps, D)
                st.caption("Each row sweeps one dim from mean − 3σ (left) to mean + 3σ (right) with the others held at the "
                           "sliders' point. " + ("An inactive dim (KL ≈ 0) changes nothing." if kl is not None else ""))
                labels = [_row_label(j) for j in order]
                sheet = ex.traversal_sheet(rows, shape, labels, scale=max(1, round(64 / h)))  # one picture, not one per row
                st.image(png_data_uri(sheet), width=sheet.shape[1],  # its own size: sharp tiles and labels
                         caption="Rows, top to bottom: " + "; ".join(" ".join(t for t, _ in lb) for lb in labels))

        with tabs[1]:
            if tabs[1].open is not False:
                c = st.columns(4)
                a = c[0].selectbox("From A", choices, key="explorer_interp_a", format_func=fmt)
                b = c[1].selectbox("To B", choices, key="explorer_interp_b", format_func=fmt)
                n = c[2].slider("Steps N", 3, 20, key="explorer_interp_steps")
                mode = c[3].radio("Path", ["linear", "spherical", "both"], key="explorer_interp_mode", horizontal=True)
                mu, _ = inf.encode(model, ds.x_test[[off + a, off + b]])
                norms = []
                for name, fn in (("linear", inf.lerp), ("spherical", inf.slerp)):
                    if mode in (name, "both"):
                        path = fn(mu[0], mu[1], n)  # (n, z)
                        st.image(upscale(inf.images_to_grid(inf.decode(model, path), shape, ncols=n), h, 56),
                                 caption=f"{name} ({'lerp' if name == 'linear' else 'slerp'}): μ(A) → μ(B), {n} steps")
                        norms.append((name, path.norm(dim=1).tolist()))
                st.plotly_chart(charts.path_norms(norms, zdim ** 0.5 if lm.is_vae else None, reference_text="√z: typical ‖z‖ under the prior",
                                                  title="Norm along the path", x_title="step", y_title="‖z‖ (latent units)"),
                                key="explorer_norm_chart")
                st.caption("Slerp keeps ‖z‖ between the ends' norms; a straight line cuts through the centre, where "
                           "high-dimensional Gaussian samples almost never lie.")

        with tabs[2]:
            if tabs[2].open is not False:
                n = st.slider("Tiles per side", 5, 25, key="explorer_grid_n")
                if zdim == 2 and lm.is_vae:
                    pair, c0, s0 = (0, 1), (0.0, 0.0), (1.0, 1.0)
                    imgs, _ = inf.manifold_grid(model, n)
                    st.caption("Tiles at z = Φ⁻¹(p) for p evenly spaced in 0.05…0.95 per dim: equal prior mass per tile "
                               "(Kingma & Welling 2014, fig. 4). z₁ grows to the right, z₂ upwards.")
                else:
                    if zdim == 2:
                        pair = (0, 1)
                        st.caption("An AE has no prior, so the grid is placed by a Gaussian fitted to its codes: "
                                   "z = mean + σ·Φ⁻¹(p).")
                    else:
                        st.info(f"The manifold grid needs a 2-D latent; this model has {zdim} dims. Shown instead: a 2-D slice "
                                "through the sliders' point over two dims, z = mean + σ·Φ⁻¹(p), the others held.")
                        for k, d in zip(("explorer_slice_a", "explorer_slice_b"), ex.default_dims(stats, 2)):
                            ss[k] = ss[k] if ss.get(k) in range(zdim) else d
                        ca, cb = st.columns(2)
                        pair = (ca.selectbox("Across", range(zdim), key="explorer_slice_a", format_func=_dim_label),
                                cb.selectbox("Up", range(zdim), key="explorer_slice_b", format_func=_dim_label))
                    if pair[0] == pair[1]:
                        st.warning("Pick two different dims.")
                        st.stop()
                    c0, s0 = tuple(float(mean[d]) for d in pair), tuple(float(std[d]) for d in pair)
                    imgs, _ = ex.manifold_slice(model, zt, pair, c0, s0, n)
                col, row, inside = ex.grid_position((z[pair[0]], z[pair[1]]), n, center=c0, scale=s0)
                mosaic = inf.images_to_grid(imgs, shape, ncols=n)
                st.image(ex.mark_grid(mosaic, col, row, (h, w), scale=max(1, math.ceil(560 / mosaic.shape[1]))),
                         caption="red frame and dot: the sliders' current point" + ("" if inside else " (beyond the outermost tiles: drawn at the edge)"))
                p = [0.5 * (1 + math.erf((z[d] - c) / (s * 2 ** 0.5))) for d, c, s in zip(pair, c0, s0)]
                phi = r"\Phi(z)" if s0 == (1.0, 1.0) else r"\Phi\!\left(\tfrac{z-\text{mean}}{\sigma}\right)"
                st.latex(rf"z_{{{pair[0] + 1}}} = {z[pair[0]]:.2f},\; z_{{{pair[1] + 1}}} = {z[pair[1]]:.2f}"
                         rf"\;\Rightarrow\; p = {phi} = ({p[0]:.2f},\ {p[1]:.2f})")


    _view()


if __name__ == "__main__":  # Streamlit runs a page as __main__; an import draws nothing
    main()
