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
      statusLine.textContent = "";
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
