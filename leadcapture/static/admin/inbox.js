// The dev inbox shows new email as it is sent: every few seconds it reads the page again and swaps in the
// list (and the demo clock), leaving focus and scrolling alone, and says so to screen readers. A page that
// reloaded itself would take the reader's place away (WCAG 2.2.1); without script, "check again" reloads.
"use strict";
(() => {
  const rows = document.getElementById("inbox-rows");
  const news = document.getElementById("inbox-news");
  if (!rows || !news || !window.fetch || !window.DOMParser) return;
  const EVERY_MS = 5000;

  async function look() {
    if (document.hidden) return;
    const response = await fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    const freshRows = fresh.getElementById("inbox-rows");
    if (freshRows && freshRows.innerHTML !== rows.innerHTML) {
      const known = new Set([...rows.querySelectorAll("tr[data-id]")].map((row) => row.dataset.id));
      const added = [...freshRows.querySelectorAll("tr[data-id]")].filter((row) => !known.has(row.dataset.id));
      rows.innerHTML = freshRows.innerHTML;
      if (added.length) news.textContent = added.length === 1 ? "1 new email" : `${added.length} new emails`;
    }
    const clock = document.getElementById("demo-clock");
    const freshClock = fresh.getElementById("demo-clock");
    if (clock && freshClock) clock.textContent = freshClock.textContent;
  }

  setInterval(() => look().catch(() => {}), EVERY_MS);
})();
