// The workload pages' script: an element with data-poll="N" (a sync run under
// way, a batch not settled) reloads its content from the same page every N
// seconds while the page is visible, and stops once the server leaves the
// attribute off (the work settled). Pages work without it: reload to refresh.
"use strict";

(function () {
  const regions = () => document.querySelectorAll("[data-poll]");
  if (regions().length === 0) return;
  const seconds = Math.max(1, Number(regions()[0].dataset.poll) || 3);

  let timer = null;
  const tick = async () => {
    timer = null;
    if (document.hidden) return; // resumed by visibilitychange
    try {
      const res = await fetch(location.href, { headers: { "x-dashboard-fragment": "poll" } });
      if (res.ok) {
        const doc = new DOMParser().parseFromString(await res.text(), "text/html");
        for (const region of regions()) {
          const fresh = doc.getElementById(region.id);
          if (!fresh) continue;
          if (fresh.innerHTML !== region.innerHTML) region.innerHTML = fresh.innerHTML;
          if (!fresh.hasAttribute("data-poll")) region.removeAttribute("data-poll");
        }
      } else if (res.status === 401) {
        return; // signed out: stop
      }
    } catch (_) {
      // A network hiccup: try again next time.
    }
    if (regions().length > 0) timer = setTimeout(tick, seconds * 1000);
  };
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && timer === null && regions().length > 0) tick();
  });
  timer = setTimeout(tick, seconds * 1000);
})();
