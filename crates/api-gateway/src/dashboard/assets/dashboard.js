// The dashboard's one script. Pages work without it (reload to refresh);
// with it, counts, charts and lists follow the server's live snapshots.
"use strict";

(function () {
  // Counts: every [data-queue][data-field] element follows /dashboard/live.
  const cells = document.querySelectorAll("[data-queue][data-field]");
  const status = document.querySelector("[data-live-status]");
  const lists = document.querySelectorAll("[data-live-list]");
  const charts = document.querySelectorAll("[data-chart]");
  if (cells.length === 0 && lists.length === 0 && charts.length === 0) return;
  if (!("EventSource" in window)) return;

  let listRefresh = null;
  const refreshLists = () => {
    // At most one list request in flight, and one per second at most.
    if (listRefresh) return;
    listRefresh = setTimeout(async () => {
      try {
        const res = await fetch(location.href, { headers: { "x-dashboard-fragment": "list" } });
        if (res.ok) {
          const html = await res.text();
          const doc = new DOMParser().parseFromString(html, "text/html");
          for (const list of lists) {
            const fresh = doc.getElementById(list.id);
            if (fresh && fresh.innerHTML !== list.innerHTML) list.innerHTML = fresh.innerHTML;
          }
        }
      } finally {
        listRefresh = null;
      }
    }, 1000);
  };

  const source = new EventSource("/dashboard/live");
  source.addEventListener("stats", (event) => {
    const snapshot = JSON.parse(event.data);
    let changed = false;
    for (const cell of cells) {
      const queue = snapshot.queues[cell.dataset.queue];
      if (!queue) continue;
      const value = String(queue[cell.dataset.field]);
      if (cell.textContent !== value) {
        cell.textContent = value;
        changed = true;
      }
    }
    if (changed && lists.length > 0) refreshLists();
    if (status) status.textContent = snapshot.error || "Live";
  });
  source.addEventListener("charts", (event) => {
    const all = JSON.parse(event.data);
    for (const chart of charts) {
      const svg = all[chart.dataset.chart];
      if (svg !== undefined && chart.innerHTML !== svg) chart.innerHTML = svg;
    }
  });
  source.addEventListener("error", () => {
    // The browser reconnects by itself; a closed source means we were signed out.
    if (status) {
      status.textContent = source.readyState === EventSource.CLOSED
        ? "Live updates stopped: reload the page (you may need to sign in again)."
        : "Reconnecting…";
    }
  });
})();
