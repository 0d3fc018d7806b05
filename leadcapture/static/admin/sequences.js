// The sequence editor: keeps the audience count current while the rule is being edited.
// Everything else on the page is a plain form; without this script "Count again" does the same.
(function () {
  "use strict";
  var form = document.getElementById("sequence-form");
  var output = document.getElementById("audience-count");
  if (!form || !output || !window.fetch || !window.URLSearchParams) return;
  var url = form.getAttribute("data-count-url");
  var timer = null;
  var latest = 0;

  function relevant(name) {
    return name === "locale" || name === "fresh_only" || name.indexOf("rule-") === 0;
  }

  function query() {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, name) {
      if (relevant(name) && typeof value === "string") params.append(name, value);
    });
    return params.toString();
  }

  function refresh() {
    var asked = ++latest;
    output.setAttribute("aria-busy", "true");
    fetch(url + "?" + query(), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      })
      .then(function (result) {
        if (asked !== latest) return; // an answer to an older rule
        output.textContent = result.ok
          ? result.body.text
          : "Cannot count: " + (result.body.errors || ["the rule is not valid"]).join("; ");
      })
      .catch(function () {
        if (asked === latest) output.textContent = "Cannot count right now.";
      })
      .then(function () {
        if (asked === latest) output.removeAttribute("aria-busy");
      });
  }

  function changed(event) {
    var target = event.target;
    if (!target || !target.name || !relevant(target.name)) return;
    clearTimeout(timer);
    timer = setTimeout(refresh, 250);
  }

  form.addEventListener("change", changed);
  form.addEventListener("input", changed);
})();
