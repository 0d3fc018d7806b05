// npm run build:widget: builds leadcapture/static/embed.min.js, what /embed.js serves, from embed.js with terser
// and terser.config.json. The names in leadcapture/static/embed-names.json (the texts and the `multi` flag of
// the compact definition) are pinned to the short names the server sends for them, so the loader's source
// reads `texts.consent_sequences` and the built loader `texts.q`. The banner names both files' SHA-256, which
// a test compares with the files.
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { minify } from "terser";

const SOURCE = "leadcapture/static/embed.js";
const NAMES = "leadcapture/static/embed-names.json";
const BUILT = "leadcapture/static/embed.min.js";

const sha256 = (path) => createHash("sha256").update(readFileSync(path)).digest("hex");
const options = JSON.parse(readFileSync("terser.config.json", "utf8"));
const names = JSON.parse(readFileSync(NAMES, "utf8"));
// terser shortens the names its pattern matches, a cached one to its cached name (kept as `$name`).
const properties = options.mangle.properties;
properties.regex = new RegExp(`${properties.regex}|^(${Object.keys(names).join("|")})$`);
options.nameCache = {
  props: { props: Object.fromEntries(Object.entries(names).map(([name, short]) => ["$" + name, short])) }
};
options.format = {
  comments: false,
  preamble: `/* Generated from embed.js by npm run build:widget. embed.js SHA-256: ${sha256(SOURCE)}` +
    ` embed-names.json SHA-256: ${sha256(NAMES)} */`
};
const { code } = await minify(readFileSync(SOURCE, "utf8"), options);
writeFileSync(BUILT, code);
