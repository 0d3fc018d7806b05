/* leadcapture widget loader: <script async src="BASE/embed.js"></script><div data-leadcapture="SLUG"></div>
 * Hand-written, no dependencies; /embed.js serves it minified (web/widget.py), and bench/widget_size.py weighs
 * it against the 5 KB gzipped budget. Each widget renders in an open shadow root: page CSS stays out, ours stays
 * in, and axe-core can audit it. Never throws into the page. */
((window, document) => {
  "use strict";
  // Included twice, or a browser too old for what follows.
  if (window.__leadcapture || !window.fetch || !document.head.attachShadow) return;
  const script = document.currentScript || document.querySelector('script[src*="/embed.js"]');
  if (!script) return;
  const base = script.src.replace(/\/embed\.js([?#].*)?$/, "");
  window.__leadcapture = { base, scan };

  const PLACEHOLDER = "[data-leadcapture]";
  const DAY_MS = 864e5;

  // First-party memory, under one localStorage key. The one-letter fields are what browsers already hold:
  //   r  the server's stand-in for the reader's address (their `reader`)
  //   m  that address masked, to show them which address is used
  //   a  per question key, when this browser answered it
  //   p  our email's reference to the reader (lc=), kept once the server knows it: this browser's proof of the
  //      address, the one thing that lets answers count at once
  //   h  per widget, the width and height its first step had
  // Forgetting the reader keeps h: it says nothing about anyone.
  const STORAGE_KEY = "leadcapture";
  function remembered() {
    try {
      return JSON.parse(localStorage[STORAGE_KEY]) || {};
    } catch (error) {
      return {};
    }
  }
  function remember(memory, heights) {
    try {
      localStorage[STORAGE_KEY] = JSON.stringify({ ...memory, h: heights || remembered().h });
    } catch (error) {
      // Storage denied or full: the widget works on, it only forgets.
    }
  }

  // The same mask as the server's (services/widgets.py mask_address), for the address typed here.
  function maskAddress(address) {
    const at = address.lastIndexOf("@"), local = address.slice(0, at);
    return local[0] + "•••" + (local[2] ? local.slice(-1) : "") + address.slice(at);
  }

  // When the reader last pressed something: a box that resizes later than that moves the page on its own.
  let lastInputAt = 0;
  // Sizes a box after an answer from the network: its own height right after the reader's input (the browser
  // leaves that out of layout shift), otherwise no smaller than it was.
  function settleHeight(box, before) {
    box.style.minHeight = performance.now() - lastInputAt < 400 ? "" : before + "px";
  }

  // A POST that outlives the page and whose answer nobody reads (no-cors: no answer needs to allow it), like
  // navigator.sendBeacon but without cookies (a beacon always sends the app's). A string body goes as
  // text/plain, which needs no preflight.
  const beacon = (url, body) =>
    fetch(url, { method: "POST", body, keepalive: true, credentials: "omit", mode: "no-cors" }).catch(() => {});

  // Our email's links name the reader (lc=): taken off the address bar, so a shared link does not.
  let ref;
  try {
    const url = new URL(location.href);
    ref = url.searchParams.get("lc");
    if (ref) {
      url.searchParams.delete("lc");
      history.replaceState(history.state, "", url);
    }
  } catch (error) {
    // An address the URL parser refuses: nothing to take off it.
  }
  // A reader who came here from our email (the reference in this page's own address proves it) reads this page:
  // its topics count as their interest. Only a reference in the address counts: the one this browser remembers
  // (`p`) proves that some earlier visit came from our email, not that this one did, nor who is reading now (a
  // shared computer keeps it for a year); counting every later page on its strength would follow a browser
  // across the site rather than a reader through our emails. Nothing for a browser that asks not to be tracked
  // (the server checks Sec-GPC and DNT too, and the page's origin).
  if (ref && !navigator.globalPrivacyControl && navigator.doNotTrack != 1) {
    const topics = document.querySelector('meta[name="leadcapture:topics"]') || {};
    beacon(base + "/api/v1/reads", JSON.stringify({ ref, url: location.href, topics: topics.content }));
  }
  ref = ref || remembered().p;

  // One rule set, for the shadow root only (`*` is what is in it): radios and checkboxes sit in .o labels;
  // the text inputs (address, first name) are the ones with an id. Each line ends in a backslash, which a
  // template literal drops with the line break: the built file carries the rules on one line. No page style
  // reaches into the shadow root, so the class names are no styling hook, and one letter each:
  //   w the widget's box, s a step, a its buttons (actions), o an option's label, b a secondary button, h a hint,
  //   e an error, x the honeypot's offscreen box.
  // Its blue (#0b57d0) and red (#b3261e) are written out each time: gzip makes a repeat cheaper than a name.
  const CSS = `*{box-sizing:border-box;font:inherit;color:inherit;margin:0;padding:0}\
.w{all:initial;box-sizing:border-box;justify-content:center;padding:20px 24px;border:1px solid #aab2bd;border-radius:8px;background:#f5f7fa;color:#1b1f24;text-align:left;font:16px/1.5 system-ui,sans-serif}\
.w,.s,fieldset{display:flex;flex-flow:column}\
.s,.a{gap:12px}\
h2,legend{font-weight:700;font-size:19px;line-height:1.3}\
fieldset{border:0;min-width:0;gap:4px}\
legend{margin-bottom:6px}\
label[for],button,.e{font-weight:600}\
.o{display:flex;gap:10px;align-items:flex-start;padding:4px 0;cursor:pointer}\
.o input{flex:none;width:20px;height:20px;margin-top:2px;accent-color:#0b57d0}\
input[id]{padding:9px 12px;border:1px solid #5d6775;border-radius:6px;background:#fff}\
input[aria-invalid]{border-color:#b3261e;box-shadow:0 0 0 1px #b3261e}\
.a{display:flex;padding-top:8px}\
button{cursor:pointer;border:2px solid #0b57d0;border-radius:6px;padding:8px 18px;background:#0b57d0;color:#fff}\
.b{background:#fff;color:#0b57d0}\
[aria-disabled]{cursor:progress}\
:focus-visible{outline:3px solid #0b57d0;outline-offset:2px}\
.h{font-size:14px;color:#47505c}\
.e{color:#b3261e}\
.e:empty,[hidden]{display:none!important}\
.x{position:absolute;left:-9999px;width:1px;height:1px;overflow:hidden}\
@media(max-width:480px){.w{padding:16px}}`;
  let sheet;

  // A constructed sheet, shared by every widget on the page, passes a strict CSP (no 'unsafe-inline' styles);
  // a <style> element is the fallback.
  function addStyles(root) {
    try {
      if (!sheet) (sheet = new CSSStyleSheet()).replaceSync(CSS);
      root.adoptedStyleSheets = [sheet];
    } catch (error) {
      root.append(element("style", {}, CSS));
    }
  }

  // element(tag, {attribute: value}, "text" | [children]); server strings only ever become text, never HTML.
  function element(tag, attributes, children) {
    const node = document.createElement(tag);
    for (const name in attributes) node.setAttribute(name, attributes[name]);
    if (typeof children == "string") node.textContent = children;
    else if (children) for (const child of children) if (child) node.append(child);
    return node;
  }

  // An ARIA state that is "true" or absent (an empty value would mean false).
  const flag = (node, name, on) => on ? node.setAttribute(name, "true") : node.removeAttribute(name);

  const notShown = (slug, reason) => console.warn(`leadcapture: widget "${slug}" not shown: ${reason}`);

  const mounted = new WeakSet();
  function mountOnce(host) {
    if (mounted.has(host)) return;
    mounted.add(host);
    mount(host);
  }
  function scanWithin(root) {
    for (const host of root.querySelectorAll(PLACEHOLDER)) mountOnce(host);
  }
  function scan() {
    scanWithin(document);
  }

  // Widgets added later too: by the parser, when this async script runs before the page is parsed (the parser's
  // insertions are mutations like any other, so no DOMContentLoaded scan is needed), and by scripts (client-
  // rendered pages, infinite scroll). A page may add thousands of nodes in a burst, over many tasks: only what
  // was added is looked at, once per frame. The frame's callbacks run before it is painted, so a widget's box
  // is still reserved before anyone sees its placeholder.
  let added = [];
  function collectAdded(records) {
    const frameRequested = added.length;
    for (const record of records) for (const node of record.addedNodes) if (node.nodeType == 1) added.push(node);
    if (!frameRequested && added.length) requestAnimationFrame(mountAdded);
  }
  function mountAdded() {
    const nodes = added;
    added = [];
    for (const node of nodes) {
      if (!node.isConnected) continue; // taken out again before the frame
      if (node.matches(PLACEHOLDER)) mountOnce(node);
      scanWithin(node);
    }
  }

  // No layout shift on load: the box is reserved before the definition arrives, as tall as this widget's first
  // step was at this width last time (`known`, 0 when not), or else tall enough for it (narrow columns wrap
  // more). The first step keeps that height, its content grouped in the middle, until the reader's first input.
  function firstStepHeight(slug, width) {
    const last = (remembered().h || {})[slug];
    const known = (last && last[0] == width && last[1]) | 0;
    return { known, reserved: known || Math.max(400, 600 - (width || 600) / 3) | 0 };
  }

  function mount(host) {
    const slug = host.getAttribute("data-leadcapture");
    // data-preview (the admin's preview): the whole form, but it never sends.
    const preview = host.hasAttribute("data-preview");
    let root, box = element("div", { class: "w" });
    try {
      root = host.attachShadow({ mode: "open" });
    } catch (error) {
      return notShown(slug, error);
    }
    addStyles(root);
    const width = host.clientWidth;
    const height = firstStepHeight(slug, width);
    box.style.minHeight = height.reserved + "px";
    root.append(box);

    const api = `${base}/api/v1/widgets/${encodeURIComponent(slug)}`;
    const remove = (reason) => {
      notShown(slug, reason);
      box.remove();
    };
    const offerRetry = () => {
      const dutch = /^nl/i.test(document.documentElement.lang || navigator.language);
      const again = element("button", { type: "button" }, dutch ? "Opnieuw proberen" : "Try again");
      again.onclick = () => load();
      box.replaceChildren(element("p", { role: "alert" }, dutch ? "Laden is niet gelukt." : "Could not load."), again);
    };
    // Not them after all: this browser forgets the reader and shows the form as for anyone.
    const forgetReader = () => {
      ref = undefined;
      remember({});
      load(true);
    };

    function show(widget, again) {
      const [form, goTo] = render(widget, api, forgetReader, preview), before = box.offsetHeight;
      box.replaceWith(form);
      box = form;
      if (again) {
        goTo(1); // at its first question
        return settleHeight(form, before);
      }
      // Shown to a reader: one impression per mount, none for the admin's preview. No cookies, nothing read.
      if (!preview) {
        beacon(api + "/impressions");
      }
      const memory = remembered(), heights = memory.h || {};
      heights[slug] = [width, Math.max(Math.ceil(form.getBoundingClientRect().height), height.known)];
      form.style.minHeight = height.reserved + "px";
      remember(memory, heights);
    }

    function load(again) {
      // A reader this browser remembers gets what a stranger's definition leaves out ("Not you?" and the like).
      // `r`, not the older `returning`: this loader reads the compact definition (options as [value, label]
      // pairs, `now` in seconds).
      const url = api + "?r=" + (remembered().r ? 1 : 0) + (ref ? "&ref=" + encodeURIComponent(ref) : "");
      fetch(url, { credentials: "omit" }).then((response) => {
        if (response.status == 404 || response.status == 403) return remove("HTTP " + response.status);
        if (!response.ok) return offerRetry();
        return response.json().then((widget) => show(widget, again));
      }, () =>
        // A CORS refusal (403 origin) and a dead network look alike to fetch; no-cors tells them apart.
        fetch(url, { mode: "no-cors", credentials: "omit" }).then(() => remove("refused (origin not allowed?)"), offerRetry)
      ).catch(remove);
    }
    load();
  }

  // The form of one widget: a first step, a step per question, the email step. Returns the form and its
  // goTo(step). The definition's texts and a question's `multi` flag come by short names (embed-names.json),
  // which the build gives the same property names here.
  function render(widget, api, forgetReader, preview) {
    const memory = remembered(), now = widget.now * 1e3, texts = widget.texts;
    // Remembered here, if the definition came with the texts for a returning reader (asked for as it loaded).
    const reader = widget.reader || (texts.not_you && memory.r);
    const answeredAt = (reader == memory.r && memory.a) || {};
    const mask = widget.reader ? widget.mask : memory.m;
    if (widget.reader && !preview) remember({ r: reader, a: answeredAt, p: ref, m: mask });
    // A reader from our email gets only what is left to ask; skip what this browser answered while fresh.
    const questions = widget.questions.filter(
      (question) => widget.reader || !(answeredAt[question.key] > now - question.fresh_for_days * DAY_MS)
    );
    const steps = [], fields = [], emailStep = questions.length + 1, emailStepNodes = [];
    let current = 0, busy = false, lastId = 0;
    const newId = (prefix) => prefix + ++lastId;
    const form = element("form", { class: "w", lang: widget.locale, novalidate: "", "aria-labelledby": "title" });
    const chosen = (field) => field.inputs.filter((input) => input.checked);
    // Where focus goes for a field: its chosen option, or its first input.
    const focusTarget = (field) => chosen(field)[0] || field.inputs[0];
    const button = (label, secondary) =>
      element("button", secondary ? { type: "button", class: "b" } : { type: "submit" }, label);
    const option = (input, label) => element("label", { class: "o" }, [input, element("span", {}, label)]);

    // A field: its path in the submission (as the server's errors name it), its inputs, its error (announced;
    // read again on focus via aria-describedby, which a question's group sets itself), what carries
    // aria-invalid, and a check mirroring the server's, which stays the authority.
    function addField(path, step, inputs, check, invalid = inputs, described = inputs[0]) {
      const error = element("p", { class: "e", id: newId("e"), "aria-live": "polite" });
      const field = { path, step, inputs, invalid, check, error };
      described.setAttribute("aria-describedby", error.id);
      fields.push(field);
      // An error goes as soon as the field is put right (the server's too, once the reader changes the field).
      for (const input of inputs) {
        input.addEventListener("input", () => error.textContent && !(check && check()) && setError(field, ""));
      }
      return field;
    }
    function setError(field, message) {
      field.error.textContent = message || "";
      for (const node of field.invalid) flag(node, "aria-invalid", message);
    }
    function addStep(children, label, withBack) {
      const next = button(label), back = withBack && button(texts.back, true);
      if (back) back.onclick = () => goTo(current - 1);
      steps.push(element("div", { class: "s", hidden: "" }, [...children, element("div", { class: "a" }, [back, next])]));
      return next;
    }
    // The email step's fields: a labelled text input, or a box to tick; each followed by its error.
    function textField(name, label, attributes, check) {
      const input = element("input", { id: newId(name), name, ...attributes });
      emailStepNodes.push(element("label", { for: input.id }, label), addField(name, emailStep, [input], check).error, input);
      return input;
    }
    function consentBox(name, label, check) {
      const box = element("input", { type: "checkbox", name, ...(check && { required: "" }) });
      emailStepNodes.push(option(box, label), addField("consent." + name, emailStep, [box], check).error);
      return box;
    }

    // Nothing left to ask a returning reader: the editor's prompt and start label may speak of questions, so
    // neither is shown.
    const ready = reader && !questions.length;
    addStep([
      element("h2", { id: "title" }, texts.title),
      !ready && texts.prompt && element("p", {}, texts.prompt),
      widget.description && element("p", {}, widget.description)
    ], ready ? texts.start_ready : texts.start);

    questions.forEach((question, index) => {
      const single = !question.multi, legendId = newId("l"), type = single ? "radio" : "checkbox";
      // Options come as [value, label] pairs.
      const inputs = question.options.map((choice) => element("input", { type, name: question.key, value: choice[0] }));
      const hint = !single && element("p", { class: "h", id: newId("h") }, texts.multi);
      const group = element("fieldset", single ? { role: "radiogroup", "aria-labelledby": legendId } : {}, [
        element("legend", { id: legendId }, question.text), hint
      ]);
      const field = addField("answers." + question.key, index + 1, inputs,
        () => chosen(field).length ? "" : texts.error_answer, single ? [group] : inputs, group);
      field.answer = () => {
        const values = chosen(field).map((input) => input.value);
        return [question.key, single ? values[0] : values];
      };
      const progress = element("p", { class: "h", id: newId("p") },
        texts.progress.replace("{n}", index + 1).replace("{total}", questions.length));
      group.append(field.error, ...inputs.map((input, i) => option(input, question.options[i][1])));
      group.setAttribute("aria-describedby", progress.id + (hint ? " " + hint.id : "") + " " + field.error.id);
      addStep([progress, group], texts.next, true);
    });

    const firstName = widget.ask_first_name &&
      textField("first_name", texts.first_name_label, { type: "text", autocomplete: "given-name", maxlength: "100" });
    const email = !reader && textField("email", texts.email_label,
      { type: "email", autocomplete: "email", required: "", spellcheck: "false" },
      () => /^[^\s@]+@[^\s@]+\.[^\s@.]+$/.test(email.value.trim()) ? "" : texts.error_email);
    // A returning reader is told which address is used, and can make this browser forget it.
    const notYou = reader && button(texts.not_you, true);
    if (notYou) {
      notYou.onclick = (event) => {
        lastInputAt = event.timeStamp;
        forgetReader();
      };
      emailStepNodes.push(element("p", {}, [mask ? texts.reader.replace("{email}", mask) : texts.reader_unnamed, " ", notYou]));
    }
    const report = consentBox("report", texts.consent_report, () => report.checked ? "" : texts.error_consent);
    const follow = consentBox("sequences", texts.consent_sequences); // marketing: optional, never pre-ticked
    const status = element("p", { class: "e", role: "alert" }), done = element("div", { "aria-live": "polite" });
    const submit = addStep([...emailStepNodes, status], texts.submit, true);
    // The honeypot: out of sight, out of the tab order and hidden from assistive technology, so only a script
    // filling in every field it finds fills it in; the server then stores and sends nothing.
    const honeypot = element("input", { name: "website", tabindex: "-1", autocomplete: "off" });
    form.append(...steps, element("div", { class: "x", "aria-hidden": "true" }, [element("label", {}, ["Website", honeypot])]), done);

    function goTo(step, focus) {
      form.style.minHeight = "";
      steps[current].hidden = true;
      steps[(current = step)].hidden = false;
      const field = fields.find((other) => other.step == step);
      (focus || (field ? focusTarget(field) : steps[step].querySelector("[type=submit]"))).focus();
    }
    function checkStep(step) {
      let invalid;
      for (const field of fields) {
        if (field.step != step || !field.check) continue;
        setError(field, field.check());
        if (!invalid && field.error.textContent) invalid = field;
      }
      if (invalid) focusTarget(invalid).focus();
      return !invalid;
    }
    // aria-disabled, not disabled: disabling the focused button would drop keyboard focus.
    function setSending(on) {
      busy = on;
      submit.textContent = on ? texts.sending : texts.submit;
      flag(submit, "aria-disabled", on);
    }
    function fail(message) {
      setSending(false);
      status.textContent = message;
    }
    function showSent() {
      steps[current].hidden = true;
      const thanks = element("p", { tabindex: "-1" }, texts.success);
      done.append(thanks);
      thanks.focus();
    }
    // The server's errors by field name, each placed at its field; the first step with one is shown.
    function showErrors(body) {
      const errors = (body && body.errors) || {}, unplaced = [];
      let first;
      if (errors.reader) return forgetReader();
      for (const field of fields) setError(field, "");
      for (const name in errors) {
        const field = fields.find((other) => other.path == name);
        if (!field) {
          unplaced.push(errors[name]);
          continue;
        }
        setError(field, errors[name]);
        if (!first || field.step < first.step) first = field;
      }
      fail(unplaced.join(" ") || (first ? "" : texts.error_network));
      if (first) goTo(first.step, focusTarget(first));
    }
    // The reader the server answered with, and when this browser answered what it sent.
    function rememberSubmission(body, answers) {
      const answered = reader == body.reader ? answeredAt : {};
      for (const key in answers) answered[key] = now;
      remember({
        r: body.reader,
        a: answered,
        p: body.reader == widget.reader ? ref : undefined,
        m: reader ? mask : maskAddress(email.value.trim().toLowerCase())
      });
    }
    function send() {
      const answers = Object.fromEntries(fields.filter((field) => field.answer).map((field) => field.answer()));
      status.textContent = "";
      setSending(true);
      const before = form.offsetHeight;
      fetch(api + "/submissions", {
        method: "POST",
        credentials: "omit",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          email: reader ? undefined : email.value.trim(),
          reader,
          ref: widget.reader && ref,
          first_name: firstName ? firstName.value.trim() || undefined : undefined,
          answers,
          consent: { report: report.checked, sequences: follow.checked },
          page_url: location.href.slice(0, 2048),
          timezone: Intl.DateTimeFormat().resolvedOptions().timeZone, // undefined: the server's default zone
          form_token: widget.form_token,
          website: honeypot.value || undefined
        })
      }).then((response) => {
        // Remembered before the success shows, so a reload straight after it already knows the reader.
        if (response.ok) return response.json().then((body) => rememberSubmission(body, answers), () => {}).then(showSent);
        // 400/422: errors by field. 429 (rate-limited) and 5xx: the server's words for the reader, in the widget's
        // language. The reader's answers stay, so trying again is one click.
        return response.json().then(showErrors);
      }).catch(() => fail(texts.error_network)).then(() => settleHeight(form, before));
    }

    form.onsubmit = (event) => {
      event.preventDefault();
      lastInputAt = event.timeStamp;
      if (busy || !checkStep(current)) return;
      if (current < emailStep) return goTo(current + 1);
      if (preview) return showSent();
      send();
    };
    steps[0].hidden = false;
    return [form, goTo];
  }

  scan();
  new MutationObserver(collectAdded).observe(document.documentElement, { childList: true, subtree: true });
})(window, document);
