// A job's page follows the job while it runs: it asks /api/jobs/ID/events for the steps after the last one it
// shows and, when there are new ones, swaps in the charts the server draws (one chart renderer: the server's).
"use strict";
(function () {
  const charts = document.getElementById("charts");
  if (!charts) return;
  const job = charts.dataset.job;
  const INTERVAL_MS = 1000;

  async function poll() {
    const after = charts.dataset.after;
    const response = await fetch(`/api/jobs/${job}/events?after=${after}`, {credentials: "same-origin"});
    if (!response.ok) return true;  // keep trying: a restarting server comes back
    const news = await response.json();
    document.getElementById("status").textContent = news.status;
    const steps = document.getElementById("steps");
    steps.textContent = steps.textContent.replace(/^\d+/, String(news.steps));
    if (news.events.length) {
      const drawn = await fetch(`/jobs/${job}/charts`, {credentials: "same-origin"});
      if (drawn.ok) {
        charts.innerHTML = await drawn.text();
        charts.dataset.after = String(news.last_seq);
      }
    }
    return !["succeeded", "failed", "cancelled"].includes(news.status);
  }

  async function loop() {
    let going = true;
    try {
      going = await poll();
    } catch (error) {
      going = true;  // a network hiccup: try again next time
    }
    if (going) setTimeout(loop, INTERVAL_MS);
  }

  if (charts.dataset.finished !== "true") setTimeout(loop, INTERVAL_MS);
})();
