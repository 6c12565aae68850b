// The draw-a-digit page: strokes on a canvas, read by the server when a
// stroke ends. Plain JavaScript, no framework, nothing from elsewhere.
"use strict";

const canvas = document.getElementById("canvas");
const context = canvas.getContext("2d");
const prediction = document.getElementById("prediction");
const bars = document.getElementById("bars");
const statusLine = document.getElementById("status");

// Each drawing state gets a number; an answer is shown only if it is the
// answer to the latest one, so a slow reply to an earlier stroke (or to a
// drawing since cleared) never overwrites the current result.
let drawingVersion = 0;
let drawing = false;
let lastPoint = null;

function setUpPen() {
  // Draw at the screen's resolution, in CSS pixels.
  const scale = window.devicePixelRatio || 1;
  const size = canvas.getBoundingClientRect();
  canvas.width = Math.round(size.width * scale);
  canvas.height = Math.round(size.height * scale);
  context.setTransform(scale, 0, 0, scale, 0, 0);
  context.lineCap = "round";
  context.lineJoin = "round";
  context.lineWidth = 20;
  context.strokeStyle = "#000";
  context.fillStyle = "#000";
}

function pointOf(event) {
  const box = canvas.getBoundingClientRect();
  return { x: event.clientX - box.left, y: event.clientY - box.top };
}

function dot(point) {
  context.beginPath();
  context.arc(point.x, point.y, context.lineWidth / 2, 0, 2 * Math.PI);
  context.fill();
}

canvas.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  canvas.setPointerCapture(event.pointerId);
  drawing = true;
  drawingVersion += 1;
  lastPoint = pointOf(event);
  dot(lastPoint);
});

canvas.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const point = pointOf(event);
  context.beginPath();
  context.moveTo(lastPoint.x, lastPoint.y);
  context.lineTo(point.x, point.y);
  context.stroke();
  lastPoint = point;
});

function endStroke(event) {
  if (!drawing) return;
  drawing = false;
  lastPoint = null;
  drawingVersion += 1;
  read(drawingVersion);
}
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);

function read(version) {
  statusLine.textContent = "Reading\u2026";
  canvas.toBlob(async (blob) => {
    try {
      const response = await fetch("/predict", {
        method: "POST",
        headers: { "Content-Type": "image/png" },
        body: blob,
      });
      const answer = await response.json();
      if (version !== drawingVersion) return; // an answer to an older drawing
      if (!response.ok) {
        statusLine.textContent = answer.error || `The server answered ${response.status}.`;
        return;
      }
      show(answer);
      // Only this read's own line goes: a failed /explain of the same drawing
      // may have answered first, and its message stays.
      if (statusLine.textContent === "Reading\u2026") statusLine.textContent = "";
    } catch (error) {
      if (version === drawingVersion) {
        statusLine.textContent = `The server could not be reached (${error.message}).`;
      }
    }
  }, "image/png");
}

function show(answer) {
  prediction.textContent = String(answer.label);
  const best = answer.probabilities.indexOf(Math.max(...answer.probabilities));
  bars.replaceChildren(
    ...answer.classes.map((label, i) => {
      const row = document.createElement("li");
      const percent = 100 * answer.probabilities[i];
      if (i === best) row.className = "best";
      const name = document.createElement("span");
      name.textContent = String(label);
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = `${percent.toFixed(1)}%`;
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = `${percent.toFixed(1)}%`;
      row.append(name, bar, value);
      return row;
    })
  );
}

document.getElementById("clear").addEventListener("click", () => {
  drawingVersion += 1; // answers still on their way are now stale
  context.clearRect(0, 0, canvas.width, canvas.height);
  prediction.textContent = "\u2013";
  bars.replaceChildren();
  statusLine.textContent = "";
});

setUpPen();

// Which pixels decided: with the toggle on, each stroke's end also asks
// /explain for the occlusion map of the digit as the server reads it (28x28,
// cropped to its ink, scaled to a 20-pixel box, centred by mass at pixel 14),
// and draws it over the drawing: the map's pixel (u, v) is placed where the
// drawing's own centre of mass and ink box put it.
const mapCanvas = document.getElementById("map");
const mapContext = mapCanvas.getContext("2d");
const mapToggle = document.getElementById("explain");
let explainedVersion = -1;
let mapsShown = 0;

