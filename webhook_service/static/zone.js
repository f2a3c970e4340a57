/* The browser's time zone, so our pages can show times in it: saved in the `tz` cookie, which the
   server reads only if it names a real IANA zone. A file of its own: the content policy runs
   scripts from /static only, never inline. */
(function () {
  "use strict";
  var zone;
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (error) {
    return;
  }
  if (typeof zone !== "string" || !/^[A-Za-z][A-Za-z0-9_+\-\/]{0,63}$/.test(zone)) return;
  var saved = "tz=" + zone;
  if (document.cookie.split("; ").indexOf(saved) !== -1) return;  // the server knows it already
  var secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = saved + "; Path=/; Max-Age=31536000; SameSite=Lax" + secure;

  // This page showed times in another zone because the server did not know this one yet: show it
  // again, once. Never in a loop: cookies may be blocked, or the server may not know the zone.
  var shown = document.getElementById("zone-fallback");
  if (!shown || shown.getAttribute("data-zone") === zone) return;
  if (document.cookie.split("; ").indexOf(saved) === -1) return;
  try {
    if (sessionStorage.getItem("tz-reloaded") === zone) return;
    sessionStorage.setItem("tz-reloaded", zone);
  } catch (error) {
    return;
  }
  location.reload();
})();
