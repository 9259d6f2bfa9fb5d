// The lab's decoder in the browser: z -> pixel means, drawn on a canvas while a slider is dragged
// (mode "sliders", the Latent explorer) or under the pointer (mode "plane", the Manifold page).
//
// The weights come once per model from the file vae_core/web_decoder.py writes (served by Streamlit's
// static serving, named by its content's hash): the browser caches it, and nothing goes over the
// websocket while the pointer moves. Python hears from this component only when a drag ends
// ("release"), a point is pinned ("pin"), or the decoder cannot run here ("status": then the page
// decodes on the server). The maths mirrors vae_core.models (Linear layers, torch's activations) and
// vae_core.elbo.decoder_mean; tests/e2e/test_decoder_component.py holds it to torch within 1e-4.

const FORMAT = "vae-lab-decoder/1";
const decoders = new Map(); // url -> Promise<decoder>: one fetch per model and page load
const views = new WeakMap(); // parentElement -> this mount's state (the function runs again on new data)
const FRAMES_KEPT = 2000;

// ---------------------------------------------------------------- maths
// erf to ~1e-15: its Maclaurin series for |x| < 2.5 (terms stay small there), else erfc's continued
// fraction (Lentz-free, evaluated from the tail: 60 levels are plenty for x >= 2.5).
export function erf(x) {
  const a = Math.abs(x);
  if (a < 2.5) {
    const x2 = x * x;
    let term = x, sum = x;
    for (let n = 1; n < 60; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(a) = exp(-a²)/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + 2/(a + ...)))))
  let f = a;
  for (let k = 60; k >= 1; k--) f = a + k / 2 / f;
  const erfc = Math.exp(-a * a) / Math.sqrt(Math.PI) / f;
  return x > 0 ? 1 - erfc : erfc - 1;
}

const ACTIVATIONS = {
  relu: (v) => (v > 0 ? v : 0),
  tanh: Math.tanh,
  elu: (v) => (v > 0 ? v : Math.expm1(v)), // torch's default alpha = 1
  gelu: (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)), // torch's default: the erf form, not tanh
};

const sigmoid = (l) => 1 / (1 + Math.exp(-l));

// E[x] of the continuous Bernoulli with logit l: 1/(1 - e^{-l}) - 1/l, its series near l = 0
function cbMean(l, below) {
  if (Math.abs(l) < below) {
    const l2 = l * l;
    return 0.5 + l * (1 / 12 + l2 * (-1 / 720 + l2 / 30240));
  }
  return 1 / -Math.expm1(-l) - 1 / l;
}

export function parseDecoder(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes.length < 8 || String.fromCharCode(...bytes.subarray(0, 4)) !== "VAED") {
    throw new Error("not a decoder file");
  }
  const n = new DataView(buffer).getUint32(4, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  if (header.format !== FORMAT) throw new Error(`unknown decoder format ${header.format}`);
  if (!(header.activation in ACTIVATIONS)) throw new Error(`unknown activation ${header.activation}`);
  const count = (buffer.byteLength - 8 - n) / 4;
  let flat;
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] === 1) {
    flat = new Float32Array(buffer, 8 + n, count); // little-endian machine: a view, no copy
  } else {
    const dv = new DataView(buffer, 8 + n);
    flat = new Float32Array(count);
    for (let i = 0; i < count; i++) flat[i] = dv.getFloat32(4 * i, true);
  }
  let at = 0;
  const layers = header.layers.map(({ in: nin, out }) => {
    const layer = {
      nin,
      out,
      w: flat.subarray(at, at + nin * out),
      b: flat.subarray(at + nin * out, at + nin * out + out),
      y: new Float64Array(out),
    };
    at += nin * out + out;
    return layer;
  });
  if (at !== count) throw new Error(`decoder file has ${count} weights, its header says ${at}`);
  const mean =
    header.likelihood === "continuous_bernoulli"
      ? (l) => cbMean(l, header.cb_series_below)
      : ["bernoulli", "gaussian", "laplace"].includes(header.likelihood)
        ? sigmoid // the Bernoulli's mean; the Gaussian's and the Laplace's location
        : null;
  if (!mean) throw new Error(`unknown likelihood ${header.likelihood}`);
  return { header, layers, act: ACTIVATIONS[header.activation], mean, bytes: buffer.byteLength };
}

// z (latent_dim numbers) -> pixel means (Float64Array of input_dim), in float64 from float32 weights
export function decode(dec, z) {
  let x = z;
  const last = dec.layers.length - 1;
  dec.layers.forEach((layer, k) => {
    const { nin, out, w, b, y } = layer;
    for (let o = 0; o < out; o++) {
      let s = b[o];
      const row = o * nin;
      for (let i = 0; i < nin; i++) s += w[row + i] * x[i];
      y[o] = k < last ? dec.act(s) : dec.mean(s);
    }
    x = y;
  });
  return x;
}