function inkGeometry() {
  // The drawing's centre of mass (alpha-weighted, in pixel indices) and the
  // longer side of its ink box, as the server's reader finds them.
  const { width, height } = canvas;
  const pixels = context.getImageData(0, 0, width, height).data;
  let total = 0, sumX = 0, sumY = 0;
  let top = height, bottom = -1, left = width, right = -1;
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      const alpha = pixels[4 * (y * width + x) + 3];
      if (alpha === 0) continue;
      total += alpha;
      sumX += alpha * x;
      sumY += alpha * y;
      if (alpha > 0.05 * 255) {
        top = Math.min(top, y); bottom = Math.max(bottom, y);
        left = Math.min(left, x); right = Math.max(right, x);
      }
    }
  }
  if (bottom < 0) return null;
  const side = Math.max(bottom - top + 1, right - left + 1);
  return { x: sumX / total, y: sumY / total, scale: 20 / side };
}

function clearMap() {
  mapContext.clearRect(0, 0, mapCanvas.width, mapCanvas.height);
}

function drawMap(attributions, geometry) {
  const size = attributions.length;
  const largest = Math.max(...attributions.flat().map(Math.abs)) || 1;
  const small = document.createElement("canvas");
  small.width = small.height = size;
  const image = small.getContext("2d").createImageData(size, size);
  attributions.flat().forEach((value, i) => {
    const [r, g, b] = value > 0 ? [215, 48, 39] : [33, 102, 172];
    image.data.set([r, g, b, Math.round(255 * Math.min(1, Math.abs(value) / largest))], 4 * i);
  });
  small.getContext("2d").putImageData(image, 0, 0);
  mapCanvas.width = canvas.width;
  mapCanvas.height = canvas.height;
  clearMap();
  mapContext.imageSmoothingEnabled = false;
  const centre = (size / 2) + 0.5; // the reader's centre, 14, plus half a pixel
  mapContext.drawImage(
    small,
    geometry.x + 0.5 - centre / geometry.scale,
    geometry.y + 0.5 - centre / geometry.scale,
    size / geometry.scale,
    size / geometry.scale
  );
  mapsShown += 1;
  mapCanvas.dataset.shown = String(mapsShown);
}

function explain(version) {
  const geometry = inkGeometry();
  if (geometry === null) return;
  explainedVersion = version;
  canvas.toBlob(async (blob) => {
    try {
      const response = await fetch("/explain", {
        method: "POST",
        headers: { "Content-Type": "image/png" },
        body: blob,
      });
      const answer = await response.json();
      if (version !== drawingVersion || !mapToggle.checked) return; // stale
      if (!response.ok) {
        statusLine.textContent = answer.error || `The server answered ${response.status}.`;
        return;
      }
      drawMap(answer.attributions, geometry);
    } catch (error) {
      if (version === drawingVersion) {
        statusLine.textContent = `The server could not be reached (${error.message}).`;
      }
    }
  }, "image/png");
}

function explainIfNew() {
  if (mapToggle.checked && !drawing && drawingVersion !== explainedVersion) {
    explain(drawingVersion);
  }
}
canvas.addEventListener("pointerup", explainIfNew);
canvas.addEventListener("pointercancel", explainIfNew);
// A map belongs to the drawing it was made for: a new stroke wipes it, so
// that a failed or slow /explain of the changed drawing never leaves the old
// map over it, placed by the old geometry.
canvas.addEventListener("pointerdown", clearMap);

mapToggle.addEventListener("change", () => {
  mapCanvas.hidden = !mapToggle.checked;
  if (mapToggle.checked) {
    explainedVersion = -1;
    explainIfNew();
  } else {
    clearMap();
  }
});

document.getElementById("clear").addEventListener("click", () => {
  explainedVersion = drawingVersion; // nothing to explain on blank paper
  clearMap();
});
