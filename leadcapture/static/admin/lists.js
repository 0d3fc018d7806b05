/* Admin list editing and copying, on top of pages that work without it.
 * Rows of a [data-sortable] list move in place when their "Move up" / "Move down" buttons are pressed (the
 * posted order is the page order, so Save keeps it); without this script those buttons send the page back.
 * A [data-copy] button copies the text of the element it names. */
(() => {
  "use strict";
  const live = document.createElement("p");
  live.id = "admin-live";
  live.className = "visually-hidden";
  live.setAttribute("aria-live", "polite");
  document.body.append(live);
  const say = (text) => { live.textContent = ""; setTimeout(() => { live.textContent = text; }, 50); };

  function renumber(list) {
    const rows = [...list.querySelectorAll(":scope > [data-row]")];
    rows.forEach((row, index) => {
      for (const button of row.querySelectorAll("button[name=action]")) {
        button.value = button.value.replace(/-[0-9]+$/, "-" + index);
      }
      const position = row.querySelector("[data-position]");
      if (position) position.textContent = String(index + 1);
    });
    return rows;
  }

  document.addEventListener("click", (event) => {
    const button = event.target instanceof Element && event.target.closest("[data-sortable] button[data-move]");
    if (!button) return;
    event.preventDefault();
    const row = button.closest("[data-row]");
    const list = row.parentElement;
    const up = button.dataset.move === "up";
    const other = up ? row.previousElementSibling : row.nextElementSibling;
    if (!other) return say(up ? "Already first." : "Already last.");
    if (up) list.insertBefore(row, other);
    else list.insertBefore(other, row);
    const rows = renumber(list);
    button.focus();
    const unsaved = document.getElementById(list.closest("form").dataset.unsaved || "");
    if (unsaved) unsaved.hidden = false;
    say(`Moved to position ${rows.indexOf(row) + 1} of ${rows.length}. Not saved yet.`);
  });

  for (const button of document.querySelectorAll("[data-copy]")) {
    const source = document.getElementById(button.dataset.copy);
    if (!source) continue;
    const label = button.textContent;
    button.hidden = false;
    button.addEventListener("click", () => {
      const text = source.value !== undefined ? source.value : source.textContent;
      const done = () => {
        say("Copied.");
        button.textContent = "Copied";
        setTimeout(() => { button.textContent = label; }, 2000);
      };
      const fallback = () => {
        if (source.select) source.select();
        try { if (document.execCommand("copy")) return done(); } catch (e) { /* reported below */ }
        say("Could not copy: select the text and copy it yourself.");
      };
      if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, fallback);
      else fallback();
    });
  }
})();
