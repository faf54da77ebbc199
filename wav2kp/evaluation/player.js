// wav2kp keypoint player: the clip's video (and its audio) is the clock; every panel draws the
// video frame being shown and the keypoints of that frame. No kernel, no network: the data is
// the JSON embedded beside this script by wav2kp.evaluation.viewer.KeypointPlayer.
(function () {
  "use strict";
  const root = document.getElementById("__ROOT_ID__");
  if (!root || root.dataset.ready) return;
  root.dataset.ready = "1";
  const data = JSON.parse(root.querySelector("script.w2k-data").textContent);
  const ALL = "all models (side by side)";
  // the 68-point layout: polylines [first, last, closed]
  const PARTS = [[0, 16, false], [17, 21, false], [22, 26, false], [27, 30, false],
    [31, 35, false], [36, 41, true], [42, 47, true], [48, 59, true], [60, 67, true]];

  const $ = (sel) => root.querySelector(sel);
  const video = $("video");
  const panels = $(".w2k-panels");
  const clipSel = $(".w2k-clip"), modelSel = $(".w2k-model");
  const truthBox = $(".w2k-truth"), bgSel = $(".w2k-bg");
  const playBtn = $(".w2k-play"), slider = $(".w2k-slider"), label = $(".w2k-label");

  const dot = (colour) => // a colour swatch that shows on a white page too
    `<span style="color:${colour};background:#333;border-radius:3px;padding:0 2px">&#9679;</span>`;

  function decode(b64) {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const ints = new Int16Array(bytes.buffer);
    const out = new Float32Array(ints.length);
    for (let i = 0; i < ints.length; i++) {
      out[i] = ints[i] === -32768 ? NaN : ints[i] / data.quantum;
    }
    return out;
  }

  for (const [i, c] of data.clips.entries()) {
    clipSel.add(new Option(c.title ? `${c.clip} - ${c.title}` : c.clip, String(i)));
  }
  for (const m of data.models) modelSel.add(new Option(m, m));
  if (data.models.length > 1) modelSel.add(new Option(ALL, ALL));

  const state = { clip: null, frame: -1, drawnTime: NaN, draws: 0, points: 0 };

  function frameAt(t) { // the frame shown at time t: the last one that starts at or before t
    const times = state.clip.times;
    let lo = 0, hi = times.length - 1;
    if (t < times[0]) return 0;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (times[mid] <= t + 1e-6) lo = mid; else hi = mid - 1;
    }
    return lo;
  }

  function shownModels() {
    const m = modelSel.value;
    if (!m) return [];
    return m === ALL ? data.models : [m];
  }

  function layout() {
    const c = state.clip;
    const models = shownModels();
    const names = models.length ? models : ["truth"];
    const size = names.length > 2 ? Math.min(data.size, 240) : data.size; // many side by side
    const scale = Math.min(1, size / Math.max(c.w, c.h));
    const w = Math.round(c.w * scale), h = Math.round(c.h * scale);
    panels.innerHTML = "";
    state.canvases = names.map((name) => {
      const fig = document.createElement("figure");
      const cv = document.createElement("canvas");
      cv.width = w; cv.height = h;
      cv.dataset.model = name;
      const cap = document.createElement("figcaption");
      const colour = data.colours[name] || data.truthColour;
      cap.innerHTML = `${dot(colour)} ${name}`;
      fig.append(cv, cap);
      panels.append(fig);
      return { cv, name, scale: w / c.w };
    });
  }

  function drawPoints(ctx, pts, k, s, colour, radius, lines) {
    const base = k * 136;
    if (!(base + 135 < pts.length) || Number.isNaN(pts[base])) return 0;
    const P = (i) => [(pts[base + 2 * i] + 0.5) * s - 0.5, (pts[base + 2 * i + 1] + 0.5) * s - 0.5];
    ctx.strokeStyle = colour; ctx.fillStyle = colour; ctx.lineWidth = 1.2;
    for (const [a, b, closed] of lines ? PARTS : []) {
      ctx.beginPath();
      for (let i = a; i <= b; i++) {
        const [x, y] = P(i);
        if (i === a) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      }
      if (closed) ctx.closePath();
      ctx.stroke();
    }
    for (let i = 0; i < 68; i++) {
      const [x, y] = P(i);
      ctx.beginPath(); ctx.arc(x, y, radius, 0, 2 * Math.PI); ctx.fill();
    }
    return 68;
  }

  function mouthError(pred, truth, k) { // mean mouth-point distance, % of the true IOD
    const b = k * 136;
    const eye = (from) => {
      let x = 0, y = 0;
      for (let i = from; i < from + 6; i++) { x += truth[b + 2 * i]; y += truth[b + 2 * i + 1]; }
      return [x / 6, y / 6];
    };
    const [rx, ry] = eye(36), [lx, ly] = eye(42);
    const iod = Math.hypot(lx - rx, ly - ry);
    let sum = 0;
    for (let i = 48; i < 68; i++) {
      sum += Math.hypot(pred[b + 2 * i] - truth[b + 2 * i], pred[b + 2 * i + 1] - truth[b + 2 * i + 1]);
    }
    return (100 * sum) / 20 / iod;
  }

  function draw(t) {
    const c = state.clip;
    const k = frameAt(t);
    let points = 0;
    for (const p of state.canvases) {
      const ctx = p.cv.getContext("2d");
      if (bgSel.value === "video" && video.readyState >= 2) {
        ctx.drawImage(video, 0, 0, p.cv.width, p.cv.height);
      } else {
        ctx.fillStyle = "#1b1e22"; ctx.fillRect(0, 0, p.cv.width, p.cv.height);
      }
      if (truthBox.checked || p.name === "truth") {
        points += drawPoints(ctx, c.truth, k, p.scale, data.truthColour, 1.5, p.name === "truth");
      }
      if (c.preds[p.name]) points += drawPoints(ctx, c.preds[p.name], k, p.scale, data.colours[p.name], 1.6, true);
    }
    state.frame = k; state.drawnTime = t; state.draws += 1; state.points = points;
    root.dataset.frame = String(k);
    slider.value = String(k);
    const parts = [`<b>${c.clip}</b> frame ${k + 1}/${c.times.length}, t = ${c.times[k].toFixed(3)} s`];
    for (const m of shownModels()) {
      if (!c.preds[m]) { parts.push(`${m}: no prediction`); continue; }
      const e = mouthError(c.preds[m], c.truth, k);
      parts.push(`${dot(data.colours[m])} ${m}: mouth ` +
        (Number.isFinite(e) ? `${e.toFixed(1)} % IOD` : "no truth"));
    }
    label.innerHTML = parts.join(" &nbsp; ");
  }

  // while playing: draw each frame the video presents, at that frame's own media time
  const hasVFC = "requestVideoFrameCallback" in HTMLVideoElement.prototype;
  function onFrame(now, meta) {
    draw(meta.mediaTime);
    if (!video.paused) video.requestVideoFrameCallback(onFrame);
  }
  function onTick() {
    draw(video.currentTime);
    if (!video.paused) requestAnimationFrame(onTick);
  }
  video.addEventListener("play", () => {
    playBtn.textContent = "\u275A\u275A pause";
    if (hasVFC) video.requestVideoFrameCallback(onFrame); else requestAnimationFrame(onTick);
  });
  video.addEventListener("pause", () => { playBtn.textContent = "\u25B6 play"; draw(video.currentTime); });
  video.addEventListener("seeked", () => draw(video.currentTime));
  video.addEventListener("loadeddata", () => draw(video.currentTime));
  video.addEventListener("ended", () => draw(video.currentTime));
  video.addEventListener("error", () => {
    label.textContent = `clip ${state.clip.clip}: the browser cannot play its video (${video.error && video.error.message})`;
  });

  function showClip(i) {
    const c = data.clips[i];
    if (!c.decoded) {
      c.truth = decode(c.truth);
      const preds = {};
      for (const [m, b64] of Object.entries(c.preds)) preds[m] = decode(b64);
      c.preds = preds;
      c.decoded = true;
    }
    state.clip = c;
    video.pause();
    video.src = c.video;
    slider.max = String(c.times.length - 1);
    slider.value = "0";
    layout();
    draw(0);
  }

  clipSel.addEventListener("change", () => showClip(Number(clipSel.value)));
  modelSel.addEventListener("change", () => { layout(); draw(video.currentTime); });
  truthBox.addEventListener("change", () => draw(video.currentTime));
  bgSel.addEventListener("change", () => draw(video.currentTime));
  playBtn.addEventListener("click", () => { if (video.paused) video.play(); else video.pause(); });
  slider.addEventListener("input", () => {
    const k = Number(slider.value);
    const times = state.clip.times;
    const next = k + 1 < times.length ? times[k + 1] : times[k] + 0.04;
    video.currentTime = (times[k] + next) / 2; // the middle of frame k: no rounding to k-1
    draw(video.currentTime);
  });

  window.wav2kpPlayers = window.wav2kpPlayers || {};
  window.wav2kpPlayers[root.id] = {
    video,
    state: () => ({
      clip: state.clip.clip, frame: state.frame, drawnTime: state.drawnTime,
      currentTime: video.currentTime, expectedFrame: frameAt(video.currentTime),
      playing: !video.paused, draws: state.draws, points: state.points,
      panels: state.canvases.map((p) => p.name),
    }),
    select: (clip, model) => {
      if (clip !== undefined && clip !== null) {
        clipSel.value = String(data.clips.findIndex((c) => c.clip === clip));
        showClip(Number(clipSel.value));
      }
      if (model !== undefined && model !== null) { modelSel.value = model; layout(); draw(video.currentTime); }
    },
    models: data.models.concat(data.models.length > 1 ? [ALL] : []),
    clips: data.clips.map((c) => c.clip),
  };
  if (data.models.length) modelSel.value = data.model || data.models[0];
  showClip(0);
})();
