// The editor's own time zone first in a time-zone list: the one most often previewed, and no scrolling
// through six hundred names to find it. Without script the list is simply alphabetical.
"use strict";
for (const select of document.querySelectorAll("select[data-zones]")) {
  const mine = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const option = [...select.options].find((candidate) => candidate.value === mine);
  if (option) select.prepend(option);
}
