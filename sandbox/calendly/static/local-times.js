// The Calendly stand-in shows times in the invitee's zone, as Calendly does: the browser's zone is
// detected, every zone can be chosen, and the choice is sent with the booking as the invitee's
// `timezone`. Pages render UTC on the server (what a browser without this script sees).
(function () {
  "use strict";
  var HOUR = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  var DAY = { weekday: "long", day: "numeric", month: "long" };

  function browserZone() {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) { return "UTC"; }
  }

  function format(date, zone, options) {
    var all = { timeZone: zone };
    for (var key in options) { all[key] = options[key]; }
    return new Intl.DateTimeFormat("en-GB", all).format(date);
  }

  function longWhen(date, zone) {
    return format(date, zone, { weekday: "long", day: "numeric", month: "long", year: "numeric" }) + ", " +
      format(date, zone, HOUR) + " (" + zone + ")";
  }

  function showTimes(zone) {
    var times = document.querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var own = zone || times[i].getAttribute("data-zone") || browserZone();
      times[i].textContent = longWhen(new Date(times[i].getAttribute("datetime")), own);
    }
  }

  function drawSlots(box, zone) {
    var inputs = box.querySelectorAll("input[name=start_time]");
    if (!inputs.length) { return; }
    var days = [], slotsOf = {}, chosen = null;
    for (var i = 0; i < inputs.length; i++) {
      var date = new Date(inputs[i].value);
      var label = format(date, zone, DAY);
      if (inputs[i].checked) { chosen = inputs[i].value; }
      if (!slotsOf[label]) { slotsOf[label] = []; days.push(label); }
      slotsOf[label].push({ value: inputs[i].value, time: format(date, zone, HOUR) });
    }
    box.textContent = "";
    days.forEach(function (label) {
      var head = document.createElement("div");
      head.className = "day";
      head.textContent = label;
      var grid = document.createElement("div");
      grid.className = "slots";
      slotsOf[label].forEach(function (slot) {
        var wrap = document.createElement("label");
        wrap.className = "slot";
        var input = document.createElement("input");
        input.type = "radio"; input.name = "start_time"; input.value = slot.value; input.required = true;
        input.checked = slot.value === chosen;
        var text = document.createElement("span");
        text.textContent = slot.time;
        wrap.appendChild(input); wrap.appendChild(text); grid.appendChild(wrap);
      });
      box.appendChild(head); box.appendChild(grid);
    });
  }

  function fillZones(select, zone) {
    var zones = ["UTC"];
    try { zones = zones.concat(Intl.supportedValuesOf("timeZone")); } catch (e) { /* older browsers: UTC + theirs */ }
    if (zones.indexOf(zone) < 0) { zones.push(zone); }
    select.textContent = "";
    zones.forEach(function (name) {
      if (select.querySelector("option[value='" + name + "']")) { return; }
      var option = document.createElement("option");
      option.value = name; option.textContent = name.replace(/_/g, " "); option.selected = name === zone;
      select.appendChild(option);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var select = document.getElementById("timezone");
    var box = document.getElementById("slot-days");
    if (!select) { showTimes(null); return; }
    var zone = select.getAttribute("data-initial") || browserZone();
    fillZones(select, zone);
    var redraw = function () {
      if (box) { drawSlots(box, select.value); }
      showTimes(select.value);
    };
    select.addEventListener("change", redraw);
    redraw();
  });
})();
