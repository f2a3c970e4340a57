// The checkout stand-in shows its times in the customer's own zone, named, as Stripe's page does;
// the server renders UTC (what a browser without this script sees).
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var zone = "UTC";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) { /* keep UTC */ }
    var times = document.querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var date = new Date(times[i].getAttribute("datetime"));
      var day = new Intl.DateTimeFormat("en-GB", { timeZone: zone, day: "2-digit", month: "short", year: "numeric" }).format(date);
      var hour = new Intl.DateTimeFormat("en-GB", { timeZone: zone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(date);
      times[i].textContent = day + " at " + hour + " (" + zone + ")";
    }
  });
})();