export function loadDecoder(url) {
  if (!decoders.has(url)) {
    const p = fetch(url, { cache: "force-cache" })
      .then((r) => {
        if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
        return r.arrayBuffer();
      })
      .then(parseDecoder);
    p.catch(() => decoders.delete(url)); // a failed fetch may be retried on the next render
    decoders.set(url, p);
  }
  return decoders.get(url);
}

function missingFeature() {
  if (typeof fetch !== "function") return "fetch";
  if (typeof Float32Array !== "function" || typeof DataView !== "function") return "typed arrays";
  if (typeof TextDecoder !== "function") return "TextDecoder";
  if (typeof ImageData !== "function") return "ImageData";
  const c = document.createElement("canvas");
  if (!c.getContext || !c.getContext("2d")) return "canvas 2d";
  return null;
}

// ---------------------------------------------------------------- drawing
function paint(ctx, image, means, shape) {
  const [c, h, w] = shape;
  const px = image.data;
  const plane = h * w;
  for (let p = 0; p < plane; p++) {
    for (let k = 0; k < 3; k++) {
      const v = means[(c === 1 ? 0 : k) * plane + p]; // channel-first, as vae_core.inference lays it out
      px[4 * p + k] = Math.min(255, Math.max(0, Math.round(v * 255)));
    }
    px[4 * p + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
}

function makeImage(panel, shape, cssPx) {
  const [, h, w] = shape;
  const canvas = panel.querySelector("canvas.vl-image");
  canvas.width = w;
  canvas.height = h;
  const scale = Math.max(1, Math.round(cssPx / h)); // whole pixels, as the server's upscale
  canvas.style.width = `${w * scale}px`;
  canvas.style.height = `${h * scale}px`;
  const ctx = canvas.getContext("2d");
  return { canvas, ctx, image: ctx.createImageData(w, h) };
}

function recordFrame(ms) {
  const frames = (globalThis.__vaeLabDecodeFrames ||= []); // read by bench/browser_decode.py
  frames.push(ms);
  if (frames.length > FRAMES_KEPT) frames.splice(0, frames.length - FRAMES_KEPT);
}

function fmt(v) {
  return (Math.round(v * 100) / 100).toFixed(2);
}

function pointText(z) {
  return "(" + z.slice(0, 8).map(fmt).join(", ") + (z.length > 8 ? ", …)" : ")");
}

// ---------------------------------------------------------------- the component
export default function (component) {
  const { data, parentElement, setStateValue } = component;
  const root = parentElement.querySelector(".vl-root");
  let view = views.get(parentElement);
  if (!view) {
    view = { z: null, dec: null, url: null, layout: null, data: null };
    views.set(parentElement, view);
  }
  view.data = data;
  view.setStateValue = setStateValue;
  const missing = missingFeature();
  if (missing) {
    setStateValue("status", { ok: false, reason: `this browser lacks ${missing}` });
    return;
  }
  root.dataset.mode = data.mode;
  const layout = JSON.stringify([data.mode, data.url, data.dims, data.lo, data.hi, data.labels, data.pair]);
  if (layout !== view.layout) {
    view.layout = layout;
    root.dataset.ready = "0";
    if (data.mode === "sliders") buildSliders(view, root);
    else buildPlane(view, root);
  }
  view.z = data.z.slice();
  if (data.mode === "sliders") syncSliders(view);
  view.image = makeImage(root, data.shape, data.image_px);
  root.querySelector(".vl-note").textContent = "";
  if (view.url !== data.url) {
    view.url = data.url;
    view.dec = null;
  }
  loadDecoder(data.url)
    .then((dec) => {
      if (view.url !== data.url) return; // a newer model arrived meanwhile
      view.dec = dec;
      root.dataset.ready = "1";
      root.dataset.bytes = String(dec.bytes);
      redraw(view, view.z);
      if (data.mode === "plane") drawPlane(view);
    })
    .catch((err) => {
      root.querySelector(".vl-note").textContent = String(err);
      setStateValue("status", { ok: false, reason: String(err.message || err) });
    });
}

function redraw(view, z) {
  if (!view.dec) return;
  const t0 = performance.now();
  const means = decode(view.dec, z);
  paint(view.image.ctx, view.image.image, means, view.data.shape);
  recordFrame(performance.now() - t0);
  const cap = view.image.canvas.parentElement.querySelector(".vl-caption");
  cap.textContent = view.data.text.caption.replace("{point}", pointText(z));
}

// ---------------------------------------------------------------- mode "sliders": the Latent explorer
function buildSliders(view, root) {
  const { dims, lo, hi, labels } = view.data;
  const box = root.querySelector(".vl-controls");
  box.replaceChildren();
  box.classList.toggle("vl-two", dims.length > 4);
  view.inputs = dims.map((j, i) => {
    const row = document.createElement("label");
    row.className = "vl-slider";
    const name = document.createElement("span");
    name.className = "vl-label";
    name.textContent = labels[i];
    const value = document.createElement("span");
    value.className = "vl-value";
    const input = document.createElement("input");
    input.type = "range";
    input.min = String(lo[i]);
    input.max = String(hi[i]);
    input.step = String((hi[i] - lo[i]) / 120);
    input.dataset.dim = String(j);
    input.setAttribute("aria-label", labels[i]);
    // while dragged: decode and draw here, every move; the server hears nothing
    input.addEventListener("input", () => {
      view.z[j] = parseFloat(input.value);
      value.textContent = fmt(view.z[j]);
      redraw(view, view.z);
    });
    // at release: one rerun, with the final point (its traversal is drawn there)
    input.addEventListener("change", () => {
      view.z[j] = parseFloat(input.value);
      view.setStateValue("release", { z: view.z.slice(), id: `${Date.now()}-${Math.random()}` });
    });
    const head = document.createElement("span");
    head.className = "vl-head";
    head.append(name, value);
    row.append(head, input);
    box.append(row);
    return { j, input, value };
  });
}

function syncSliders(view) {
  for (const { j, input, value } of view.inputs) {
    input.value = String(view.z[j]);
    value.textContent = fmt(view.z[j]);
  }
}

// ---------------------------------------------------------------- mode "plane": the Manifold page
function buildPlane(view, root) {
  const box = root.querySelector(".vl-controls");
  box.replaceChildren();
  box.classList.remove("vl-two");
  const canvas = document.createElement("canvas");
  canvas.className = "vl-plane";
  const side = view.data.plane_px;
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(side * dpr);
  canvas.height = Math.round(side * dpr);
  canvas.style.width = `${side}px`;
  canvas.style.height = `${side}px`;
  box.append(canvas);
  view.plane = { canvas, side, dpr, hover: null };
  const toZ = (ev) => {
    const r = canvas.getBoundingClientRect();
    const fx = (ev.clientX - r.left) / r.width, fy = (ev.clientY - r.top) / r.height;
    const { lo, hi, pair } = view.data;
    const z = view.z.slice();
    z[pair[0]] = lo[0] + fx * (hi[0] - lo[0]);
    z[pair[1]] = hi[1] - fy * (hi[1] - lo[1]); // up is +
    return z;
  };
  canvas.addEventListener("pointermove", (ev) => {
    const z = toZ(ev);
    view.plane.hover = z;
    redraw(view, z);
    drawPlane(view);
  });
  canvas.addEventListener("pointerleave", () => {
    view.plane.hover = null;
    redraw(view, view.z);
    drawPlane(view);
  });
  canvas.addEventListener("click", (ev) => {
    const z = toZ(ev);
    view.z = z;
    redraw(view, z);
    drawPlane(view);
    view.setStateValue("pin", { z, id: `${Date.now()}-${Math.random()}` });
  });
}

function drawPlane(view) {
  const { canvas, side, dpr, hover } = view.plane;
  const { lo, hi, pair, points, colors, text } = view.data;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, side, side);
  ctx.fillStyle = "#fafafa";
  ctx.fillRect(0, 0, side, side);
  const sx = (v) => ((v - lo[0]) / (hi[0] - lo[0])) * side;
  const sy = (v) => side - ((v - lo[1]) / (hi[1] - lo[1])) * side;
  ctx.strokeStyle = "#ddd";
  ctx.beginPath(); // the axes through 0 where they are in view
  if (lo[0] < 0 && hi[0] > 0) { ctx.moveTo(sx(0), 0); ctx.lineTo(sx(0), side); }
  if (lo[1] < 0 && hi[1] > 0) { ctx.moveTo(0, sy(0)); ctx.lineTo(side, sy(0)); }
  ctx.stroke();
  ctx.globalAlpha = 0.55;
  for (let i = 0; i < points.x.length; i++) {
    ctx.fillStyle = colors[points.c[i] % colors.length];
    ctx.fillRect(sx(points.x[i]) - 1.5, sy(points.y[i]) - 1.5, 3, 3);
  }
  ctx.globalAlpha = 1;
  const mark = (z, color, r) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.arc(sx(z[pair[0]]), sy(z[pair[1]]), r, 0, 2 * Math.PI);
    ctx.stroke();
  };
  mark(view.z, "#d62728", 6); // the explorer's point
  if (hover) mark(hover, "#111", 4);
  ctx.fillStyle = "#333";
  ctx.font = "12px sans-serif";
  ctx.fillText(`${text.x} ${fmt(lo[0])} … ${fmt(hi[0])}`, 6, side - 6);
  ctx.save();
  ctx.translate(14, side - 6);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText(`${text.y} ${fmt(lo[1])} … ${fmt(hi[1])}`, 14, 0);
  ctx.restore();
}
