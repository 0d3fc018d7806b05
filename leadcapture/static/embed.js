/* leadcapture widget: <script async src="BASE/embed.js"></script><div data-leadcapture="SLUG"></div>
 * Hand-written, no dependencies, no build; ≤ 5 KB gzipped (bench/widget_size.py). Each widget renders in an
 * open shadow root: page CSS stays out, ours stays in, and axe-core can audit it. Never throws into the page. */
((w, d) => {
  "use strict";
  if (w.__leadcapture || !w.fetch || !d.head.attachShadow) return; // included twice, or a browser too old
  const me = d.currentScript || d.querySelector('script[src*="/embed.js"]');
  if (!me) return;
  const base = me.src.replace(/\/embed\.js([?#].*)?$/, "");
  w.__leadcapture = { base, scan };

  // First-party memory: the server's stand-in for the reader's address (r), its mask to show them (m), when
  // each question was answered (a), and per widget the width and height its first step had (h). Forgetting the
  // reader keeps h: it says nothing about anyone.
  const K = "leadcapture";
  const mem = () => { try { return JSON.parse(localStorage[K]) || {}; } catch (e) { return {}; } };
  const keep = (m, hs) => { try { localStorage[K] = JSON.stringify({ ...m, h: hs || mem().h }); } catch (e) {} };
  // The same mask as the server's (services/widgets.py mask_address), for the address typed here.
  const hide = (e) => { const i = e.lastIndexOf("@"), l = e.slice(0, i); return l[0] + "•••" + (l[2] ? l.slice(-1) : "") + e.slice(i); };
  // When the reader last pressed something: a box that resizes later than that moves the page on its own.
  let T = 0;
  // Sizes a box after an answer from the network: its own height right after the reader's input (the browser
  // leaves that out of layout shift), otherwise no smaller than it was.
  const fit = (f, was) => f.style.minHeight = performance.now() - T < 400 ? "" : was + "px";
  // Our email's links name the reader (lc=): off the address bar, so a shared link does not. Kept (p) once the
  // server knows it, it is this browser's proof of the address, the one thing that lets answers count at once.
  let lc;
  try {
    const u = new URL(location.href);
    if ((lc = u.searchParams.get("lc"))) u.searchParams.delete("lc"), history.replaceState(history.state, "", u);
  } catch (e) {}
  lc = lc || mem().p;

  const BLUE = "#0b57d0", RED = "#b3261e";
  const CSS = `:host{display:block}
.w{all:initial;display:flex;flex-direction:column;justify-content:center;box-sizing:border-box;padding:20px 24px;
border:1px solid #aab2bd;border-radius:8px;background:#f5f7fa;color:#1b1f24;text-align:left;
font:16px/1.5 system-ui,sans-serif}
:where(.w *){box-sizing:border-box;font:inherit;color:inherit;margin:0;padding:0}
.s{display:flex;flex-direction:column;gap:12px}
h2,legend{font-weight:700;font-size:19px;line-height:1.3}
fieldset{border:0;min-width:0;display:flex;flex-direction:column;gap:4px}
legend{margin-bottom:6px}
label[for]{font-weight:600}
.o{display:flex;gap:10px;align-items:flex-start;padding:4px 0;cursor:pointer}
input[type=radio],input[type=checkbox]{flex:none;width:20px;height:20px;margin-top:2px;accent-color:${BLUE}}
input[type=email],input[type=text]{width:100%;padding:9px 12px;border:1px solid #5d6775;border-radius:6px;background:#fff}
input[aria-invalid=true]{border-color:${RED};box-shadow:0 0 0 1px ${RED}}
.a{display:flex;gap:12px;padding-top:8px}
button{cursor:pointer;border:2px solid ${BLUE};border-radius:6px;padding:8px 18px;font-weight:600;background:${BLUE};color:#fff}
button.b{background:#fff;color:${BLUE}}
button[aria-disabled=true]{cursor:progress}
:focus-visible{outline:3px solid ${BLUE};outline-offset:2px}
.p{font-size:14px;color:#47505c}
.e{color:${RED};font-weight:600}
.e:empty,[hidden]{display:none!important}
.h{position:absolute;left:-9999px;width:1px;height:1px;overflow:hidden}
@media(max-width:480px){.w{padding:16px}}`;
  let sheet;

  // h(tag, {attr: value}, "text" | [children]); server strings only ever become text, never HTML.
  const h = (tag, attrs, kids) => {
    const el = d.createElement(tag);
    for (const k in attrs) el.setAttribute(k, attrs[k]);
    if (typeof kids == "string") el.textContent = kids;
    else if (kids) for (const kid of kids) if (kid) el.append(kid);
    return el;
  };
  const warn = (slug, why) => console.warn(`leadcapture: widget "${slug}" not shown: ${why}`);

  function scan() {
    for (const el of d.querySelectorAll("[data-leadcapture]")) if (!el.__lc) mount(el);
  }

  function mount(el) {
    el.__lc = 1;
    // data-preview (the admin's preview): the whole form, but it never sends.
    const slug = el.getAttribute("data-leadcapture"), pv = el.hasAttribute("data-preview");
    let root, box = h("div", { class: "w" });
    try { root = el.attachShadow({ mode: "open" }); } catch (e) { return warn(slug, e); }
    // A constructed sheet passes a strict CSP (no 'unsafe-inline' styles); <style> is the fallback.
    try {
      if (!sheet) (sheet = new CSSStyleSheet()).replaceSync(CSS);
      root.adoptedStyleSheets = [sheet];
    } catch (e) { root.append(h("style", {}, CSS)); }
    // No layout shift on load: the box is reserved now, before the definition arrives, as tall as this widget's
    // first step was at this width last time, or else tall enough for it (narrow columns wrap more). The first
    // step keeps that height, its content grouped in the middle, until the reader's first input.
    const W = el.clientWidth, o = (mem().h || {})[slug], k = (o && o[0] == W && o[1]) | 0, H = k || Math.max(400, 600 - (W || 600) / 3) | 0;
    box.style.minHeight = H + "px";
    root.append(box);
    const gone = (why) => { warn(slug, why); box.remove(); };
    const retry = () => {
      const nl = /^nl/i.test(d.documentElement.lang || navigator.language);
      const again = h("button", { type: "button" }, nl ? "Opnieuw proberen" : "Try again");
      again.onclick = () => load();
      box.replaceChildren(h("p", { role: "alert" }, nl ? "Laden is niet gelukt." : "Could not load."), again);
    };
    const api = `${base}/api/v1/widgets/${encodeURIComponent(slug)}`;
    function load(again) {
      const url = api + (lc ? "?ref=" + encodeURIComponent(lc) : "");
      fetch(url, { credentials: "omit" }).then((r) => {
        if (r.status == 404 || r.status == 403) return gone("HTTP " + r.status);
        if (!r.ok) return retry();
        return r.json().then((def) => {
          const [form, go] = render(def, () => { lc = 0; keep({}); load(1); }, pv), was = box.offsetHeight;
          box.replaceWith(form);
          box = form;
          // Not them after all: the same form as for anyone, at its first question.
          if (again) return go(1), fit(form, was);
          // Shown to a reader: one impression per mount, none for the admin's preview. No cookies, nothing read.
          pv || fetch(api + "/impressions", { method: "POST", keepalive: true, credentials: "omit" }).catch(() => {});
          const m = mem(), hs = m.h || {};
          hs[slug] = [W, Math.max(Math.ceil(form.getBoundingClientRect().height), k)];
          form.style.minHeight = H + "px";
          keep(m, hs);
        });
      }, () =>
        // A CORS refusal (403 origin) and a dead network look alike to fetch; no-cors tells them apart.
        fetch(url, { mode: "no-cors", credentials: "omit" }).then(() => gone("refused (origin not allowed?)"), retry)
      ).catch(gone);
    }
    load();
  }

  function render(def, forget, pv) {
    const m = mem(), now = Date.parse(def.now), reader = def.reader || m.r, seen = (reader == m.r && m.a) || {};
    const mask = def.reader ? def.mask : m.m;
    if (def.reader && !pv) keep({ r: reader, a: seen, p: lc, m: mask });
    // A reader from our email gets only what is left to ask; skip what this browser answered while fresh.
    const qs = def.questions.filter((q) => def.reader || !(seen[q.key] > now - q.fresh_for_days * 864e5));
    const t = def.texts, steps = [], fields = [], last = qs.length + 1;
    let cur = 0, busy = false, n = 0;
    const uid = (p) => p + ++n;
    const form = h("form", { class: "w", lang: def.locale, novalidate: "", "aria-labelledby": "t" });
    const chosen = (f) => f.i.filter((x) => x.checked);
    const target = (f) => chosen(f)[0] || f.i[0];

    // A field: inputs, its error (announced; read again on focus via aria-describedby), what carries
    // aria-invalid, and a check mirroring the server's, which stays the authority.
    function field(key, step, inputs, described, invalid, check) {
      const f = { k: key, s: step, i: inputs, v: invalid, c: check, e: h("p", { class: "e", id: uid("e"), "aria-live": "polite" }) };
      described.setAttribute("aria-describedby", f.e.id);
      fields.push(f);
      // An error goes as soon as the field is put right (the server's too, once the reader changes the field).
      for (const x of inputs) x.addEventListener("input", () => f.e.textContent && !(check && check()) && setError(f, ""));
      return f;
    }
    function setError(f, msg) {
      f.e.textContent = msg || "";
      for (const x of f.v) msg ? x.setAttribute("aria-invalid", "true") : x.removeAttribute("aria-invalid");
    }
    function step(kids, label, back) {
      const next = h("button", { type: "submit" }, label), prev = back && h("button", { type: "button", class: "b" }, t.back);
      if (prev) prev.onclick = () => go(cur - 1);
      steps.push(h("div", { class: "s", hidden: "" }, [...kids, h("div", { class: "a" }, [prev, next])]));
      return next;
    }

    // Nothing left to ask a returning reader: the editor's prompt and start label may speak of questions, so
    // neither is shown.
    const ready = reader && !qs.length;
    step([h("h2", { id: "t" }, t.title), !ready && t.prompt && h("p", {}, t.prompt), def.report.description && h("p", {}, def.report.description)], ready ? t.start_ready : t.start);

    qs.forEach((q, i) => {
      const radio = q.kind != "multi", lid = uid("l");
      const inputs = q.options.map((o) => h("input", { type: radio ? "radio" : "checkbox", name: q.key, value: o.value }));
      const set = h("fieldset", radio ? { role: "radiogroup", "aria-labelledby": lid } : {}, [h("legend", { id: lid }, q.text)]);
      const f = field("answers." + q.key, i + 1, inputs, set, radio ? [set] : inputs, () => chosen(f).length ? "" : t.error_answer);
      f.a = () => { const v = chosen(f).map((x) => x.value); return radio ? v[0] : v; };
      const hint = !radio && h("p", { class: "p", id: uid("i") }, t.multi);
      if (hint) set.append(hint);
      set.append(f.e, ...q.options.map((o, j) => h("label", { class: "o" }, [inputs[j], h("span", {}, o.label)])));
      const progress = h("p", { class: "p", id: uid("p") }, t.progress.replace("{n}", i + 1).replace("{total}", qs.length));
      set.setAttribute("aria-describedby", progress.id + (hint ? " " + hint.id : "") + " " + f.e.id);
      step([progress, set], t.next, true);
    });

    const eid = uid("m");
    const email = h("input", { id: eid, type: "email", name: "email", autocomplete: "email", required: "", spellcheck: "false" });
    const report = h("input", { type: "checkbox", name: "report", required: "" });
    const follow = h("input", { type: "checkbox", name: "sequences" }); // marketing: optional, never pre-ticked
    const nid = uid("n"), name = def.ask_first_name && h("input", { id: nid, type: "text", name: "first_name", autocomplete: "given-name", maxlength: "100" });
    const fName = name && field("first_name", last, [name], name, [name]);
    const fEmail = !reader && field("email", last, [email], email, [email], () =>
      /^[^\s@]+@[^\s@]+\.[^\s@.]+$/.test(email.value.trim()) ? "" : t.error_email);
    const fReport = field("consent.report", last, [report], report, [report], () => report.checked ? "" : t.error_consent);
    const fFollow = field("consent.sequences", last, [follow], follow, [follow]);
    const status = h("p", { class: "e", role: "alert" }), done = h("div", { "aria-live": "polite" });
    // A returning reader is told which address is used, and can make this browser forget it.
    const other = reader && h("button", { type: "button", class: "b" }, t.not_you);
    if (other) other.onclick = (e) => { T = e.timeStamp; forget(); };
    const submit = step([
      name && h("label", { for: nid }, t.first_name_label), fName && fName.e, name,
      fEmail && h("label", { for: eid }, t.email_label), fEmail && fEmail.e, fEmail && email,
      other && h("p", {}, [mask ? t.reader.replace("{email}", mask) : t.reader_unnamed, " ", other]),
      h("label", { class: "o" }, [report, h("span", {}, t.consent_report)]), fReport.e,
      h("label", { class: "o" }, [follow, h("span", {}, t.consent_sequences)]), fFollow.e, status
    ], t.submit, true);
    // The honeypot: out of sight, out of the tab order and hidden from assistive technology, so only a
    // script filling in every field it finds fills it in; the server then stores and sends nothing.
    const hp = h("input", { name: "website", tabindex: "-1", autocomplete: "off" });
    form.append(...steps, h("div", { class: "h", "aria-hidden": "true" }, [h("label", {}, ["Website", hp])]), done);

    function go(i, focus) {
      form.style.minHeight = "";
      steps[cur].hidden = true;
      steps[(cur = i)].hidden = false;
      const f = fields.find((x) => x.s == i);
      (focus || (f ? target(f) : steps[i].querySelector("[type=submit]"))).focus();
    }
    function check(i) {
      let bad;
      for (const f of fields) if (f.s == i && f.c) { setError(f, f.c()); if (!bad && f.e.textContent) bad = f; }
      if (bad) target(bad).focus();
      return !bad;
    }
    // aria-disabled, not disabled: disabling the focused button would drop keyboard focus.
    function sending(on) {
      busy = on;
      submit.textContent = on ? t.sending : t.submit;
      on ? submit.setAttribute("aria-disabled", "true") : submit.removeAttribute("aria-disabled");
    }
    const fail = (msg) => { sending(false); status.textContent = msg; };
    const sent = () => {
      steps[cur].hidden = true;
      const p = h("p", { tabindex: "-1" }, t.success);
      done.append(p);
      p.focus();
    };
    function showErrors(body) {
      const errors = (body && body.errors) || {}, other = [];
      let first;
      if (errors.reader) return forget();
      for (const f of fields) setError(f, "");
      for (const k in errors) {
        const f = fields.find((x) => x.k == k);
        if (!f) { other.push(errors[k]); continue; }
        setError(f, errors[k]);
        if (!first || f.s < first.s) first = f;
      }
      fail(other.join(" ") || (first ? "" : t.error_server));
      if (first) go(first.s, target(first));
    }

    form.onsubmit = (e) => {
      e.preventDefault();
      T = e.timeStamp;
      if (busy || !check(cur)) return;
      if (cur < last) return go(cur + 1);
      if (pv) return sent();
      const answers = {};
      for (const f of fields) if (f.a) answers[f.k.slice(8)] = f.a();
      let tz;
      try { tz = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (x) { /* the server's default zone */ }
      status.textContent = "";
      sending(true);
      const was = form.offsetHeight;
      fetch(def.submit_url, {
        method: "POST",
        credentials: "omit",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          email: reader ? undefined : email.value.trim(), reader, ref: def.reader && lc, first_name: name ? name.value.trim() || undefined : undefined, answers, consent: { report: report.checked, sequences: follow.checked },
          page_url: location.href.slice(0, 2048), timezone: tz, form_token: def.form_token,
          website: hp.value || undefined
        })
      }).then((r) => {
        if (r.ok) {
          r.json().then((b) => {
            const a = reader == b.reader ? seen : {};
            for (const k in answers) a[k] = now;
            keep({ r: b.reader, a, p: b.reader == def.reader ? lc : undefined, m: reader ? mask : hide(email.value.trim().toLowerCase()) });
          }, () => {});
          return sent();
        }
        if (r.status == 400 || r.status == 422) return r.json().then(showErrors, () => fail(t.error_server));
        // 429: rate-limited; the reader's answers stay, so trying again later is one click.
        fail(r.status == 429 ? t.error_busy : t.error_server);
      }, () => fail(t.error_network)).catch(() => fail(t.error_server)).then(() => fit(form, was));
    };
    steps[0].hidden = false;
    return [form, go];
  }

  scan();
  d.addEventListener("DOMContentLoaded", scan);
  // Also widgets added later (client-rendered pages, infinite scroll).
  new MutationObserver(scan).observe(d.documentElement, { childList: true, subtree: true });
})(window, document);
